package reload

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/control"
	"github.com/rotini-dev/rotini/hold"
	"github.com/rotini-dev/rotini/procfs"
	"github.com/rotini-dev/rotini/proxy"
	"github.com/rotini-dev/rotini/reaper"
	"github.com/rotini-dev/rotini/sockets"
	"github.com/rotini-dev/rotini/watch"
)

// Manager runs every app of a config and is rotini's workload in managed
// mode. Its methods may be called from any goroutine; each forwards to the
// apps' goroutines and returns without waiting for processes.
type Manager struct {
	o       Options
	clock   clock // the real one, except in the state machine's tests
	apps    []*app
	byName  map[string]*app
	doneC   chan int
	appDone chan appDone
	outputs outputs // prefixed worker output

	notifyDir    string
	notifyMarker *net.UnixConn
	notify       map[string]*notifyServer // by app name

	mu      sync.Mutex
	workers map[int]notifyTarget // pid -> notify handler
	parked  []parkedMsg          // notify messages from not yet registered pids
	code    *int                 // first crash-loop code
}

// parkedMsg is a notify message that arrived before its worker's pid was
// registered: a fast worker can send READY=1 between fork and the moment
// the app's goroutine records the pid.
type parkedMsg struct {
	app        string
	candidates []int
	msg        notifyMsg
	at         time.Time
}

// Parked messages are kept this long, and at most this many.
const (
	parkTTL = 30 * time.Second
	parkMax = 1024
)

// New prepares a Manager; Start starts the apps' first generations.
func New(o Options) (*Manager, error) {
	reaper.CloseInheritedOnExec()
	m := &Manager{
		o:       o,
		clock:   realClock{},
		byName:  map[string]*app{},
		doneC:   make(chan int, 1),
		appDone: make(chan appDone, len(o.Apps)),
		workers: map[int]notifyTarget{},
		notify:  map[string]*notifyServer{},
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
			if err := m.startRelays(a); err != nil {
				return nil, fmt.Errorf("app %q: %w", ao.Name, err)
			}
		}
		m.apps = append(m.apps, a)
		m.byName[ao.Name] = a
	}
	// Each app's notify socket exists even if it does not ask for it now,
	// so that a reload that turns `notify` on needs no restart.
	dir, err := newNotifyDir(o.Log.Named("notify"), o.RuntimeDir)
	if err != nil {
		return nil, err
	}
	m.notifyDir = dir
	// notify.sock marks the directory as alive for as long as this rotini
	// is: a rotini that starts later in the same runtime directory can
	// tell a dead one's directory (connection refused) from a live one's.
	// Nothing reads it and no worker is given it.
	marker, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "notify.sock"), Net: "unixgram"})
	if err != nil {
		m.closeNotify()
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	_ = os.Chmod(filepath.Join(dir, "notify.sock"), 0o600)
	m.notifyMarker = marker
	for i, a := range m.apps {
		name := a.name
		path := filepath.Join(dir, "app-"+name+".sock")
		if len(path) > sockets.MaxUnixPath {
			path = filepath.Join(dir, fmt.Sprintf("app-%d.sock", i))
		}
		n, err := newNotifyServer(o.Log.Named("notify").Named(name), path,
			func(c []int, msg notifyMsg) { m.deliver(name, c, msg) })
		if err != nil {
			m.closeNotify()
			return nil, err
		}
		m.notify[name] = n
	}
	return m, nil
}

// Start starts every app, then the watchers of those that have one, and
// returns at once. Setting up a watcher on a big tree takes a while (10,000
// directories: ~200 ms), so it happens in the background and delays neither
// the first generation nor the control socket. A watcher that cannot start
// is logged; its app runs without it.
func (m *Manager) Start() {
	for _, n := range m.notify {
		go n.serve()
	}
	for _, a := range m.apps {
		go a.run(m.appDone)
	}
	for _, a := range m.apps {
		if a.watchOpts != nil {
			go func() {
				if w := m.startWatcher(a); w != nil {
					a.watcher.Store(w)
				}
			}()
		}
	}
	go m.wait()
}

func (m *Manager) startWatcher(a *app) *watch.Watcher {
	o := *a.watchOpts
	o.Log = a.log.Named("watch")
	o.OnChange = func(c watch.Change) {
		why := fmt.Sprintf("watch: %d changed", c.Count)
		if len(c.Paths) > 0 {
			why += " (" + c.Paths[0]
			if c.Count > 1 {
				why += ", …"
			}
			why += ")"
		}
		// The same path as HUP: the config is read again too.
		m.reload([]string{a.name}, nil, nil, why)
	}
	w, err := watch.New(o)
	if err != nil {
		a.log.Error("cannot watch; reload by signal or CLI only", "paths", o.Paths, "error", err)
		return nil
	}
	w.Start()
	return w
}

// startRelays starts proxy mode for a: rotini accepts on a's listeners and
// relays to the serving generation's ports. The sockets are shared by every
// generation (the relay, not the kernel, picks the generation).
func (m *Manager) startRelays(a *app) error {
	a.relays = map[string]*proxy.Relay{}
	a.ports = &proxy.Ports{Min: a.o.Proxy.PortMin, Max: a.o.Proxy.PortMax}
	for _, name := range a.o.Listen {
		s, err := m.o.Sockets.Socket(name, 1)
		if err != nil {
			return err
		}
		ln, err := proxy.FileListener(s.File)
		if err != nil {
			return fmt.Errorf("listener %s: %w", name, err)
		}
		o := a.o.Proxy.Relay
		o.Log = a.log.Named("proxy").With("listener", name)
		r := proxy.New(ln, o)
		a.relays[name] = r
		go func() {
			if err := r.Serve(); err != nil && !errors.Is(err, proxy.ErrClosed) {
				o.Log.Error("relay stopped", "error", err)
			}
		}()
	}
	return nil
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
	m.mu.Unlock()
	for _, a := range m.apps {
		if w := a.watcher.Load(); w != nil {
			w.Close()
		}
	}
	m.closeNotify()
	for _, a := range m.apps {
		for _, r := range a.relays {
			r.Close()
		}
	}
	m.doneC <- code
}

