package reload

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/activation"
	"github.com/rotini-dev/rotini/control"
	"github.com/rotini-dev/rotini/exitcode"
	pid1 "github.com/rotini-dev/rotini/init"
	"github.com/rotini-dev/rotini/proxy"
	"github.com/rotini-dev/rotini/reaper"
	"github.com/rotini-dev/rotini/sockets"
	"github.com/rotini-dev/rotini/watch"
)

type genState int

const (
	booting genState = iota
	serving
	draining
)

func (s genState) String() string { return [...]string{"booting", "serving", "draining"}[s] }

// generation is one start of an app's workers from one configuration and
// one resolved code directory.
type generation struct {
	app       *app
	num       int
	o         AppOptions
	dir       string              // resolved at start: a `current` symlink pins the release
	names     []string            // the app's listeners this generation has a socket of
	listeners []*sockets.Listener // in fd order: names', then the probe's
	probe     *sockets.Listener   // private loopback socket for `ready { http = "/path" }`
	err       error               // the generation could not get its sockets
	// Proxy mode: worker index -> listener name -> the worker's loopback
	// port (an app that binds $PORT cannot share it with a sibling).
	ports     map[int]map[string]int
	workers   map[int]*worker
	launched  int // worker slots 0…launched-1 were started (see AppOptions.Batch)
	state     genState
	ready     bool
	timedOut  bool // readiness timeout passed (initial generation only)
	started   time.Time
	stopAt    time.Time
	killTimer timer
	// readyTimer bounds the wait for readiness; stopped once ready or
	// draining, so that it does not keep the generation alive for its
	// whole timeout after it has gone.
	readyTimer timer
	// handoff: replaced, receiving no new connection, not yet signalled:
	// its workers accept what its sockets still queue.
	handoff   bool
	signalled bool // the stop signal was sent
	// crashes are the deaths counted toward crash_limit, one per burst
	// (see crashed); backoff is each worker slot's next restart delay.
	crashes []crashEvent
	backoff map[int]time.Duration
	// helpers are the detached processes of a draining generation that
	// were sent its stop signal (see helpers.go); helpersKilled is set
	// once they were SIGKILLed at the stop timeout.
	helpers         map[int]procIdentity
	helpersKilled   bool
	helpersKilledAt time.Time
	helpersScanned  time.Time // last full scan once the workers were gone
	helperPoll      bool      // an evHelpers is pending
	// forkBackoff is each worker slot's next delay before another try to
	// start it after a fork failed for lack of processes (see fork.go).
	forkBackoff map[int]time.Duration
}

// crashEvent is one death counted toward crash_limit: the first death of a
// burst, and the worker slots that died in it.
type crashEvent struct {
	at    time.Time
	slots map[int]bool
}

// burstWindow groups deaths: workers of one generation that die within
// this long of a first death, each for the first time in it, are one
// event (an OOM kill, an operator's kill of every worker), not several.
const burstWindow = time.Second

// rotation is a reload in progress.
type rotation struct {
	next     *generation
	old      *generation
	started  time.Time
	waiters  []chan<- control.Result
	progress []chan<- control.Event
	cancel   chan struct{} // stops before_reload
}

