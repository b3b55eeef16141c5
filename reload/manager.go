package reload

import (
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/activation"
	"github.com/rotini-dev/rotini/control"
	"github.com/rotini-dev/rotini/hold"
	"github.com/rotini-dev/rotini/procfs"
	"github.com/rotini-dev/rotini/sockets"
	"github.com/rotini-dev/rotini/watch"
)

// Manager runs every app of a config and is rotini's workload in managed
// mode. Its methods may be called from any goroutine; each forwards to the
// apps' goroutines (or, for a reload, its reloader goroutine) and returns
// without waiting for processes or the config.
type Manager struct {
	o       Options
	clock   clock // the real one, except in the state machine's tests
	apps    []*app
	byName  map[string]*app
	doneC   chan int
	appDone chan appDone
	outputs outputs // prefixed worker output

	notify   *activation.Notifier // the apps' notify sockets and their routing
	requests reloads              // reloads waiting for the config to be read

	mu   sync.Mutex
	code *int // first crash-loop code
	// watchersClosed is set by wait, under mu, before it closes the apps'
	// watchers; a watcher set up after that is closed by its starter
	// instead of being kept where nobody would close it (watch).
	watchersClosed bool
}

// New prepares a Manager; Start starts the apps' first generations. It
// leaves the process's descriptors as they are: a caller whose inherited
// descriptors must not reach workers calls reaper.CloseInheritedOnExec
// first, as rotini's managed mode does.
func New(o Options) (*Manager, error) {
	m := &Manager{
		o:        o,
		clock:    realClock{},
		byName:   map[string]*app{},
		doneC:    make(chan int, 1),
		appDone:  make(chan appDone, len(o.Apps)),
		requests: reloads{wake: make(chan struct{}, 1), quit: make(chan struct{})},
	}
	known := map[string]bool{}
	if o.Sockets != nil {
		for _, l := range o.Sockets.Status() {
			known[l.Name] = true
		}
	}
	for _, ao := range o.Apps {
		for _, name := range ao.Listen {
			if !known[name] {
				return nil, fmt.Errorf("app %q: no listener named %q", ao.Name, name)
			}
		}
		a := newApp(m, ao)
		if ao.Proxy != nil {
			if err := startRelays(a, o.Sockets); err != nil {
				return nil, fmt.Errorf("app %q: %w", ao.Name, err)
			}
		}
		m.apps = append(m.apps, a)
		m.byName[ao.Name] = a
	}
	names := make([]string, len(m.apps))
	for i, a := range m.apps {
		names[i] = a.name
	}
	n, err := activation.NewNotifier(o.Log, o.RuntimeDir, names)
	if err != nil {
		return nil, err
	}
	m.notify = n
	return m, nil
}

// Start starts every app, then the watchers of those that have one, and
// returns at once. Setting up a watcher on a big tree takes a while (10,000
// directories: ~200 ms), so it happens in the background and delays neither
// the first generation nor the control socket. A watcher that cannot start
// is logged; its app runs without it.
func (m *Manager) Start() {
	m.notify.Serve()
	go m.reloader()
	for _, a := range m.apps {
		go a.run(m.appDone)
	}
	for _, a := range m.apps {
		if a.watchOpts != nil {
			go m.watch(a)
		}
	}
	go m.wait()
}

// watch sets up a's watcher and, unless rotini has stopped meanwhile,
// keeps it in a.watcher and starts it. Setting up may outlast every app:
// mu orders the keeping against wait, which sets watchersClosed before it
// closes the kept watchers, so each watcher is closed by exactly one of
// them and none delivers a change after rotini stopped.
func (m *Manager) watch(a *app) {
	// The same path as HUP: the config is read again too.
	reload := func(why string) { m.reload([]string{a.name}, nil, nil, why) }
	w := newWatcher(a, reload)
	if w == nil {
		return
	}
	m.mu.Lock()
	closed := m.watchersClosed
	if !closed {
		a.watcher.Store(w)
	}
	m.mu.Unlock()
	if closed {
		w.Close()
		return
	}
	// Start after Close (wait's, racing with this) does nothing.
	w.Start()
}

