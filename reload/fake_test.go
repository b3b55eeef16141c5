package reload

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/activation"
	"github.com/rotini-dev/rotini/control"
	"github.com/rotini-dev/rotini/reaper"
	"github.com/rotini-dev/rotini/sockets"
)

// The state machine's world, faked in the way tableflip fakes its
// environment: processes that run nothing and exit when the test says,
// sockets that are files nobody connects to, and a clock that moves only
// when the test advances it. The app's goroutine, its Manager, its notify
// routing and its decisions are the real ones.
//
// Everything the fakes are asked is written, in order, to one trace:
//
//	start 2/0            worker 0 of generation 2 (its nth restart: 2/0#n)
//	start before_reload  a before_reload command
//	start-failed 2/1     Start returned an error
//	kill 1/0 TERM        a signal to the process group of worker 1/0
//	socket http 2        the authority gave generation 2 a socket
//	serve http 2         new connections go to generation 2
//	release http 1       generation 1's socket was given back
//
// so that a test can check not only what happened but in which order
// (the new generation serves before the old one is signalled).

// fakePidBase is above the kernel's largest pid (PID_MAX_LIMIT, 2^22): a
// fake pid that leaked into a real kill(2) would reach no process.
const fakePidBase = 1 << 23

// trace is the ordered record of what the fakes were asked.
type trace struct {
	mu      sync.Mutex
	cond    *sync.Cond
	entries []string
}

func newTrace() *trace {
	t := &trace{}
	t.cond = sync.NewCond(&t.mu)
	return t
}

func (t *trace) add(format string, args ...any) {
	t.mu.Lock()
	t.entries = append(t.entries, fmt.Sprintf(format, args...))
	t.mu.Unlock()
	t.cond.Broadcast()
}

func (t *trace) snapshot() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.entries)
}

// fakeProc is one process a fake start made.
type fakeProc struct {
	key     string // 1/0, 1/0#1 (its first restart), before_reload
	pid     int
	path    string   // the real command, behind the LISTEN_PID shim if any
	argv    []string // the real command's argv
	shim    bool
	env     []string
	dir     string
	files   []uintptr
	exit    chan reaper.Exit
	exited  bool
	signals []string
}

func (p *fakeProc) getenv(k string) string {
	for _, kv := range p.env {
		if v, ok := strings.CutPrefix(kv, k+"="); ok {
			return v
		}
	}
	return ""
}

// fakeProcs is a Processes that starts nothing. Every start is recorded
// with its argv, environment and files; the process "runs" until the test
// delivers its exit, except that SIGKILL ends it at once, as the kernel
// would.
type fakeProcs struct {
	tr   *trace
	mu   sync.Mutex
	cond *sync.Cond
	// procs by key and pid; seen counts the starts of each slot.
	byKey map[string]*fakeProc
	byPid map[int]*fakeProc
	order []string
	seen  map[string]int
	// fail makes the next start of a slot (1/0, before_reload) fail.
	fail map[string]error
}

func newFakeProcs(tr *trace) *fakeProcs {
	p := &fakeProcs{tr: tr, byKey: map[string]*fakeProc{}, byPid: map[int]*fakeProc{}, seen: map[string]int{}, fail: map[string]error{}}
	p.cond = sync.NewCond(&p.mu)
	return p
}