type app struct {
	// name and watchOpts never change (a reload cannot rename an app or
	// change its watch block): other goroutines may read them. Everything
	// else, o included, is the app goroutine's alone.
	name      string
	watchOpts *watch.Options
	m         *Manager
	o         AppOptions
	log       hclog.Logger
	events    chan appEvent
	quit      chan struct{} // closed when the loop ends
	// reloadMu orders sendReload against the end of the loop, so that a
	// reload request is either handled by the loop or answered as
	// refused, never left in events; ended is set under it.
	reloadMu sync.Mutex
	ended    bool

	gens     int // generations started so far
	serving  *generation
	rot      *rotation
	draining []*generation
	pending  []chan<- control.Result // reload requests not yet started
	pendProg []chan<- control.Event
	pendOpts *AppOptions
	wantMore bool
	stopping bool
	fast     bool
	fatal    *int // crash loop: rotini must exit with this code
	last     *control.Result
	watcher  atomic.Pointer[watch.Watcher] // nil until watching (or never)
	// Proxy mode: a relay per listener, from rotini's socket to the
	// serving generation's port; nil otherwise. Fixed for rotini's life.
	relays map[string]*proxy.Relay
	ports  *proxy.Ports
	scaled *scaling // nil unless scaled since the config was read
	// forkFailures counts the failed forks of the current episode of
	// resource exhaustion (see fork.go).
	forkFailures int
	// lastStartErr is the last worker that could not be started, for
	// status: its cause is otherwise only in the log.
	lastStartErr *control.StartError
	// observe, when set (by tests, before Start), is called on the app's
	// goroutine after each event is handled.
	observe func(appEvent)
}

func newApp(m *Manager, o AppOptions) *app {
	return &app{
		m: m, o: o, name: o.Name, watchOpts: o.Watch,
		log:    m.o.Log.Named(o.Name),
		events: make(chan appEvent, 256),
		quit:   make(chan struct{}),
	}
}

// send delivers an event unless the loop has ended.
func (a *app) send(ev appEvent) {
	select {
	case a.events <- ev:
	case <-a.quit:
	}
}

// after delivers ev once d has passed on the Manager's clock.
func (a *app) after(d time.Duration, ev appEvent) timer {
	return a.m.clock.AfterFunc(d, func() { a.send(ev) })
}

// run is the app's goroutine; it returns when the app has stopped, with the
// exit code rotini should use (0, or a crashed worker's code).
func (a *app) run(done chan<- appDone) {
	a.startServing()
	for {
		ev := <-a.events
		a.handle(ev)
		if a.observe != nil {
			a.observe(ev)
		}
		if a.stopping && a.live() == 0 {
			code := 0
			if a.fatal != nil {
				code = *a.fatal
			}
			close(a.quit)
			a.refuseQueuedReloads()
			done <- appDone{name: a.name, code: code}
			return
		}
	}
}

type appDone struct {
	name string
	code int
}

func (a *app) live() int {
	n := 0
	for _, g := range a.allGens() {
		n += len(g.workers)
	}
	for _, g := range a.draining {
		n += len(g.helpers)
	}
	return n
}

// allGens lists every generation with workers or about to have them, once.
func (a *app) allGens() []*generation {
	gs := append([]*generation(nil), a.draining...)
	for _, g := range []*generation{a.serving, a.next()} {
		if g != nil && g.state != draining {
			gs = append(gs, g)
		}
	}
	return gs
}

func (a *app) next() *generation {
	if a.rot == nil || a.rot.next == a.serving {
		return nil
	}
	return a.rot.next
}

