package reload

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rotini-dev/rotini/activation"
	"github.com/rotini-dev/rotini/control"
	"github.com/rotini-dev/rotini/reaper"
	"github.com/rotini-dev/rotini/sigstate"
	"github.com/rotini-dev/rotini/sockets"
)

// TestMain lets this test binary act as the worker shim: workers with
// listeners are started through /proc/self/exe, which here is the test binary,
// and so is every process when the test inherited signals to restore.
func TestMain(m *testing.M) {
	activation.ExecShimIfAsked()
	sigstate.ExecShimIfAsked()
	os.Exit(m.Run())
}

// harness runs a Manager in-process with a real reaper and real processes.
type harness struct {
	m      *Manager
	stop   func()
	socks  *sockets.Local
	cancel context.CancelFunc
}

func newHarness(t testing.TB, o AppOptions) *harness {
	t.Helper()
	return newHarnessWith(t, o, nil)
}

// newHarnessWith is newHarness with a Reconfigure, as package cli sets one: each
// reload re-reads the "config".
func newHarnessWith(t testing.TB, o AppOptions, reconfigure func() ([]AppOptions, []string, error)) *harness {
	t.Helper()
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: os.Stderr})
	r := reaper.New(log)
	ctx, cancel := context.WithCancel(context.Background())
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, syscall.SIGCHLD)
	go r.Run(ctx)
	go func() {
		for {
			select {
			case <-chld:
				r.Notify()
			case <-ctx.Done():
				return
			}
		}
	}()
	socks, err := sockets.NewLocal(log, []sockets.Spec{{ListenerOptions: sockets.ListenerOptions{Name: "http", Network: "tcp4", Address: "127.0.0.1:0"}, Steer: true}})
	if err != nil {
		t.Fatal(err)
	}
	o.Listen = []string{"http"}
	m, err := New(Options{Log: log, Reaper: r, Sockets: socks, Apps: []AppOptions{o}, RuntimeDir: t.TempDir(), Env: os.Environ(), Reconfigure: reconfigure})
	if err != nil {
		t.Fatal(err)
	}
	m.Start()
	h := &harness{m: m, socks: socks, cancel: cancel}
	t.Cleanup(func() {
		m.Stop(true)
		select {
		case <-m.Done():
		case <-time.After(10 * time.Second):
			t.Error("manager did not stop")
		}
		signal.Stop(chld)
		cancel()
		socks.Close()
	})
	return h
}

func (h *harness) reload(t testing.TB) control.Result {
	t.Helper()
	reply := make(chan control.Result, 1)
	h.m.ReloadApps(nil, reply, nil)
	select {
	case r := <-reply:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("reload did not finish")
		return control.Result{}
	}
}

// sleeper is a worker that is ready as soon as it runs and dies on TERM.
func sleeper(workers int) AppOptions {
	return AppOptions{
		Name:        "app",
		Spawn:       func(SpawnVars) ([]string, []string, string, error) { return []string{"sleep", "1000"}, nil, "", nil },
		Workers:     workers,
		StopSignal:  syscall.SIGTERM,
		StopTimeout: 5 * time.Second,
		Reload:      Rotate,
		Ready:       ReadyOptions{Timeout: 10 * time.Second},
		CrashLimit:  5, CrashWindow: time.Minute, RestartBackoff: 100 * time.Millisecond,
	}
}

func countFDs(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cond()
}

// settled waits until the app has exactly one generation, fully drained.
func (h *harness) settled(t testing.TB) control.AppStatus {
	var st []control.AppStatus
	if !waitFor(10*time.Second, func() bool {
		st = h.m.Status(time.Second)
		return len(st) == 1 && len(st[0].Generations) == 1 && st[0].Ready
	}) {
		t.Fatalf("app did not settle: %+v", st)
	}
	return st[0]
}

// TestRotationsLeakNothing rotates many times and checks that rotini's own
// goroutines and file descriptors return to where they were: a leak per
// rotation would show as growth proportional to the count.
func TestRotationsLeakNothing(t *testing.T) {
	h := newHarness(t, sleeper(2))
	h.settled(t)
	for i := 0; i < 5; i++ { // warm up lazily created runtime state
		if r := h.reload(t); !r.OK {
			t.Fatalf("reload %d: %+v", i, r)
		}
	}
	h.settled(t)
	// A replaced generation's socket may stay in its group, retired,
	// until a later generation takes it over (package sockets): those are
	// counted apart from leaks.
	fds := func() int { return countFDs(t) - len(h.socks.Status()[0].Sockets) }
	g0, f0 := runtime.NumGoroutine(), fds()
	const n = 200
	for i := 0; i < n; i++ {
		if r := h.reload(t); !r.OK {
			t.Fatalf("reload %d: %+v", i, r)
		}
	}
	st := h.settled(t)
	if st.Serving != n+5+1 {
		t.Errorf("serving generation %d, want %d", st.Serving, n+5+1)
	}
	var g1, f1 int
	waitFor(5*time.Second, func() bool {
		g1, f1 = runtime.NumGoroutine(), fds()
		return g1 <= g0 && f1 <= f0
	})
	if g1 > g0 {
		t.Errorf("goroutines grew from %d to %d over %d rotations", g0, g1, n)
	}
	if f1 > f0 {
		t.Errorf("file descriptors grew from %d to %d over %d rotations", f0, f1, n)
	}
	// Sockets retired during the storm (each old generation lingers for
	// its switch grace, so many overlap) leave at the next reload.
	if r := h.reload(t); !r.OK {
		t.Fatalf("reload after the storm: %+v", r)
	}
	h.settled(t)
	if !waitFor(10*time.Second, func() bool { return len(h.socks.Status()[0].Sockets) == 1 }) {
		t.Errorf("%d sockets in the group after one more reload, want the serving one", len(h.socks.Status()[0].Sockets))
	}
}

