package control

import (
	"fmt"
	"sync"
	"time"

	"github.com/rotini-dev/rotini/sockets"
)

// fakeBackend is a Backend with no processes: reloads finish at once,
// moving each app to its next generation, unless reloadFn says otherwise.
type fakeBackend struct {
	mu       sync.Mutex
	apps     []AppStatus
	healthy  bool
	reason   string
	reloads  [][]string
	scales   []string // "app=N"
	stops    []bool
	stopped  chan struct{}
	fail     map[string]string // app -> reason its reload fails with
	reloadFn func(names []string, reply chan<- Result, progress chan<- Event)
	panics   bool // Status panics
}

func newFake() *fakeBackend {
	started := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	return &fakeBackend{
		healthy: true,
		stopped: make(chan struct{}, 8),
		apps: []AppStatus{{
			Name: "web", Serving: 6, Workers: 2, Mode: "rotate", Ready: true,
			Generations: []GenerationStatus{{
				Number: 6, State: "serving", Ready: true, Started: started,
				Workers: []WorkerStatus{
					{Pid: 101, Index: 0, State: "ready", Started: started, RSS: 40 << 20},
					{Pid: 102, Index: 1, State: "ready", Started: started, Restarts: 2, RSS: 41 << 20},
				},
			}},
			LastReload: &Result{App: "web", OK: true, Generation: 6, Duration: 1300 * time.Millisecond},
		}, {
			Name: "jobs", Serving: 1, Workers: 1, Mode: "signal", Ready: true,
		}},
	}
}

func (f *fakeBackend) Status(time.Duration) []AppStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.panics {
		panic("status exploded")
	}
	return append([]AppStatus(nil), f.apps...)
}

func (f *fakeBackend) ReloadApps(names []string, reply chan<- Result, progress chan<- Event) {
	f.mu.Lock()
	f.reloads = append(f.reloads, names)
	fn := f.reloadFn
	f.mu.Unlock()
	if fn != nil {
		fn(names, reply, progress)
		return
	}
	if len(names) == 0 {
		for _, a := range f.Status(0) {
			names = append(names, a.Name)
		}
	}
	for _, n := range names {
		f.mu.Lock()
		var app *AppStatus
		for i := range f.apps {
			if f.apps[i].Name == n {
				app = &f.apps[i]
			}
		}
		if app == nil {
			f.mu.Unlock()
			if reply != nil {
				reply <- Result{App: n, Reason: fmt.Sprintf("no app named %q", n)}
			}
			continue
		}
		old, next := app.Serving, app.Serving+1
		reason, fails := f.fail[n]
		if !fails {
			app.Serving = next
		}
		f.mu.Unlock()
		emit := func(e Event) {
			e.App = n
			select {
			case progress <- e:
			default:
			}
		}
		emit(Event{Kind: KindStarting, Generation: old, Message: fmt.Sprintf("reload (rotate) of %s, serving generation %d", n, old)})
		emit(Event{Kind: KindGeneration, Generation: next, Total: 2, Message: fmt.Sprintf("starting generation %d (2 workers)", next)})
		if fails {
			emit(Event{Kind: KindFailed, Generation: old, Message: fmt.Sprintf("failed: %s; generation %d still serving", reason, old)})
			if reply != nil {
				reply <- Result{App: n, Generation: old, Reason: reason, Duration: 200 * time.Millisecond}
			}
			continue
		}
		emit(Event{Kind: KindWorkerReady, Generation: next, Ready: 1, Total: 2, Message: "ready 1/2 in 1s"})
		emit(Event{Kind: KindWorkerReady, Generation: next, Ready: 2, Total: 2, Message: "ready 2/2 in 1.2s"})
		emit(Event{Kind: KindReady, Generation: next, Total: 2, Message: fmt.Sprintf("generation %d ready (2/2) in 1.2s", next)})
		emit(Event{Kind: KindDraining, Generation: old, Message: fmt.Sprintf("draining generation %d", old)})
		emit(Event{Kind: KindDone, Generation: next, Message: fmt.Sprintf("done: generation %d serving, in 1.3s", next)})
		if reply != nil {
			reply <- Result{App: n, OK: true, Generation: next, Duration: 1300 * time.Millisecond}
		}
	}
}

func (f *fakeBackend) ScaleApp(name string, workers int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if name == "nope" {
		return fmt.Errorf("no app named %q", name)
	}
	f.scales = append(f.scales, fmt.Sprintf("%s=%d", name, workers))
	return nil
}

func (f *fakeBackend) Health() (bool, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.healthy, f.reason
}

func (f *fakeBackend) Listeners() []sockets.ListenerStatus {
	return []sockets.ListenerStatus{{Name: "http", Address: "127.0.0.1:8000"}}
}

func (f *fakeBackend) Stop(fast bool) {
	f.mu.Lock()
	f.stops = append(f.stops, fast)
	f.mu.Unlock()
	f.stopped <- struct{}{}
}