// handle acts on one event. Every type of the closed set in events.go has
// a case; one without is a bug, which panics rather than being dropped.
func (a *app) handle(ev appEvent) {
	switch e := ev.(type) {
	case reloadReq:
		a.requestReload(e)
	case evExit:
		a.workerExited(e.w, e.exit)
	case evStartFailed:
		a.startFailed(e.w)
	case evNotify:
		if e.msg.Ready && !e.w.notified {
			e.w.notified = true
			a.log.Debug("worker notified ready", "generation", e.w.gen.num, "worker", e.w.index, "pid", e.w.pid, "from", e.msg.Pid)
			a.checkWorker(e.w)
		}
	case evProbed:
		e.w.probed = true
		a.checkWorker(e.w)
	case evAged:
		e.w.aged = true
		a.checkWorker(e.w)
	case evReadyTimeout:
		a.readyTimeout(e.g)
	case evKill:
		if len(e.g.workers) > 0 {
			a.log.Warn("stop timeout: killing workers", "generation", e.g.num, "workers", len(e.g.workers), "timeout", e.g.o.StopTimeout)
			for _, w := range e.g.workers {
				w.kill(unix.SIGKILL)
			}
		}
		a.killHelpers(e.g)
		a.maybeDrained(e.g)
	case evHelpers:
		e.g.helperPoll = false
		a.maybeDrained(e.g)
	case evRestart:
		if e.g.state != draining && !a.stopping {
			if _, taken := e.g.workers[e.index]; !taken && e.index < e.g.o.Workers {
				a.spawn(e.g, e.index, e.prior+1)
			}
		}
	case evForkFailed:
		a.forkFailed(e)
	case evForkRetry:
		if e.g.state != draining && !a.stopping {
			if _, taken := e.g.workers[e.index]; !taken && e.index < e.g.o.Workers {
				a.spawn(e.g, e.index, e.restarts)
			}
		}
	case evBeforeReload:
		a.beforeReloadDone(e.r, e.err)
	case evHandedOff:
		if e.g.handoff && !e.g.signalled {
			a.stopGeneration(e.g, e.why)
		}
	case evStop:
		a.stop(e.fast, e.handoff)
	case evSignal:
		for _, g := range a.allGens() {
			for _, w := range g.workers {
				w.kill(e.sig)
			}
		}
	case evScale:
		if e.workers == 0 {
			e.workers = a.o.Workers + e.delta
		}
		a.scale(e.workers)
	case evKillWorker:
		if e.w.gen.workers[e.w.index] == e.w {
			e.w.kill(unix.SIGKILL)
		}
	case statusReq:
		e.reply <- a.status()
	default:
		panic(fmt.Sprintf("reload: app %s has no case for event %T", a.name, ev))
	}
}

// newGeneration prepares generation N+1; startWorkers starts it. They are
// apart so the caller can record what the generation is for (serving, or the
// next of a rotation) before any of its workers can exit.
func (a *app) newGeneration(o AppOptions) *generation {
	a.gens++
	g := &generation{
		app: a, num: a.gens, o: o, workers: map[int]*worker{},
		started: time.Now(), backoff: map[int]time.Duration{},
	}
	if a.relays != nil {
		g.ports = map[int]map[string]int{}
		g.dir = a.resolveDir(g)
		return g
	}
	g.dir = a.resolveDir(g)
	for _, name := range o.Listen {
		l, err := a.m.o.Sockets.Socket(name, g.num)
		if err != nil {
			g.err = fmt.Errorf("listener %s: %w", name, err)
			a.releaseSockets(g)
			return g
		}
		g.names = append(g.names, name)
		g.listeners = append(g.listeners, l)
	}
	if strings.HasPrefix(o.Ready.HTTP, "/") && a.relays == nil {
		p, err := sockets.Listen(sockets.ListenerOptions{Name: "rotini-probe", Network: "tcp4", Address: "127.0.0.1:0", Backlog: 64})
		if err != nil {
			a.log.Error("probe socket", "error", err)
		} else {
			g.probe = p
			g.listeners = append(g.listeners, p)
		}
	}
	return g
}

func (a *app) startWorkers(g *generation) {
	if g.dir != "" {
		a.log.Info("generation starting", "generation", g.num, "workers", g.o.Workers, "dir", g.dir)
	} else {
		a.log.Info("generation starting", "generation", g.num, "workers", g.o.Workers)
	}
	if g.o.Ready.Timeout > 0 {
		g.readyTimer = a.after(g.o.Ready.Timeout, evReadyTimeout{g})
	}
	a.nextBatch(g)
}

// nextBatch starts the generation's next batch of workers once every worker
// started so far is ready: a batch that cannot get ready stops the start
// there, and never has more than Batch workers booting at once.
func (a *app) nextBatch(g *generation) {
	if g.state == draining || g.launched >= g.o.Workers {
		return
	}
	for i := 0; i < g.launched; i++ {
		if w := g.workers[i]; w == nil || w.state != ready {
			return
		}
	}
	from, to := g.launched, g.o.Workers
	if b := g.o.Batch; b > 0 && from+b < to {
		to = from + b
	}
	// Recorded before spawning: a worker that is ready at once comes back
	// here through checkWorker, and must see this batch as started.
	g.launched = to
	if from > 0 || to < g.o.Workers {
		a.log.Info("batch starting", "generation", g.num, "workers", fmt.Sprintf("%d-%d", from, to-1), "of", g.o.Workers)
	}
	for i := from; i < to; i++ {
		if _, taken := g.workers[i]; !taken {
			a.spawn(g, i, 0)
		}
	}
}