func (m *Manager) closeNotify() {
	for _, n := range m.notify {
		n.close()
	}
	if m.notifyMarker != nil {
		m.notifyMarker.Close()
	}
	if m.notifyDir != "" {
		_ = os.RemoveAll(m.notifyDir)
	}
}

// notifyTarget is a registered worker: its app, and where its messages go.
type notifyTarget struct {
	app string
	h   func(notifyMsg)
}

// register records a worker of app and its notify handler, and replays,
// from another goroutine, any message that was waiting for it on app's
// socket (the handler feeds the app's loop, which is the caller).
func (m *Manager) register(app string, pid int, h func(notifyMsg)) {
	m.mu.Lock()
	m.workers[pid] = notifyTarget{app: app, h: h}
	var replay []notifyMsg
	keep := m.parked[:0]
	for _, p := range m.parked {
		if p.app == app && slices.Contains(p.candidates, pid) {
			replay = append(replay, p.msg)
		} else {
			keep = append(keep, p)
		}
	}
	m.parked = keep
	m.mu.Unlock()
	if len(replay) > 0 {
		go func() {
			for _, msg := range replay {
				h(msg)
			}
		}()
	}
}

func (m *Manager) unregister(pid int) {
	m.mu.Lock()
	delete(m.workers, pid)
	m.mu.Unlock()
}

// deliver gives a notify message that arrived on app's socket to the
// worker of app it belongs to, or parks it until that worker is
// registered. A worker of another app among the candidates gets nothing:
// the nearest registered ancestor decides, and if it is not app's, the
// message is not app's either.
func (m *Manager) deliver(app string, candidates []int, msg notifyMsg) {
	m.mu.Lock()
	for _, c := range candidates {
		if t, ok := m.workers[c]; ok {
			m.mu.Unlock()
			if t.app == app {
				t.h(msg)
			} else {
				m.o.Log.Debug("notify message from another app's worker dropped", "app", app, "pid", msg.Pid, "worker_of", t.app)
			}
			return
		}
	}
	now := time.Now()
	keep := m.parked[:0]
	for _, p := range m.parked {
		if now.Sub(p.at) < parkTTL {
			keep = append(keep, p)
		}
	}
	m.parked = append(keep, parkedMsg{app: app, candidates: candidates, msg: msg, at: now})
	if len(m.parked) > parkMax {
		m.parked = m.parked[len(m.parked)-parkMax:]
	}
	m.mu.Unlock()
	m.o.Log.Debug("notify message parked until its worker is known", "pid", msg.Pid, "ready", msg.Ready)
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
// logged. It is what HUP does.
func (m *Manager) Reload() { m.ReloadApps(nil, nil, nil) }

// ReloadApps reloads the named apps (all when names is empty) and sends one
// Result per app on reply, if reply is not nil. An invalid config fails every
// app's reload at once and changes nothing.
func (m *Manager) ReloadApps(names []string, reply chan<- control.Result, progress chan<- control.Event) {
	m.reload(names, reply, progress, "")
}

func (m *Manager) reload(names []string, reply chan<- control.Result, progress chan<- control.Event, why string) {
	targets := m.apps
	if len(names) > 0 {
		targets = nil
		for _, n := range names {
			a := m.byName[n]
			if a == nil {
				if reply != nil {
					reason := fmt.Sprintf("no app named %q", n)
					reply <- control.Result{App: n, Reason: reason, Message: "failed: " + reason}
				}
				continue
			}
			targets = append(targets, a)
		}
	}
	var opts map[string]*AppOptions
	if m.o.Reconfigure != nil {
		apps, notes, err := m.o.Reconfigure()
		if err != nil {
			m.o.Log.Error("reload refused, keeping the running config", "error", err)
			// Through each app's loop, which knows the generation that
			// goes on serving.
			for _, a := range targets {
				a.send(reloadReq{reply: reply, progress: progress, fail: err.Error()})
			}
			return
		}
		if progress != nil {
			for _, n := range notes {
				select {
				case progress <- control.Event{Time: time.Now(), App: "rotini", Kind: control.KindNote, Message: n}:
				default:
				}
			}
		}
		opts = map[string]*AppOptions{}
		for i := range apps {
			opts[apps[i].Name] = &apps[i]
		}
	}
	for _, a := range targets {
		var o *AppOptions
		if opts != nil {
			o = opts[a.name]
			if o == nil {
				m.o.Log.Warn("reload: app removed from config; removing apps needs a restart of rotini", "app", a.name)
			}
		}
		a.send(reloadReq{opts: o, reply: reply, progress: progress, why: why})
	}
	for name := range opts {
		if m.byName[name] == nil {
			m.o.Log.Warn("reload: new app in config; adding apps needs a restart of rotini", "app", name)
		}
	}
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

type statusReq struct{ reply chan control.AppStatus }

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
