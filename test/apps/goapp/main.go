// Command goapp is a small Go web app of the kind rotini runs, written the
// way its users write one, with nothing from rotini: it takes its listeners
// from systemd socket activation (go-systemd's activation package), tells
// its supervisor it is ready with sd_notify READY=1 (go-systemd's daemon
// package), and drains on SIGTERM. rotini's end-to-end tests build it and
// rotate it under load.
//
// Every path answers "gen=G worker=W pid=P" (ROTINI_GENERATION,
// ROTINI_WORKER, its pid).
//
// The drain does more than http.Server.Shutdown alone: Shutdown marks the
// server as shutting down first, and a connection that was accepted just
// before but whose request is read just after is closed without a response
// (golang/go#75591). Behind a socket shared by two generations that is a
// dropped request at every rotation. So it stops accepting first (closes
// its listeners and waits for Serve to return), lets every accepted
// connection read its first request, and only then calls Shutdown.
package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
)

// drainTimeout bounds the whole drain; rotini's stop_timeout should be
// longer.
const drainTimeout = 20 * time.Second

func main() {
	log.SetPrefix("goapp: ")
	log.SetFlags(0)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)

	listeners, err := activation.Listeners()
	if err != nil {
		log.Fatalf("socket activation: %v", err)
	}
	var ls []net.Listener
	for _, l := range listeners {
		if l != nil {
			ls = append(ls, l)
		}
	}
	if len(ls) == 0 {
		log.Fatalf("no listener: start me with LISTEN_FDS (systemd, rotini)")
	}

	body := fmt.Sprintf("gen=%s worker=%s pid=%d\n", os.Getenv("ROTINI_GENERATION"), os.Getenv("ROTINI_WORKER"), os.Getpid())
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, body)
	})

	var mu sync.Mutex
	fresh := map[net.Conn]bool{} // accepted, first request not read yet
	freshGone := sync.NewCond(&mu)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(c net.Conn, st http.ConnState) {
			mu.Lock()
			defer mu.Unlock()
			if st == http.StateNew {
				fresh[c] = true
				return
			}
			delete(fresh, c)
			if len(fresh) == 0 {
				freshGone.Broadcast()
			}
		},
	}
	var serving sync.WaitGroup
	for _, l := range ls {
		serving.Add(1)
		go func() {
			defer serving.Done()
			srv.Serve(l)
		}()
	}
	if sent, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Printf("sd_notify: %v", err)
	} else if !sent {
		log.Printf("sd_notify: no NOTIFY_SOCKET; not notifying")
	}

	<-term
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	for _, l := range ls {
		l.Close()
	}
	serving.Wait()
	// Wake the wait below when the drain times out.
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		freshGone.Broadcast()
		mu.Unlock()
	})
	defer stop()
	mu.Lock()
	for len(fresh) > 0 && ctx.Err() == nil {
		freshGone.Wait()
	}
	mu.Unlock()
	if err := srv.Shutdown(ctx); err != nil {
		log.Printf("drain: %v", err)
		os.Exit(1)
	}
}