func (m *Manager) wait() {
	left := len(m.apps)
	code := 0
	for left > 0 {
		d := <-m.appDone
		left--
		if d.code != 0 && code == 0 {
			code = d.code
		}
	}
	m.mu.Lock()
	if m.code != nil {
		code = *m.code
	}
	m.watchersClosed = true
	m.mu.Unlock()
	for _, a := range m.apps {
		if w := a.watcher.Load(); w != nil {
			w.Close()
		}
	}
	m.notify.Close()
	close(m.requests.quit)
	for _, a := range m.apps {
		for _, r := range a.relays {
			r.Close()
		}
	}
	m.doneC <- code
}

// crashLoop ends rotini: every app stops and rotini exits with code.
func (m *Manager) crashLoop(app string, code int) {
	m.mu.Lock()
	if m.code == nil {
		m.code = &code
	}
	m.mu.Unlock()
	go m.Stop(false)
}

// Signal forwards sig to every worker's process group.
func (m *Manager) Signal(sig unix.Signal) {
	for _, a := range m.apps {
		a.send(evSignal{sig})
	}
}

// Stop drains every app.
//
// A graceful stop behind a holder first has the holder steer new
// connections to its standby socket (for the container that replaces this
// one); the serving generations then drain what their sockets queued
// before they get their stop signal, as at a switch.
func (m *Manager) Stop(fast bool) {
	handoff := !fast && m.o.Sockets != nil && m.o.Sockets.Leave()
	for _, a := range m.apps {
		a.send(evStop{fast: fast, handoff: handoff})
	}
}

// Supersede stops rotini gracefully because another rotini (a newer
// container, behind the same holder) now serves its listeners: nothing new
// reaches its generations, which drain what they have; it exits 0.
func (m *Manager) Supersede(by string) {
	m.o.Log.Info("superseded by a newer rotini: draining and stopping", "by", by)
	for _, a := range m.apps {
		a.send(evStop{handoff: true})
	}
}

// Reload re-reads the configuration and reloads every app; results are
// logged. It is what HUP does, and returns at once: the config is read on
// the Manager's reloader goroutine, never on the caller's (the PID-1
// signal loop).
func (m *Manager) Reload() { m.ReloadApps(nil, nil, nil) }

// ReloadApps reloads the named apps (all when names is empty) and sends one
// Result per app on reply, if reply is not nil, once its reload is done. An
// invalid config fails every app's reload at once and changes nothing. It
// returns at once, as Reload does.
func (m *Manager) ReloadApps(names []string, reply chan<- control.Result, progress chan<- control.Event) {
	m.reload(names, reply, progress, "")
}

// Scale changes every app's worker count by delta (TTIN/TTOU).
func (m *Manager) Scale(delta int) {
	for _, a := range m.apps {
		a.send(evScale{delta: delta})
	}
}

// ScaleApp sets the named app's worker count (all apps when name is "").
func (m *Manager) ScaleApp(name string, workers int) error {
	if workers < 1 {
		return fmt.Errorf("workers must be at least 1, not %d", workers)
	}
	if name == "" {
		for _, a := range m.apps {
			a.send(evScale{workers: workers})
		}
		return nil
	}
	a := m.byName[name]
	if a == nil {
		return fmt.Errorf("no app named %q", name)
	}
	a.send(evScale{workers: workers})
	return nil
}

// Health reports whether every app has a ready serving generation, and if
// not, why not in one line.
func (m *Manager) Health() (bool, string) {
	st := m.Status(2 * time.Second)
	if len(st) < len(m.apps) {
		return false, "rotini is stopping or busy"
	}
	for _, a := range st {
		if !a.Ready {
			return false, fmt.Sprintf("app %s: generation %d is not ready", a.Name, a.Serving)
		}
	}
	return true, "ok"
}