// TestFailedRotationKeepsServing: a new generation whose worker exits at once
// is rolled back, and the serving generation's processes are untouched.
func TestFailedRotationKeepsServing(t *testing.T) {
	o := sleeper(2)
	h := newHarness(t, o)
	before := h.settled(t)
	bad := o
	bad.Spawn = func(SpawnVars) ([]string, []string, string, error) {
		return []string{"sh", "-c", "exit 3"}, nil, "", nil
	}
	bad.Ready.MinUptime = time.Second
	reply := make(chan control.Result, 1)
	h.m.apps[0].send(reloadReq{opts: &bad, reply: reply})
	r := <-reply
	if r.OK || r.Generation != before.Serving {
		t.Fatalf("reload result %+v, want failure with generation %d still serving", r, before.Serving)
	}
	after := h.settled(t)
	if pids(after) != pids(before) {
		t.Errorf("serving workers changed: before %s after %s", pids(before), pids(after))
	}
}

// BenchmarkRotation measures rotini's own cost of one rotation: the workers
// are ready the moment they run, so the time is spawning (through the
// LISTEN_PID shim), bookkeeping and draining, not an app's boot.
func BenchmarkRotation(b *testing.B) {
	h := newHarness(b, sleeper(1))
	h.settled(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r := h.reload(b); !r.OK {
			b.Fatalf("reload: %+v", r)
		}
	}
}

func pids(s control.AppStatus) string {
	var out []int
	for _, g := range s.Generations {
		for _, w := range g.Workers {
			out = append(out, w.Pid)
		}
	}
	return fmt.Sprint(out)
}

// TestSpawnExpressionsOutsideWorker: an app whose command names fd.http
// (uvicorn's `--fd ${fd.http}`) must still have its code directory resolved
// and its before_reload run, both of which evaluate the spawn expressions
// outside any worker. The spawn function here fails, as HCL evaluation does,
// when fd.http is missing.
func TestSpawnExpressionsOutsideWorker(t *testing.T) {
	dir := t.TempDir()
	rel := filepath.Join(dir, "releases", "1")
	if err := os.MkdirAll(rel, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(rel, filepath.Join(dir, "current")); err != nil {
		t.Fatal(err)
	}
	o := sleeper(1)
	o.Spawn = func(v SpawnVars) ([]string, []string, string, error) {
		if _, ok := v.FDs["http"]; !ok {
			return nil, nil, "", fmt.Errorf("unknown variable fd.http")
		}
		return []string{"sleep", "1000"}, nil, filepath.Join(dir, "current"), nil
	}
	o.BeforeReload = []string{"true"}
	h := newHarness(t, o)
	st := h.settled(t)
	if st.Generations[0].Dir != rel {
		t.Errorf("generation 1 runs in %q, want the resolved release %q", st.Generations[0].Dir, rel)
	}
	if r := h.reload(t); !r.OK {
		t.Errorf("reload with before_reload failed: %+v", r)
	}
}

// TestReconfigureFromManyGoroutines reloads with new options (as a HUP does
// after re-reading the config) from several goroutines at once while status
// is read: under -race, any read of the app's options off its own goroutine
// (the signal loop, a watcher, the control socket) shows as a data race.
func TestReconfigureFromManyGoroutines(t *testing.T) {
	o := sleeper(2)
	var mu sync.Mutex
	n := 0
	h := newHarnessWith(t, o, func() ([]AppOptions, []string, error) {
		mu.Lock()
		defer mu.Unlock()
		n++
		next := o
		next.Workers = 1 + n%2
		return []AppOptions{next}, nil, nil
	})
	h.settled(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				reply := make(chan control.Result, 1)
				h.m.ReloadApps(nil, reply, nil)
				<-reply
				h.m.Status(time.Second)
			}
		}()
	}
	wg.Wait()
	h.settled(t)
}

