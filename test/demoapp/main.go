// Command demo-app is the web app `make run` serves under rotini: a Go HTTP
// server on the sockets rotini passes it (go-systemd's activation package),
// ready when it says so (sd_notify READY=1), and a drain on SIGTERM that
// loses no request.
//
// The drain is the part worth copying. net/http's Server.Shutdown alone drops
// a request whose connection was accepted just before Shutdown began but
// whose request had not yet been read (the server closes it unanswered), and
// it closes idle keep-alive connections at once, racing a client that is
// sending its next request on one. Under a rotation both happen every time.
// So on SIGTERM this app:
//
//  1. stops accepting: closes its copy of the listening sockets (rotini and
//     the new generation keep theirs, so new connections wait in the shared
//     backlog for the new generation);
//  2. answers every further request with "Connection: close", so each client
//     learns that this connection ends, after a response, never before one;
//  3. after a grace period in which busy keep-alive clients send their next
//     request (and get that last answer), calls Shutdown, which waits for
//     in-flight requests and closes what is left.
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
)

func main() {
	listeners, err := activation.Listeners()
	if err != nil || len(listeners) == 0 {
		fmt.Fprintln(os.Stderr, "demo-app: no sockets from rotini (LISTEN_FDS); run it under rotini, see README.md")
		os.Exit(1)
	}
	var draining atomic.Bool
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			w.Header().Set("Connection", "close")
		}
		fmt.Fprintf(w, "hello from %s: gen=%s worker=%s pid=%d\n",
			host, os.Getenv("ROTINI_GENERATION"), os.Getenv("ROTINI_WORKER"), os.Getpid())
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	for _, l := range listeners {
		go serve(srv, l)
	}
	daemon.SdNotify(false, daemon.SdNotifyReady)

	<-term
	draining.Store(true)
	for _, l := range listeners {
		l.Close()
	}
	time.Sleep(grace())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "demo-app: drain:", err)
	}
}

func serve(srv *http.Server, l net.Listener) {
	// Serve returns when step 1 closes the listener: expected.
	_ = srv.Serve(l)
}

// grace is how long a draining worker keeps answering on open keep-alive
// connections: DRAIN_GRACE, default 1s.
func grace() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("DRAIN_GRACE")); err == nil {
		return d
	}
	return time.Second
}
