// Command go-notify is the Go example of rotini in Docker: a web app that
// serves on the sockets rotini passes it (systemd socket activation, read by
// go-systemd's activation package), says when it is ready (sd_notify
// READY=1, go-systemd's daemon package), and drains on SIGTERM without
// losing a request. Nothing in it is specific to rotini: the same binary
// runs under systemd socket activation.
//
// GET / answers "gen=G worker=W pid=P": the generation and worker index
// rotini started it as (ROTINI_GENERATION, ROTINI_WORKER) and its pid, so a
// reload shows up as a new generation.
//
// The drain on SIGTERM, in order:
//
//  1. close its copies of the listening sockets: rotini and the next
//     generation keep theirs, so new connections wait in the shared backlog
//     instead of being refused;
//  2. answer every further request with "Connection: close", for DRAIN_GRACE
//     (default 1s), so keep-alive clients learn after a response, never
//     before one, that the connection ends;
//  3. wait until every connection it accepted has had its first request
//     read (http.Server.Shutdown alone closes such a connection unanswered);
//  4. Shutdown: wait for the requests in flight, close what is left.
//
// The whole drain is bounded by drainTimeout, which must be shorter than the
// app's stop_timeout in rotini.hcl (rotini then SIGKILLs), itself shorter
// than the container's stop grace period (Docker then SIGKILLs rotini).
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
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
)

// drainTimeout bounds the drain; rotini.hcl's stop_timeout is 8s.
const drainTimeout = 6 * time.Second

func main() {
	log.SetPrefix("go-notify: ")
	log.SetFlags(0)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)

	var ls []net.Listener
	all, err := activation.Listeners()
	if err != nil {
		log.Fatalf("socket activation: %v", err)
	}
	for _, l := range all {
		if l != nil {
			ls = append(ls, l)
		}
	}
	if len(ls) == 0 {
		log.Fatalf("no socket: run me under rotini (or systemd socket activation), see rotini.hcl")
	}

	var draining atomic.Bool
	body := fmt.Sprintf("gen=%s worker=%s pid=%d\n", os.Getenv("ROTINI_GENERATION"), os.Getenv("ROTINI_WORKER"), os.Getpid())
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			w.Header().Set("Connection", "close")
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, body)
	})

	// fresh holds the connections accepted whose first request is not read yet.
	var mu sync.Mutex
	fresh := map[net.Conn]bool{}
	freshGone := sync.NewCond(&mu)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
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
		serving.Go(func() { srv.Serve(l) }) // returns when step 1 closes l
	}
	if sent, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Printf("sd_notify: %v", err)
	} else if !sent {
		log.Printf("no NOTIFY_SOCKET: not notifying")
	}

	<-term
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	draining.Store(true)
	for _, l := range ls {
		l.Close()
	}
	serving.Wait()
	time.Sleep(grace())
	stop := context.AfterFunc(ctx, func() { // wake the wait below at the deadline
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

// grace is how long a draining worker keeps answering on open keep-alive
// connections: DRAIN_GRACE, default 1s.
func grace() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("DRAIN_GRACE")); err == nil {
		return d
	}
	return time.Second
}