// startServing starts a generation that serves from the start: the first
// one, or the one after a `restart` reload.
func (a *app) startServing() *generation {
	g := a.newGeneration(a.o)
	g.state = serving
	a.serving = g
	if g.err != nil {
		a.log.Error("generation cannot start", "generation", g.num, "error", g.err)
	}
	// Steered once ready (checkGeneration): a lone rotini's first socket
	// receives connections from the start anyway, queued until workers
	// accept; behind a holder another container may serve until then.
	a.startWorkers(g)
	return g
}

// steer sends every new connection of g's listeners to g's sockets, or in
// proxy mode relays them to g's ports. A relay's first target is set only
// once its generation is ready, since nothing listens on the port before.
func (a *app) steer(g *generation) {
	if a.relays != nil {
		if !g.ready {
			return
		}
		idx := slices.Sorted(maps.Keys(g.ports))
		for name, r := range a.relays {
			var addrs []string
			for _, i := range idx {
				if i < g.o.Workers {
					addrs = append(addrs, net.JoinHostPort("127.0.0.1", strconv.Itoa(g.ports[i][name])))
				}
			}
			if len(addrs) > 0 {
				r.SetTarget(g.num, addrs...)
				a.log.Info("relaying new connections", "generation", g.num, "listener", name, "to", strings.Join(addrs, " "))
			}
		}
		return
	}
	for _, name := range g.names {
		if err := a.m.o.Sockets.Serve(name, g.num); err != nil {
			a.log.Error("cannot steer new connections", "generation", g.num, "listener", name, "error", err)
		}
	}
}

// releaseSockets gives back g's sockets once its workers are gone.
func (a *app) releaseSockets(g *generation) {
	for _, name := range g.names {
		a.m.o.Sockets.Release(name, g.num)
	}
	g.names = nil
	if a.ports != nil && g.ports != nil {
		var ps []int
		for _, wp := range g.ports {
			for _, p := range wp {
				ps = append(ps, p)
			}
		}
		a.ports.Release(ps)
		g.ports = nil
	}
}

// handoff retires g, which no longer receives new connections: it gets its
// stop signal once its workers have accepted what its sockets queued, and a
// grace for handshakes that were in flight at the switch has passed. A
// naive drain (stop accepting, finish what was accepted) then loses
// nothing.
func (a *app) handoff(g *generation, why string) {
	g.state = draining
	g.stopAt = time.Now()
	g.handoff = true
	a.draining = append(a.draining, g)
	if g.readyTimer != nil {
		g.readyTimer.Stop()
	}
	socks, names, num := a.m.o.Sockets, append([]string(nil), g.names...), g.num
	limit := g.o.StopTimeout
	if a.relays != nil {
		// Connections already relayed to g finish there; g gets its stop
		// signal once they have closed, or at its stop timeout.
		var drained []<-chan struct{}
		for _, r := range a.relays {
			drained = append(drained, r.Drained(num))
		}
		go func() {
			t := time.NewTimer(limit)
			defer t.Stop()
			for _, d := range drained {
				select {
				case <-d:
				case <-t.C:
					a.send(evHandedOff{g, why + "; relayed connections still open at stop_timeout"})
					return
				case <-a.quit:
					return
				}
			}
			a.send(evHandedOff{g, why})
		}()
		return
	}
	go func() {
		var grace time.Duration
		for _, n := range names {
			grace = max(grace, socks.Grace(n))
		}
		deadline := time.Now().Add(limit)
		for time.Now().Before(deadline) {
			queued := 0
			for _, n := range names {
				queued += max(socks.Queued(n, num), 0)
			}
			if queued == 0 {
				break
			}
			select {
			case <-time.After(5 * time.Millisecond):
			case <-a.quit:
				return
			}
		}
		if grace > 0 {
			select {
			case <-time.After(grace):
			case <-a.quit:
				return
			}
		}
		a.send(evHandedOff{g, why})
	}()
}