// Listeners describes the sockets rotini holds and where each listener's
// new connections go.
func (m *Manager) Listeners() []sockets.ListenerStatus {
	if m.o.Sockets == nil {
		return nil
	}
	return m.o.Sockets.Status()
}

// Holder is the holder this rotini takes its sockets from, as of the last
// Listeners call; nil without one.
func (m *Manager) Holder() *hold.HolderStatus {
	if h, ok := m.o.Sockets.(interface{ Holder() *hold.HolderStatus }); ok {
		return h.Holder()
	}
	return nil
}

// Done yields rotini's exit code once every app has stopped.
func (m *Manager) Done() <-chan int { return m.doneC }

// The status of an app, and its reloads' events and results, are in
// control's wire types: what the app's goroutine reports is what
// `rotini status` and `rotini reload --wait` show.

func (a *app) status() control.AppStatus {
	s := control.AppStatus{Name: a.name, Serving: a.serving.num, Workers: a.o.Workers, Mode: string(a.o.Reload), Ready: a.serving.ready && a.serving.state == serving, LastReload: a.last, LastStartError: a.lastStartErr}
	if w := a.watcher.Load(); w != nil {
		s.Watch = watchStatus(w.State())
	}
	for _, g := range a.allGens() {
		gs := control.GenerationStatus{Number: g.num, State: g.state.String(), Ready: g.ready, Dir: g.dir, Started: g.started, Ports: g.ports}
		for _, r := range a.relays {
			gs.Relayed += r.Active(g.num)
		}
		for _, w := range g.workers {
			gs.Workers = append(gs.Workers, control.WorkerStatus{Pid: w.pid, RSS: rss(w.pid), Index: w.index, State: w.state.String(), Started: w.started, Restarts: w.restarts})
		}
		sort.Slice(gs.Workers, func(i, j int) bool { return gs.Workers[i].Index < gs.Workers[j].Index })
		s.Generations = append(s.Generations, gs)
	}
	return s
}

// watchStatus is the watcher's state in the wire form.
func watchStatus(st watch.State) *control.WatchStatus {
	ws := &control.WatchStatus{Mode: st.Mode, Reason: st.Reason, Watches: st.Watches, Changes: st.Changes}
	if c := st.LastChange; c != nil {
		ws.LastChange = &control.WatchChange{Paths: c.Paths, Count: c.Count, First: c.First, Last: c.Last}
	}
	return ws
}

// failedMessage says that a reload failed for reason while generation
// serving goes on serving: the Message of its failed event and Result.
func failedMessage(reason string, serving int) string {
	return fmt.Sprintf("failed: %s; generation %d still serving", reason, serving)
}

// Status returns a snapshot of every app, or what it has after timeout.
func (m *Manager) Status(timeout time.Duration) []control.AppStatus {
	var out []control.AppStatus
	t := time.NewTimer(timeout)
	defer t.Stop()
	for _, a := range m.apps {
		reply := make(chan control.AppStatus, 1)
		select {
		case a.events <- statusReq{reply}:
		case <-a.quit:
			continue
		case <-t.C:
			return out
		}
		select {
		case s := <-reply:
			out = append(out, s)
		case <-a.quit:
		case <-t.C:
			return out
		}
	}
	return out
}

// RuntimeDir picks where rotini keeps its sockets: /run/rotini when it can
// write there (a container, or root), else a private directory under TMPDIR.
func RuntimeDir() string {
	if err := os.MkdirAll("/run/rotini", 0o755); err == nil {
		if f, err := os.CreateTemp("/run/rotini", ".probe"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return "/run/rotini"
		}
	}
	return fmt.Sprintf("%s/rotini-%d", os.TempDir(), os.Getpid())
}

// rss reads a process's resident set size from /proc (0 when gone).
func rss(pid int) int64 {
	n, _ := procfs.RSS(pid)
	return n
}
