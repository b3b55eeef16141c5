package cli

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rotini-dev/rotini/config"
	"github.com/rotini-dev/rotini/control"
)

// The client verbs against a fake control socket: the request each sends,
// what it prints and its exit code.

func accept(w http.ResponseWriter, r *http.Request) {
	answer(w, http.StatusAccepted, map[string]bool{"accepted": true})
}

func TestVerbReload(t *testing.T) {
	isolate(t)
	f := startFake(t, map[string]http.HandlerFunc{"POST /v1/reload": accept})
	r := rotini(t, "reload", "--control", f.path)
	if r.code != ExitOK || r.stdout != "reload of every app accepted\n" || r.stderr != "" {
		t.Errorf("reload: %+v", r)
	}
	// Operands and flags in any order.
	r = rotini(t, "reload", "web", "--control", f.path, "api")
	if r.code != ExitOK || r.stdout != "reload of web, api accepted\n" {
		t.Errorf("reload web api: %+v", r)
	}
	if diff := cmp.Diff([]string{"POST /v1/reload", "POST /v1/reload?app=web&app=api"}, f.requests()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

// reload --wait prints each event's message as the server wrote it, drops
// the ready event that the last worker-ready already said, and exits 0
// only when every app's result is ok.
func TestVerbReloadWait(t *testing.T) {
	isolate(t)
	workerReady := func(ready int) control.Line {
		l := event("web", control.KindWorkerReady, 2, "")
		l.Event.Ready, l.Event.Total = ready, 2
		l.Event.Message = []string{"", "ready 1/2 in 312ms", "ready 2/2 in 420ms"}[ready]
		return l
	}
	f := startFake(t, map[string]http.HandlerFunc{"POST /v1/reload": stream(
		event("rotini", control.KindNote, 0, "not applied: listen blocks changed; the sockets are bound once; it takes effect when rotini restarts"),
		event("web", control.KindStarting, 1, "reload (rotate) of web, serving generation 1"),
		event("web", control.KindGeneration, 2, "starting generation 2 (2 workers)"),
		workerReady(1),
		workerReady(2),
		event("web", control.KindReady, 2, "generation 2 ready (2/2) in 421ms"),
		event("web", control.KindDraining, 1, "draining generation 1"),
		event("web", "retrying", 2, "a kind this client does not know is shown as it is"),
		event("web", control.KindDone, 2, "done: generation 2 serving, in 433ms"),
		result(control.Result{App: "web", OK: true, Generation: 2, Duration: 433 * time.Millisecond, Message: "done: generation 2 serving, in 433ms"}),
		done(true),
	)})
	r := rotini(t, "reload", "web", "--wait", "--timeout", "90s", "--control", f.path)
	want := `rotini: not applied: listen blocks changed; the sockets are bound once; it takes effect when rotini restarts
web: reload (rotate) of web, serving generation 1
web: starting generation 2 (2 workers)
web: ready 1/2 in 312ms
web: ready 2/2 in 420ms
web: draining generation 1
web: a kind this client does not know is shown as it is
web: done: generation 2 serving, in 433ms
`
	if r.code != ExitOK || r.stderr != "" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if diff := cmp.Diff(want, r.stdout); diff != "" {
		t.Errorf("stdout (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"POST /v1/reload?app=web&timeout=1m30s&wait=1"}, f.requests()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

// When an app's done or failed event did not reach the client (a slow
// client loses events, never results), the result's message says it.
func TestVerbReloadWaitResultSaysWhatTheEventsDidNot(t *testing.T) {
	isolate(t)
	f := startFake(t, map[string]http.HandlerFunc{"POST /v1/reload": stream(
		event("web", control.KindStarting, 1, "reload (rotate) of web, serving generation 1"),
		result(control.Result{App: "web", OK: true, Generation: 2, Duration: time.Second, Message: "done: generation 2 serving, in 1s"}),
		event("api", control.KindFailed, 4, "failed: before_reload: exit status 1; generation 4 still serving"),
		result(control.Result{App: "api", Generation: 4, Reason: "before_reload: exit status 1", Message: "failed: before_reload: exit status 1; generation 4 still serving"}),
		result(control.Result{App: "jobs", Generation: 3, Reason: "adding or removing a proxy block needs a restart of rotini", Message: "failed: adding or removing a proxy block needs a restart of rotini; generation 3 still serving"}),
		// What rotini says, not what a client would make of the fields:
		// a stopping rotini keeps no generation serving.
		result(control.Result{App: "cron", Generation: 1, Reason: "rotini is stopping", Message: "failed: rotini is stopping"}),
		done(false),
	)})
	r := rotini(t, "reload", "--wait", "--control", f.path)
	// Events are shown as they come, results once the stream has ended.
	wantOut := `web: reload (rotate) of web, serving generation 1
api: failed: before_reload: exit status 1; generation 4 still serving
web: done: generation 2 serving, in 1s
jobs: failed: adding or removing a proxy block needs a restart of rotini; generation 3 still serving
cron: failed: rotini is stopping
`
	wantErr := `rotini: reload of api failed: before_reload: exit status 1
rotini: reload of jobs failed: adding or removing a proxy block needs a restart of rotini
rotini: reload of cron failed: rotini is stopping
`
	if r.code != ExitFailure {
		t.Errorf("exit %d, want %d", r.code, ExitFailure)
	}
	if diff := cmp.Diff(wantOut, r.stdout); diff != "" {
		t.Errorf("stdout (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantErr, r.stderr); diff != "" {
		t.Errorf("stderr (-want +got):\n%s", diff)
	}
}

// A wait that rotini gives up on, an answer that ends early and an error
// answer each exit 1 and say why.
func TestVerbReloadWaitFails(t *testing.T) {
	isolate(t)
	for _, tt := range []struct {
		name    string
		handler http.HandlerFunc
		stdout  string
		stderr  string
	}{{
		name: "timeout",
		handler: stream(
			event("web", control.KindStarting, 1, "reload (rotate) of web, serving generation 1"),
			control.Line{Error: "gave up waiting after 1s: web still reloading; the reload goes on in rotini"},
			done(false),
		),
		stdout: "web: reload (rotate) of web, serving generation 1\n",
		stderr: "rotini: gave up waiting after 1s: web still reloading; the reload goes on in rotini\n",
	}, {
		name:    "cut short",
		handler: stream(event("web", control.KindStarting, 1, "reload (rotate) of web, serving generation 1")),
		stdout:  "web: reload (rotate) of web, serving generation 1\n",
		stderr:  "rotini: rotini ended the answer before the reload finished (is it stopping?)\n",
	}, {
		name: "no such app",
		handler: func(w http.ResponseWriter, r *http.Request) {
			answer(w, http.StatusBadRequest, map[string]string{"error": `app: no app named "wbe" (apps: web)`})
		},
		stderr: "rotini: app: no app named \"wbe\" (apps: web)\n",
	}, {
		name:    "no result",
		handler: stream(done(true)),
	}} {
		t.Run(tt.name, func(t *testing.T) {
			f := startFake(t, map[string]http.HandlerFunc{"POST /v1/reload": tt.handler})
			r := rotini(t, "reload", "--wait", "--control", f.path)
			if r.code != ExitFailure || r.stdout != tt.stdout || r.stderr != tt.stderr {
				t.Errorf("exit %d\nstdout %q\nstderr %q\nwant exit 1\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr, tt.stdout, tt.stderr)
			}
		})
	}
}

// INT (or TERM, HUP, QUIT) while a verb waits ends it at once with 128+N,
// as a shell reports a process killed by that signal.
func TestVerbInterrupted(t *testing.T) {
	isolate(t)
	asked := make(chan struct{}, 1)
	f := startFake(t, map[string]http.HandlerFunc{"POST /v1/reload": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		asked <- struct{}{}
		<-r.Context().Done() // a reload that never ends
	}})
	sigs := make(chan os.Signal, 1)
	go func() {
		<-asked
		sigs <- syscall.SIGUSR1 // not an interruption: ignored
		sigs <- syscall.SIGINT
	}()
	r := rotiniWith(t, &CLI{Signals: sigs}, "reload", "--wait", "--control", f.path)
	if r.code != 128+int(syscall.SIGINT) || r.stderr != "rotini: interrupted by SIGINT\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestVerbScale(t *testing.T) {
	isolate(t)
	f := startFake(t, map[string]http.HandlerFunc{"POST /v1/scale": func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("app") == "nope" {
			answer(w, http.StatusBadRequest, map[string]string{"error": `no app named "nope"`})
			return
		}
		answer(w, http.StatusOK, map[string]any{"workers": 3})
	}})
	for _, tt := range []struct {
		arg    string
		code   int
		stdout string
		stderr string
	}{
		{"web=3", ExitOK, "web: scaling to 3 workers\n", ""},
		{"4", ExitOK, "every app: scaling to 4 workers\n", ""},
		{"nope=2", ExitFailure, "", "rotini: no app named \"nope\"\n"},
	} {
		r := rotini(t, "scale", tt.arg, "--control", f.path)
		if r.code != tt.code || r.stdout != tt.stdout || r.stderr != tt.stderr {
			t.Errorf("scale %s: %+v, want exit %d stdout %q stderr %q", tt.arg, r, tt.code, tt.stdout, tt.stderr)
		}
	}
	want := []string{"POST /v1/scale?app=web&workers=3", "POST /v1/scale?workers=4", "POST /v1/scale?app=nope&workers=2"}
	if diff := cmp.Diff(want, f.requests()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestVerbHealth(t *testing.T) {
	isolate(t)
	var unhealthy atomic.Bool
	f := startFake(t, map[string]http.HandlerFunc{"GET /v1/health": func(w http.ResponseWriter, r *http.Request) {
		if !unhealthy.Load() {
			answer(w, http.StatusOK, control.Health{OK: true})
			return
		}
		answer(w, http.StatusServiceUnavailable, control.Health{Reason: "app web: generation 2 is not ready"})
	}})
	if r := rotini(t, "health", "--control", f.path); r.code != ExitOK || r.stdout != "ok\n" {
		t.Errorf("healthy: %+v", r)
	}
	unhealthy.Store(true)
	if r := rotini(t, "health", "--control", f.path); r.code != ExitFailure || r.stdout != "unhealthy: app web: generation 2 is not ready\n" {
		t.Errorf("unhealthy: %+v", r)
	}
}

func TestVerbStop(t *testing.T) {
	isolate(t)
	f := startFake(t, map[string]http.HandlerFunc{"POST /v1/stop": accept})
	if r := rotini(t, "stop", "--control", f.path); r.code != ExitOK || r.stdout != "rotini is stopping\n" {
		t.Errorf("stop: %+v", r)
	}
	if diff := cmp.Diff([]string{"POST /v1/stop"}, f.requests()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

// The socket is --control, else ROTINI_CONTROL, else the control.socket of
// the config (-c or ROTINI_CONFIG), else the default; a config that cannot
// be read is a warning.
func TestVerbControlSocket(t *testing.T) {
	isolate(t)
	f := startFake(t, map[string]http.HandlerFunc{"POST /v1/stop": accept})
	cfg := filepath.Join(t.TempDir(), "rotini.hcl")
	os.WriteFile(cfg, []byte(`listen "http" { address = "tcp://127.0.0.1:0" }
app "web" {
  command = ["true"]
  listen  = ["http"]
}
control { socket = "`+f.path+`" }
`), 0o644)
	if r := rotini(t, "stop", "-c", cfg); r.code != ExitOK {
		t.Errorf("stop -c: %+v", r)
	}
	t.Setenv("ROTINI_CONFIG", cfg)
	if r := rotini(t, "stop"); r.code != ExitOK {
		t.Errorf("stop with ROTINI_CONFIG: %+v", r)
	}
	t.Setenv("ROTINI_CONFIG", "")
	t.Setenv("ROTINI_CONTROL", f.path)
	if r := rotini(t, "stop"); r.code != ExitOK {
		t.Errorf("stop with ROTINI_CONTROL: %+v", r)
	}
	if n := len(f.requests()); n != 3 {
		t.Errorf("%d requests reached the socket, want 3", n)
	}

	t.Setenv("ROTINI_CONTROL", "")
	gone := filepath.Join(t.TempDir(), "gone.sock")
	r := rotini(t, "stop", "-c", filepath.Join(t.TempDir(), "missing.hcl"), "--control", gone)
	if r.code != ExitFailure || r.stderr != "rotini: cannot reach rotini at "+gone+": no such file or directory (is rotini running with a config? set --control PATH or ROTINI_CONTROL)\n" {
		t.Errorf("unreachable: %+v", r)
	}
	// Not run as a verb: the default socket may be a real rotini's.
	var errb strings.Builder
	c := &CLI{Stderr: &errb}
	missing := filepath.Join(t.TempDir(), "missing.hcl")
	if cl := c.client(&clientFlags{config: missing}); cl.Path != config.DefaultControlSocket ||
		!strings.HasPrefix(errb.String(), "rotini: warning: cannot read the control socket's path from "+missing+" (") ||
		!strings.HasSuffix(errb.String(), "); trying "+config.DefaultControlSocket+"\n") {
		t.Errorf("unreadable config: socket %s, stderr %q", cl.Path, errb.String())
	}
}