// resolveDir evaluates the app's dir and resolves symlinks now, so that a
// later `ln -sfn releases/43 current` does not move a running generation.
func (a *app) resolveDir(g *generation) string {
	_, _, dir, err := g.o.Spawn(SpawnVars{FDs: listenFDs(g.o), Ports: listenPorts(g.o), Generation: g.num})
	if err != nil || dir == "" {
		return dir
	}
	if r, err := filepath.EvalSymlinks(dir); err == nil {
		return r
	}
	return dir
}

func (a *app) spawn(g *generation, index, restarts int) {
	spec, err := a.buildSpawn(g, index)
	var pid int
	var exit <-chan reaper.Exit
	if err == nil {
		pid, exit, err = a.m.o.Reaper.Start(spec.path, spec.argv, spec.attr)
		if err != nil && spec.path != spec.cmd {
			err = fmt.Errorf("exec %s (shim for %s): %w", spec.path, spec.cmd, err)
		} else if err != nil {
			err = fmt.Errorf("exec %s: %w", spec.cmd, err)
		}
		if p := spec.pipes; p != nil {
			if err != nil {
				p.failed()
			} else {
				p.started(fmt.Sprintf("%s/%d/%d | ", a.name, g.num, index), &a.m.outputs)
			}
		}
	}
	if err != nil && errors.Is(err, unix.EAGAIN) {
		// The process limit (a pids cgroup, RLIMIT_NPROC) is reached: not
		// the worker's fault, so not a crash. Handled through the loop,
		// so that the caller finishes what it was doing first.
		go a.send(evForkFailed{g: g, index: index, restarts: restarts, err: err})
		return
	}
	if err != nil {
		a.log.Error("cannot start worker", "generation", g.num, "worker", index, "error", err)
		w := &worker{gen: g, index: index, started: a.m.clock.Now(), cancel: make(chan struct{}), restarts: restarts, startErr: err}
		g.workers[index] = w
		a.lastStartErr = &control.StartError{Time: time.Now(), Generation: g.num, Worker: index, Error: err.Error()}
		// Through the loop, so that the caller finishes what it was doing
		// first: the slot is then taken as one whose worker died.
		go a.send(evStartFailed{w})
		return
	}
	w := &worker{gen: g, index: index, pid: pid, started: a.m.clock.Now(), cancel: make(chan struct{}), restarts: restarts}
	g.workers[index] = w
	a.forkWorked(g, index)
	a.m.notify.Register(a.name, pid, func(msg activation.Msg) { a.send(evNotify{w, msg}) })
	go func() { a.send(evExit{w, <-exit}) }()
	a.log.Info("worker started", "generation", g.num, "worker", index, "pid", pid)
	if g.state == draining {
		return
	}
	r := g.o.Ready
	if r.MinUptime > 0 {
		a.after(r.MinUptime, evAged{w})
	} else {
		w.aged = true
	}
	if wp := g.ports[index]; wp != nil {
		// Proxy mode: ready also means the worker's ports accept, and an
		// HTTP path is asked of the first one.
		if strings.HasPrefix(r.HTTP, "/") {
			r.HTTP = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(wp[g.o.Listen[0]])) + r.HTTP
		}
		for _, name := range g.o.Listen {
			r.portChecks = append(r.portChecks, net.JoinHostPort("127.0.0.1", strconv.Itoa(wp[name])))
		}
	}
	if r.HTTP != "" || r.TCP != "" || len(r.Exec) > 0 || len(r.portChecks) > 0 {
		go a.probe(w, g.probe, r)
	} else {
		w.probed = true
	}
	if !r.Notify {
		w.notified = true
	}
	a.checkWorker(w)
}