// newBlockedHarness is a harness whose config read blocks: each read
// signals entered, waits until release is closed, and returns next.
func newBlockedHarness(t *testing.T, o, next AppOptions) (h *harness, entered <-chan struct{}, release chan struct{}) {
	in := make(chan struct{}, 8)
	release = make(chan struct{})
	h = newHarnessWith(t, o, func() ([]AppOptions, []string, error) {
		in <- struct{}{}
		<-release
		return []AppOptions{next}, nil, nil
	})
	return h, in, release
}

// TestReloadDoesNotWaitForTheConfig: Reload, which the PID-1 signal loop
// calls for a HUP, returns while the config is still being read, so that a
// slow read delays no signal; a ReloadApps's reply still comes only once
// the reload is done, with the new config applied. Reconfigure blocks until
// Reload has returned: were it called on Reload's goroutine, neither would
// ever return (the minute is a guard against that hang, not a measure).
func TestReloadDoesNotWaitForTheConfig(t *testing.T) {
	o := sleeper(1)
	next := o
	next.Workers = 2
	h, entered, release := newBlockedHarness(t, o, next)
	h.settled(t)
	reply := make(chan control.Result, 1)
	returned := make(chan struct{})
	go func() {
		h.m.ReloadApps(nil, reply, nil)
		h.m.Reload()
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(time.Minute):
		close(release) // let the old code's Reload return, and fail
		t.Fatal("Reload and ReloadApps waited for Reconfigure to read the config")
	}
	<-entered // the config is being read now, and cannot finish
	select {
	case r := <-reply:
		t.Fatalf("reply before the config was read: %+v", r)
	default:
	}
	close(release)
	select {
	case r := <-reply:
		if !r.OK {
			t.Fatalf("reload failed: %+v", r)
		}
	case <-time.After(time.Minute):
		t.Fatal("no reply once the config was read")
	}
	if st := h.settled(t); st.Workers != 2 {
		t.Errorf("serving with %d workers, want the new config's 2", st.Workers)
	}
}

// TestReloadAnsweredAcrossStop: a reload whose config is still being read
// when rotini stops, and one asked once every app has stopped, each get an
// answer ("rotini is stopping"): `reload --wait` never waits for nothing.
func TestReloadAnsweredAcrossStop(t *testing.T) {
	o := sleeper(1)
	h, entered, release := newBlockedHarness(t, o, o)
	h.settled(t)
	answer := func(what string, reply <-chan control.Result) {
		t.Helper()
		select {
		case r := <-reply:
			if r.OK || r.Reason != "rotini is stopping" {
				t.Errorf("%s: %+v, want failed: rotini is stopping", what, r)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%s: no answer", what)
		}
	}
	during := make(chan control.Result, 1)
	h.m.ReloadApps(nil, during, nil)
	<-entered // the config is being read, and cannot finish yet
	h.m.Stop(true)
	select {
	case code := <-h.m.Done():
		h.m.doneC <- code // for the harness's cleanup, which waits for it too
	case <-time.After(time.Minute):
		t.Fatal("the manager did not stop")
	}
	close(release)
	answer("a reload asked while the config was read", during)
	after := make(chan control.Result, 2)
	h.m.ReloadApps([]string{o.Name, "nope"}, after, nil)
	got := map[string]control.Result{}
	for range 2 {
		select {
		case r := <-after:
			got[r.App] = r
		case <-time.After(time.Minute):
			t.Fatalf("a reload asked after the stop: answers %+v, want 2", got)
		}
	}
	if r := got["nope"]; r.OK || r.Reason != `no app named "nope"` {
		t.Errorf("unknown app after the stop: %+v", r)
	}
	if r := got[o.Name]; r.OK || r.Reason != "rotini is stopping" {
		t.Errorf("app after the stop: %+v, want failed: rotini is stopping", r)
	}
}

// TestInvalidConfigFailsEveryReload: a config that cannot be read fails
// each app's reload, named or not, and the serving generation goes on
// with its options.
func TestInvalidConfigFailsEveryReload(t *testing.T) {
	h := newHarnessWith(t, sleeper(1), func() ([]AppOptions, []string, error) {
		return nil, nil, errors.New("config.hcl:3: broken")
	})
	before := h.settled(t)
	reply := make(chan control.Result, 2)
	h.m.ReloadApps([]string{"app", "nope"}, reply, nil)
	for range 2 {
		select {
		case r := <-reply:
			if r.OK {
				t.Errorf("reload of %s succeeded on an invalid config: %+v", r.App, r)
			}
			if r.App == "app" && !strings.Contains(r.Reason, "broken") {
				t.Errorf("app's reload failed for %q, want the config's error", r.Reason)
			}
		case <-time.After(time.Minute):
			t.Fatal("no reply for an invalid config")
		}
	}
	if st := h.settled(t); st.Serving != before.Serving || st.Workers != before.Workers {
		t.Errorf("serving %d with %d workers after a refused config, want %d with %d", st.Serving, st.Workers, before.Serving, before.Workers)
	}
}
