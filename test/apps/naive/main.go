// Command naive is a Go web app written the way most are: it serves on the
// socket it is given and, on SIGTERM, calls http.Server.Shutdown and
// nothing else. Shutdown closes the listener and waits for active
// requests, but a connection the kernel queued on a listener the app shares
// with a newer generation, or one it accepted a moment before its request
// was read, is lost. rotini's steering must make that drain enough.
//
// It takes its socket from systemd socket activation (LISTEN_FDS; go-systemd)
// or, when none is given, binds 127.0.0.1:$PORT itself (proxy mode).
//
// Every path answers "gen=G worker=W pid=P" (ROTINI_GENERATION,
// ROTINI_WORKER, its pid). With NAIVE_STATUS=N it answers status N
// instead: a release that accepts connections but is broken.
package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
)

func main() {
	log.SetPrefix("naive: ")
	log.SetFlags(0)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)

	ls, err := activation.Listeners()
	if err != nil {
		log.Fatalf("socket activation: %v", err)
	}
	if len(ls) == 0 {
		port := os.Getenv("PORT")
		if port == "" {
			log.Fatal("no socket: give me LISTEN_FDS or PORT")
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			log.Fatal(err)
		}
		ls = append(ls, l)
	}
	status := http.StatusOK
	if s := os.Getenv("NAIVE_STATUS"); s != "" {
		if status, err = strconv.Atoi(s); err != nil {
			log.Fatalf("NAIVE_STATUS: %v", err)
		}
	}
	body := fmt.Sprintf("gen=%s worker=%s pid=%d\n", os.Getenv("ROTINI_GENERATION"), os.Getenv("ROTINI_WORKER"), os.Getpid())
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	})}
	for _, l := range ls { // the app's socket, and rotini's readiness probe socket if any
		go func() {
			if err := srv.Serve(l); err != nil && err != http.ErrServerClosed {
				log.Fatal(err)
			}
		}()
	}
	_, _ = daemon.SdNotify(false, daemon.SdNotifyReady)
	<-term
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}
}