// probe retries the configured checks until they pass or the worker is no
// longer starting; it reports success once.
func (a *app) probe(w *worker, probeL *sockets.Listener, r ReadyOptions) {
	interval := r.Interval
	if interval <= 0 {
		interval = DefaultProbeInterval
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	url := r.HTTP
	if strings.HasPrefix(url, "/") && probeL != nil {
		url = "http://" + probeL.Addr + url
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ok := true
		if url != "" {
			resp, err := client.Get(url)
			if err != nil {
				ok = false
			} else {
				resp.Body.Close()
				ok = resp.StatusCode < 400
			}
		}
		for _, addr := range append([]string{r.TCP}, r.portChecks...) {
			if !ok || addr == "" {
				continue
			}
			c, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				ok = false
			} else {
				c.Close()
			}
		}
		if ok && len(r.Exec) > 0 {
			env := setEnv(setEnv(setEnv(a.m.o.Env, "ROTINI_APP", a.name), "ROTINI_GENERATION", strconv.Itoa(w.gen.num)), "ROTINI_PID", strconv.Itoa(w.pid))
			env = setEnv(env, "ROTINI_WORKER", strconv.Itoa(w.index))
			e, err := a.runOnce(r.Exec, w.gen.dir, env, max(r.Timeout, time.Second), w.cancel)
			ok = err == nil && e.Code() == 0
		}
		if ok {
			a.send(evProbed{w})
			return
		}
		select {
		case <-w.cancel:
			return
		case <-a.quit:
			return
		case <-t.C:
		}
	}
}

// checkWorker marks a worker ready when every check has passed.
func (a *app) checkWorker(w *worker) {
	if w.state != starting || !w.notified || !w.probed || !w.aged {
		return
	}
	if g := w.gen; g.workers[w.index] != w {
		return
	}
	w.state = ready
	close(w.cancel)
	a.log.Info("worker ready", "generation", w.gen.num, "worker", w.index, "pid", w.pid, "after", a.m.clock.Now().Sub(w.started).Round(time.Millisecond))
	if a.relays != nil && w.gen == a.serving && w.gen.ready {
		a.steer(w.gen) // proxy mode: a restarted or added worker's port
	}
	if a.rot != nil && a.rot.next == w.gen {
		n := 0
		for _, o := range w.gen.workers {
			if o.state == ready {
				n++
			}
		}
		a.emit(control.Event{Kind: control.KindWorkerReady, Generation: w.gen.num, Ready: n, Total: w.gen.o.Workers,
			Message: fmt.Sprintf("ready %d/%d in %s", n, w.gen.o.Workers, time.Since(w.gen.started).Round(time.Millisecond))})
	}
	a.nextBatch(w.gen)
	a.checkGeneration(w.gen)
}

func (a *app) checkGeneration(g *generation) {
	if g.ready || g.state == draining || len(g.workers) < g.o.Workers {
		return
	}
	for _, w := range g.workers {
		if w.state != ready {
			return
		}
	}
	g.ready = true
	if g.readyTimer != nil {
		g.readyTimer.Stop()
	}
	a.log.Info("generation ready", "generation", g.num, "workers", len(g.workers), "after", time.Since(g.started).Round(time.Millisecond))
	if g.probe != nil {
		// Only the readiness probe used it; closing rotini's copy is enough
		// for it to go away when the generation exits.
		g.probe.File.Close()
	}
	if a.rot != nil && a.rot.next == g {
		a.promote()
		return
	}
	if g == a.serving {
		// The first generation: its socket (or, in proxy mode, its ports)
		// now takes the new connections.
		a.steer(g)
	}
	a.maybeStartReload()
}

func (a *app) readyTimeout(g *generation) {
	if g.ready || g.state == draining {
		return
	}
	if a.rot != nil && a.rot.next == g {
		a.rollback(fmt.Sprintf("generation %d not ready after %s (%s)", g.num, g.o.Ready.Timeout, a.notReady(g)))
		return
	}
	if g == a.serving {
		g.timedOut = true
		a.log.Warn("generation not ready in time; a reload may replace it", "generation", g.num, "timeout", g.o.Ready.Timeout, "waiting_for", a.notReady(g))
		a.maybeStartReload()
	}
}