func (p *fakeProcs) Start(path string, argv []string, attr *syscall.ProcAttr) (int, <-chan reaper.Exit, error) {
	proc := &fakeProc{path: path, argv: argv, env: attr.Env, dir: attr.Dir, files: slices.Clone(attr.Files), exit: make(chan reaper.Exit, 1)}
	if proc.getenv(activation.ShimEnv) != "" {
		// Started through the LISTEN_PID shim: it would exec argv[1].
		proc.shim, proc.path, proc.argv = true, argv[1], argv[2:]
	}
	slot := "before_reload"
	if w := proc.getenv("ROTINI_WORKER"); w != "" {
		slot = proc.getenv("ROTINI_GENERATION") + "/" + w
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.cond.Broadcast()
	if err := p.fail[slot]; err != nil {
		delete(p.fail, slot)
		p.tr.add("start-failed %s", slot)
		return 0, nil, err
	}
	proc.key = slot
	if n := p.seen[slot]; n > 0 {
		proc.key = fmt.Sprintf("%s#%d", slot, n)
	}
	p.seen[slot]++
	proc.pid = fakePidBase + len(p.byPid) + 1
	p.byKey[proc.key] = proc
	p.byPid[proc.pid] = proc
	p.order = append(p.order, proc.key)
	p.tr.add("start %s", proc.key)
	return proc.pid, proc.exit, nil
}

func (p *fakeProcs) Kill(pid int, sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	proc := p.byPid[max(pid, -pid)]
	if proc == nil {
		return unix.ESRCH
	}
	name := strings.TrimPrefix(unix.SignalName(sig), "SIG")
	proc.signals = append(proc.signals, name)
	p.tr.add("kill %s %s", proc.key, name)
	if sig == syscall.SIGKILL && !proc.exited {
		p.exitLocked(proc, unix.WaitStatus(syscall.SIGKILL))
	}
	return nil
}

func (p *fakeProcs) exitLocked(proc *fakeProc, st unix.WaitStatus) {
	proc.exited = true
	proc.exit <- reaper.Exit{Pid: proc.pid, Status: st}
}

// wait returns the process started as key, waiting for its start.
func (p *fakeProcs) wait(t testing.TB, key string) *fakeProc {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !condWait(p.cond, func() bool { return p.byKey[key] != nil }) {
		t.Fatalf("%s was never started; started: %v", key, p.order)
	}
	return p.byKey[key]
}

// end delivers the exit of key, which must still be running.
func (p *fakeProcs) end(t testing.TB, key string, st unix.WaitStatus) {
	t.Helper()
	proc := p.wait(t, key)
	p.mu.Lock()
	defer p.mu.Unlock()
	if proc.exited {
		t.Fatalf("%s exited already", key)
	}
	p.exitLocked(proc, st)
}

// endAll ends every process that is still running.
func (p *fakeProcs) endAll(st unix.WaitStatus) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, proc := range p.byKey {
		if !proc.exited {
			p.exitLocked(proc, st)
		}
	}
}

func (p *fakeProcs) keyOf(pid int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if proc := p.byPid[pid]; proc != nil {
		return proc.key
	}
	return fmt.Sprintf("pid %d", pid)
}

// live lists the processes that have not exited.
func (p *fakeProcs) live() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var keys []string
	for _, k := range p.order {
		if !p.byKey[k].exited {
			keys = append(keys, k)
		}
	}
	return keys
}

// signalled maps each process that got a signal to its signals.
func (p *fakeProcs) signalled() map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]string{}
	for k, proc := range p.byKey {
		if len(proc.signals) > 0 {
			out[k] = strings.Join(proc.signals, " ")
		}
	}
	return out
}

// condWait waits on c (whose lock is held) until ok holds; false if it
// does not within a deadline that only a broken test reaches.
func condWait(c *sync.Cond, ok func() bool) bool {
	deadline := time.Now().Add(10 * time.Second)
	stop := time.AfterFunc(10*time.Second, c.Broadcast)
	defer stop.Stop()
	for !ok() {
		if time.Now().After(deadline) {
			return false
		}
		c.Wait()
	}
	return true
}

// fakeSockets is a sockets.Authority with one listener, "http". A
// generation's socket is /dev/null opened for it (a real descriptor, so
// that a worker's files can be checked); nothing connects. A generation's
// accept queue is empty unless the test holds it.
type fakeSockets struct {
	tr    *trace
	mu    sync.Mutex
	files map[int]*os.File
	held  map[int]bool
}

func newFakeSockets(tr *trace) *fakeSockets {
	return &fakeSockets{tr: tr, files: map[int]*os.File{}, held: map[int]bool{}}
}

