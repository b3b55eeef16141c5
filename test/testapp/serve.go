package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
)

// serveRole is an HTTP server on the listeners it inherits through socket
// activation (LISTEN_FDS, LISTEN_PID; it serves on all of them), or on
// --addr when it inherits none.
//
//	GET /           "gen=$ROTINI_GENERATION worker=$ROTINI_WORKER pid=PID\n"
//	GET /slow?ms=N  the same after N milliseconds
//	GET /release    the same (only with --release-file)
//
// With --release-file NAME, NAME is read from the working directory at
// start, and /slow and /release append " release=CONTENT" (trimmed) to the
// line; / never does, so the load client's parsing of it is unchanged.
//
// Lines: "listening ADDR" per listener, then "ready" once it serves (after
// READY=1 with --notify); on TERM "draining", a graceful Shutdown bounded by
// --drain, "drained", exit 0. Other signals print "signal NAME".
func serveRole(args []string) {
	c := notifyAll()
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	notify := fs.Bool("notify", false, "send sd_notify READY=1 once serving")
	bootDelay := fs.Duration("boot-delay", 0, "wait this long before serving")
	addr := fs.String("addr", "", "`host:port` to bind when no listener is inherited")
	failStart := fs.Int("fail-start", -1, "exit with this `code` right away")
	hang := fs.Bool("hang", false, "never serve nor become ready")
	ignoreTerm := fs.Bool("ignore-term", false, "print TERM and keep serving")
	drain := fs.Duration("drain", 30*time.Second, "bound of the graceful shutdown on TERM")
	drainGrace := fs.Duration("drain-grace", 500*time.Millisecond, "on TERM, keep answering open keep-alive connections this long before Shutdown")
	naiveDrain := fs.Bool("naive-drain", false, "on TERM, call http.Server.Shutdown and nothing else")
	releaseFile := fs.String("release-file", "", "read this `file` of the working directory at start; /slow and /release then report its content")
	helper := fs.Bool("helper", false, "start a detached helper (testapp helper, in a session of its own) that holds the inherited fds")
	helperIgnoreTerm := fs.Bool("helper-ignore-term", false, "the helper ignores TERM")
	fs.Parse(args)

	if *failStart >= 0 {
		os.Exit(*failStart)
	}
	ignore := ""
	if *ignoreTerm {
		ignore = "TERM"
	}
	if *hang {
		newSignalPrinter(c, ignore, "").run()
	}

	listeners, err := activation.Listeners()
	if err != nil {
		fatalf("inherited listeners: %v", err)
	}
	var ls []net.Listener
	for _, l := range listeners {
		if l != nil {
			ls = append(ls, l)
		}
	}
	if len(ls) == 0 && *addr != "" {
		l, err := net.Listen("tcp", *addr)
		if err != nil {
			fatalf("listen: %v", err)
		}
		ls = append(ls, l)
	}
	if len(ls) == 0 {
		fatalf("no listener: neither LISTEN_FDS nor --addr")
	}

	if *helper {
		startHelper(*helperIgnoreTerm)
	}
	time.Sleep(*bootDelay)
	body := fmt.Sprintf("gen=%s worker=%s pid=%d\n", os.Getenv("ROTINI_GENERATION"), os.Getenv("ROTINI_WORKER"), os.Getpid())
	slowBody := body
	mux := http.NewServeMux()
	if *releaseFile != "" {
		b, err := os.ReadFile(*releaseFile)
		if err != nil {
			fatalf("release file: %v", err)
		}
		slowBody = strings.TrimSuffix(body, "\n") + " release=" + strings.TrimSpace(string(b)) + "\n"
		mux.HandleFunc("GET /release", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, slowBody)
		})
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, body)
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		time.Sleep(time.Duration(ms) * time.Millisecond)
		fmt.Fprint(w, slowBody)
	})
	// The drain follows test/demoapp (see its doc): http.Server.Shutdown
	// alone drops a request whose connection was accepted just before it
	// began, and races keep-alive clients by closing idle connections.
	// --naive-drain keeps that plain Shutdown, for negative controls.
	var draining atomic.Bool
	handler := http.Handler(mux)
	if !*naiveDrain {
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if draining.Load() {
				w.Header().Set("Connection", "close")
			}
			mux.ServeHTTP(w, r)
		})
	}
	srv := &http.Server{Handler: handler}
	for _, l := range ls {
		say("listening %s", l.Addr())
		go srv.Serve(l)
	}
	if *notify {
		sent, err := daemon.SdNotify(false, daemon.SdNotifyReady)
		if err != nil || !sent {
			fmt.Fprintf(os.Stderr, "testapp: sd_notify READY=1: sent=%t error=%v\n", sent, err)
		}
	}
	say("ready")

	for s := range c {
		sig := s.(syscall.Signal)
		switch {
		case sig == syscall.SIGCHLD:
		case sig == syscall.SIGTERM && !*ignoreTerm:
			say("draining")
			if !*naiveDrain {
				draining.Store(true)
				for _, l := range ls {
					l.Close()
				}
				time.Sleep(*drainGrace)
			}
			ctx, cancel := context.WithTimeout(context.Background(), *drain)
			if err := srv.Shutdown(ctx); err != nil {
				say("drain timeout: %v", err)
			}
			cancel()
			say("drained")
			os.Exit(0)
		default:
			say("signal %s", signalName(sig))
		}
	}
}

// startHelper starts `testapp helper` in a new session (setsid), as a
// daemon would detach, with the inherited listeners as its fd 3, 4, …, and
// does not wait for it: if the worker exits first, whoever adopts it must
// deal with it.
func startHelper(ignoreTerm bool) {
	exe, err := os.Executable()
	if err != nil {
		fatalf("find own executable: %v", err)
	}
	args := []string{"helper"}
	if ignoreTerm {
		args = append(args, "--ignore", "TERM")
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	n, _ := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	for fd := 3; fd < 3+n; fd++ {
		cmd.ExtraFiles = append(cmd.ExtraFiles, os.NewFile(uintptr(fd), "listener"))
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fatalf("start helper: %v", err)
	}
	go cmd.Wait() // reap it if it dies while this worker runs
}