func (a *app) notReady(g *generation) string {
	var parts []string
	idx := make([]int, 0, len(g.workers))
	for i := range g.workers {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	for _, i := range idx {
		w := g.workers[i]
		if w.state == ready {
			continue
		}
		var miss []string
		if !w.notified {
			miss = append(miss, "READY=1")
		}
		if !w.probed {
			miss = append(miss, "probe")
		}
		if !w.aged {
			miss = append(miss, "min_uptime")
		}
		parts = append(parts, fmt.Sprintf("worker %d pid %d waiting for %s", i, w.pid, strings.Join(miss, ", ")))
	}
	if len(parts) == 0 {
		return fmt.Sprintf("%d of %d workers running", len(g.workers), g.o.Workers)
	}
	return strings.Join(parts, "; ")
}

func (a *app) workerExited(w *worker, e reaper.Exit) {
	g := w.gen
	a.forget(w)
	a.m.notify.Unregister(w.pid)
	lvl := hclog.Warn
	if g.state == draining || w.state == stopping {
		lvl = hclog.Info // expected
	}
	a.log.Log(lvl, "worker exited", "generation", g.num, "worker", w.index, "pid", w.pid, "status", e.String(), "code", e.Code(), "uptime", a.m.clock.Now().Sub(w.started).Round(time.Millisecond))
	a.workerGone(w, e.Code(), fmt.Sprintf("worker %d (pid %d) of generation %d %s before it was ready", w.index, w.pid, g.num, e.String()))
}

// startFailed takes a worker that could not be started (spawn logged why)
// as one that died at once, but says what happened: it has no pid and no
// exit status, only w.startErr.
func (a *app) startFailed(w *worker) {
	a.forget(w)
	// The code rotini exits with when a crash loop ends on it: a shell's.
	a.workerGone(w, exitcode.Of(w.startErr), fmt.Sprintf("worker %d of generation %d could not start: %v", w.index, w.gen.num, w.startErr))
}

// forget removes a worker that is gone from its generation and stops its
// readiness checks.
func (a *app) forget(w *worker) {
	if w.gen.workers[w.index] == w {
		delete(w.gen.workers, w.index)
	}
	if w.state != ready {
		select {
		case <-w.cancel:
		default:
			close(w.cancel)
		}
	}
}

// workerGone decides what a worker's end means for its generation: part of
// a drain or a scale-down, a failed rotation (rolled back with failure as
// the reason), or a crash of a serving worker, whose exit code is code.
func (a *app) workerGone(w *worker, code int, failure string) {
	g := w.gen
	switch {
	case g.state == draining:
		a.maybeDrained(g)
	case w.state == stopping:
		// scaled down
	case a.rot != nil && a.rot.next == g && g != a.serving:
		a.rollback(failure)
	case a.stopping:
	default:
		if a.rot != nil && a.rot.next == g {
			// restart mode: nothing to roll back to; report and carry on.
			a.finish(false, failure)
		}
		a.crashed(g, w, code)
	}
}

// crashed replaces a dead worker of the serving generation with backoff, or
// declares a crash loop.
//
// crash_limit counts events, not deaths: the death of a worker slot that
// has not died yet in the current burst (begun less than burstWindow ago)
// joins it; any other death begins a new event. So one kill of every
// worker is one event, while a single worker dying again and again counts
// each time. The restart backoff is per slot: a slot's delay doubles only
// with that slot's own deaths.
func (a *app) crashed(g *generation, w *worker, code int) {
	now := a.m.clock.Now()
	keep := g.crashes[:0]
	for _, c := range g.crashes {
		if now.Sub(c.at) < g.o.CrashWindow {
			keep = append(keep, c)
		}
	}
	g.crashes = keep
	if n := len(g.crashes); n > 0 && now.Sub(g.crashes[n-1].at) < burstWindow && !g.crashes[n-1].slots[w.index] {
		g.crashes[n-1].slots[w.index] = true
	} else {
		g.crashes = append(g.crashes, crashEvent{at: now, slots: map[int]bool{w.index: true}})
	}
	if g.o.CrashLimit > 0 && len(g.crashes) >= g.o.CrashLimit {
		a.log.Error("crash loop: stopping rotini", "generation", g.num, "crashes", len(g.crashes), "window", g.o.CrashWindow, "exit_code", code)
		a.fatal = &code
		a.m.crashLoop(a.name, code)
		return
	}
	// A worker that had run for a while before dying does not grow the
	// backoff: that is the next crash of a healthy app, not a loop.
	d, ok := g.backoff[w.index]
	if !ok || now.Sub(w.started) > g.o.CrashWindow {
		d = g.o.RestartBackoff
	}
	g.backoff[w.index] = min(d*2, max(g.o.RestartBackoffMax, g.o.RestartBackoff))
	a.log.Warn("restarting worker", "generation", g.num, "worker", w.index, "in", d)
	a.after(d, evRestart{g: g, index: w.index, prior: w.restarts})
}

// stopGeneration sends the stop signal to every worker of g and arms the
// SIGKILL that follows after the stop timeout.
func (a *app) stopGeneration(g *generation, why string) {
	if g.state != draining {
		g.state = draining
		g.stopAt = time.Now()
		a.draining = append(a.draining, g)
		if g.readyTimer != nil {
			g.readyTimer.Stop()
		}
	}
	g.signalled = true
	sig, timeout := g.o.StopSignal, g.o.StopTimeout
	if a.fast {
		sig, timeout = unix.SIGQUIT, min(pid1.FastStopTimeout, g.o.StopTimeout)
	}
	a.log.Info("generation draining", "generation", g.num, "workers", len(g.workers), "signal", unix.SignalName(sig), "kill_after", timeout, "reason", why)
	for _, w := range g.workers {
		if w.state == starting {
			close(w.cancel)
		}
		w.state = stopping
		w.stop(sig)
	}
	a.signalHelpers(g, sig)
	if g.killTimer != nil {
		g.killTimer.Stop()
	}
	g.killTimer = a.after(timeout, evKill{g})
	a.maybeDrained(g)
}

func (a *app) drained(g *generation) {
	// Its workers are gone, perhaps during the handoff: nothing to signal.
	g.handoff = false
	if g.killTimer != nil {
		g.killTimer.Stop()
	}
	for i, d := range a.draining {
		if d == g {
			a.draining = append(a.draining[:i], a.draining[i+1:]...)
			break
		}
	}
	if g.probe != nil {
		g.probe.File.Close()
	}
	a.releaseSockets(g)
	a.log.Info("generation drained", "generation", g.num, "after", time.Since(g.stopAt).Round(time.Millisecond))
	if a.rot != nil && a.rot.old == g && a.rot.next == nil && !a.stopping {
		// restart mode: the old generation is gone; start the new one.
		g := a.newGeneration(a.o)
		g.state = serving
		a.serving, a.rot.next = g, g
		a.startWorkers(g) // steered at promote, once ready
	}
}

// listenPorts stands for a proxy app's ports where a generation has none
// yet (its code directory, before_reload): an expression may name port.X.
func listenPorts(o AppOptions) map[string]int {
	if o.Proxy == nil {
		return nil
	}
	ports := make(map[string]int, len(o.Listen))
	for _, name := range o.Listen {
		ports[name] = 0
	}
	return ports
}

// listenFDs maps an app's listeners to the fd numbers its workers get (3, 4,
// … in `listen` order), for evaluating its command, env and dir outside a
// worker (its code directory, before_reload): an expression may name fd.X.
func listenFDs(o AppOptions) map[string]int {
	fds := make(map[string]int, len(o.Listen))
	for i, name := range o.Listen {
		fds[name] = 3 + i
	}
	return fds
}