func (s *fakeSockets) Socket(name string, gen int) (*sockets.Listener, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.files[gen]
	if f == nil {
		var err error
		if f, err = os.Open(os.DevNull); err != nil {
			return nil, err
		}
		s.files[gen] = f
		s.tr.add("socket %s %d", name, gen)
	}
	return &sockets.Listener{Name: name, File: f, Addr: "fake"}, nil
}

func (s *fakeSockets) fd(gen int) uintptr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.files[gen].Fd()
}

func (s *fakeSockets) Serve(name string, gen int) error {
	s.tr.add("serve %s %d", name, gen)
	return nil
}

func (s *fakeSockets) Queued(name string, gen int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held[gen] {
		return 1
	}
	return 0
}

func (s *fakeSockets) hold(gen int, held bool) {
	s.mu.Lock()
	s.held[gen] = held
	s.mu.Unlock()
}

func (s *fakeSockets) Grace(string) time.Duration { return 0 }

func (s *fakeSockets) Release(name string, gen int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tr.add("release %s %d", name, gen)
	if f := s.files[gen]; f != nil {
		f.Close()
		delete(s.files, gen)
	}
}

func (s *fakeSockets) Status() []sockets.ListenerStatus {
	return []sockets.ListenerStatus{{Name: "http", Address: "fake"}}
}

func (s *fakeSockets) Leave() bool { return false }

func (s *fakeSockets) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.files {
		f.Close()
	}
}

// fakeClock moves only in advance, which calls the functions of the
// timers that are due, in the order they fall due, on the caller's
// goroutine.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c    *fakeClock
	at   time.Time
	f    func()
	done bool // fired or stopped
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.done
	t.done = true
	return was
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	keep := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.done:
		case !t.at.After(c.now):
			t.done = true
			due = append(due, t)
		default:
			keep = append(keep, t)
		}
	}
	c.timers = keep
	c.mu.Unlock()
	sort.SliceStable(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, t := range due {
		t.f()
	}
}

// world is one app, "fake", on the fakes, with one listener "http".
type world struct {
	t     *testing.T
	m     *Manager
	a     *app
	tr    *trace
	procs *fakeProcs
	socks *fakeSockets
	clock *fakeClock
	log   *syncWriter
	// cfg is what the "config file" says: each reload reads it again.
	cfg AppOptions

	mu      sync.Mutex
	cond    *sync.Cond
	handled []string // each event the app handled, described
	pause   chan chan struct{}

	results []chan control.Result
	code    *int // rotini's exit code, once every app stopped
}

var sleepPath = func() string {
	p, err := exec.LookPath("sleep")
	if err != nil {
		return "/bin/sleep"
	}
	return p
}()

// fakeApp is the app the tables start from: two workers, each ready when it
// says READY=1 (no min_uptime, no timeout, unless a row sets them).
func fakeApp() AppOptions {
	return AppOptions{
		Name:    "fake",
		Spawn:   func(SpawnVars) ([]string, []string, string, error) { return []string{sleepPath, "1000"}, nil, "", nil },
		Workers: 2, Listen: []string{"http"},
		StopSignal: syscall.SIGTERM, StopTimeout: 10 * time.Second,
		Reload: Rotate, ReloadSignal: syscall.SIGHUP,
		Ready:          ReadyOptions{Notify: true},
		RestartBackoff: time.Second, RestartBackoffMax: 4 * time.Second,
		CrashLimit: 5, CrashWindow: time.Hour,
	}
}

// newWorld starts the app on the fakes; its first generation's workers are
// started but not ready.
func newWorld(t *testing.T, o AppOptions) *world {
	tr := newTrace()
	w := &world{t: t, tr: tr, procs: newFakeProcs(tr), socks: newFakeSockets(tr), clock: &fakeClock{now: time.Unix(1_000_000_000, 0)}, log: &syncWriter{}, cfg: o}
	w.cond = sync.NewCond(&w.mu)
	w.pause = make(chan chan struct{}, 1)
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: w.log})
	// A short path: the notify sockets' must fit in sun_path, which a
	// subtest's TempDir would not.
	dir, err := os.MkdirTemp("", "rsm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	m, err := New(Options{
		Log: log, Reaper: w.procs, Sockets: w.socks, Apps: []AppOptions{o},
		RuntimeDir: dir, Env: []string{"PATH=" + os.Getenv("PATH")},
		Reconfigure: func() ([]AppOptions, []string, error) { return []AppOptions{w.cfg}, nil, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	m.clock = w.clock
	w.m, w.a = m, m.apps[0]
	w.a.observe = w.observe
	m.Start()
	t.Cleanup(w.close)
	return w
}

// observe runs on the app's goroutine after each event: it records what
// was handled, and holds the loop when the test paused it.
func (w *world) observe(ev appEvent) {
	var d string
	switch e := ev.(type) {
	case reloadReq:
		d = "reload"
	case evExit:
		d = "exit " + w.procs.keyOf(e.w.pid)
	case evStartFailed:
		d = fmt.Sprintf("start-failed %d/%d", e.w.gen.num, e.w.index)
	case evNotify:
		d = "notify " + w.procs.keyOf(e.w.pid)
	case evBeforeReload:
		d = "before-reload"
	case evHandedOff:
		d = fmt.Sprintf("handed-off %d", e.g.num)
	case evStop:
		d = "stop"
	case statusReq:
		d = "status"
	default:
		d = strings.TrimPrefix(fmt.Sprintf("%T", ev), "reload.")
	}
	w.mu.Lock()
	w.handled = append(w.handled, d)
	w.mu.Unlock()
	w.cond.Broadcast()
	if _, ok := ev.(statusReq); ok {
		select {
		case resume := <-w.pause:
			<-resume
		default:
		}
	}
}

// mark is where the record of handled events stands now.
func (w *world) mark() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.handled)
}

// await waits until the app has handled the event described by d after
// mark.
func (w *world) await(from int, d string) {
	w.t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if !condWait(w.cond, func() bool { return slices.Contains(w.handled[min(from, len(w.handled)):], d) }) {
		w.t.Fatalf("the app never handled %q; it handled %q", d, w.handled[from:])
	}
}

// barrier returns once the app has handled every event sent to it before.
func (w *world) barrier() {
	reply := make(chan control.AppStatus, 1)
	select {
	case w.a.events <- statusReq{reply}:
	case <-w.a.quit:
		return
	}
	select {
	case <-reply:
	case <-w.a.quit:
	}
}

// queued waits until the app's queue holds n events: the loop is paused,
// and an exit travels from its channel to the queue on a goroutine of its
// own.
func (w *world) queued(n int) {
	w.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(w.a.events) < n {
		if time.Now().After(deadline) {
			w.t.Fatalf("%d events queued, want %d", len(w.a.events), n)
		}
		runtime.Gosched()
	}
}

func (w *world) status() control.AppStatus {
	w.t.Helper()
	st := w.m.Status(10 * time.Second)
	if len(st) != 1 {
		w.t.Fatalf("no status: the app has stopped")
	}
	return st[0]
}

// close stops rotini fast, ends every process still running, and waits for
// the Manager to finish. Once the stop is handled nothing starts any more.
func (w *world) close() {
	if w.code == nil {
		w.m.Stop(true)
		w.barrier()
		w.procs.endAll(unix.WaitStatus(syscall.SIGQUIT))
		select {
		case <-w.m.Done():
		case <-time.After(10 * time.Second):
			w.mu.Lock()
			w.t.Errorf("the app did not stop; live: %v; handled: %q", w.procs.live(), w.handled)
			w.mu.Unlock()
		}
	}
	w.socks.Close()
}

func exited(code int) unix.WaitStatus             { return unix.WaitStatus(code << 8) }
func killedBy(sig syscall.Signal) unix.WaitStatus { return unix.WaitStatus(sig) }

// describe formats a Result as the tables state it.
func describe(r control.Result) string {
	s := "ok " + strconv.Itoa(r.Generation)
	if !r.OK {
		s = "failed " + strconv.Itoa(r.Generation)
	}
	if r.Reason != "" {
		s += ": " + r.Reason
	}
	return s
}
