package control

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/procfs"
	"github.com/rotini-dev/rotini/sockets"
)

// DefaultSocket is where the control socket listens unless told otherwise.
const DefaultSocket = "/run/rotini/rotini.sock"

// Backend is what the control socket drives; rotini's supervisor
// (reload.Manager) is one. Its methods must not block on processes (Status
// is bounded by its timeout). A Backend that also has a method
// Holder() *hold.HolderStatus reports the holder it takes its sockets from.
type Backend interface {
	Status(timeout time.Duration) []AppStatus
	// ReloadApps reloads the named apps (every app when names is empty)
	// and sends exactly one Result per app on reply, if not nil; events
	// go to progress without blocking.
	ReloadApps(names []string, reply chan<- Result, progress chan<- Event)
	ScaleApp(name string, workers int) error
	Health() (ok bool, reason string)
	Listeners() []sockets.ListenerStatus
	Stop(fast bool)
}

// Options configure Serve.
type Options struct {
	Path    string      // the socket; DefaultSocket when empty
	Mode    os.FileMode // permission bits of the socket; 0600 when 0
	Group   string      // group name or number to own the socket; "" keeps rotini's
	Log     hclog.Logger
	Version string    // rotini's version, reported by status
	Started time.Time // when rotini started; time.Now() when zero
	// TakeOver replaces a socket another rotini listens on at Path (the
	// new socket is renamed over it). Behind a holder, containers share
	// /run/rotini, and the newest rotini, the one that serves or is about
	// to, answers at the path.
	TakeOver bool
}

// limits bound what one client can cost rotini. Tests shorten them.
type limits struct {
	readHeader, read, idle time.Duration
	write                  time.Duration // for each write of an answer (each line of a stream)
	maxHeader              int
	maxBody                int64
	maxConns               int
	minIdle                time.Duration // a connection idle this long may make room for a new one
	status                 time.Duration // bound of Backend.Status
	defaultWait, maxWait   time.Duration // of POST /v1/reload?wait=1
	maxWorkers             int
}

var defaultLimits = limits{
	readHeader: 5 * time.Second,
	read:       10 * time.Second,
	idle:       10 * time.Second,
	write:      10 * time.Second,
	maxHeader:  8 << 10,
	maxBody:    64 << 10,
	maxConns:   64,
	// A client writes its request right after connect: one that has
	// sent nothing for this long since rotini accepted it is idle.
	minIdle:     100 * time.Millisecond,
	status:      5 * time.Second,
	defaultWait: 5 * time.Minute,
	maxWait:     time.Hour,
	maxWorkers:  1000,
}

// Server is a running control socket.
type Server struct {
	path string
	file os.FileInfo // the socket file we made; Close removes only that one
	srv  *http.Server
	h    *handler
	log  hclog.Logger
	once sync.Once
	wg   sync.WaitGroup // one per listener served

	mode     os.FileMode
	gid      int
	takeOver bool
	lim      limits

	mu     sync.Mutex
	ln     *limitListener // the one the socket file names
	closed bool
}

// Serve creates the socket at o.Path — making its directory, replacing a
// stale socket left by a dead rotini, refusing to replace anything else or
// a socket someone still listens on — and serves the API on it in a
// goroutine until Close.
func Serve(o Options, b Backend) (*Server, error) {
	return serve(o, b, defaultLimits)
}

func serve(o Options, b Backend, lim limits) (*Server, error) {
	if o.Path == "" {
		o.Path = DefaultSocket
	}
	if o.Mode == 0 {
		o.Mode = 0o600
	}
	if o.Log == nil {
		o.Log = hclog.NewNullLogger()
	}
	if o.Started.IsZero() {
		o.Started = time.Now()
	}
	if len(o.Path) > sockets.MaxUnixPath {
		return nil, fmt.Errorf("control socket %s: path longer than %d bytes", o.Path, sockets.MaxUnixPath)
	}
	gid := -1
	if o.Group != "" {
		g, err := lookupGroup(o.Group)
		if err != nil {
			return nil, fmt.Errorf("control socket %s: %w", o.Path, err)
		}
		gid = g
	}
	ul, fi, err := listen(o.Path, o.Mode, gid, o.TakeOver)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", o.Path, err)
	}
	h := &handler{b: b, log: o.Log, version: o.Version, started: o.Started, pid: os.Getpid(), lim: lim}
	s := &Server{
		path: o.Path, file: fi, h: h, log: o.Log, takeOver: o.TakeOver,
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: lim.readHeader,
			ReadTimeout:       lim.read,
			IdleTimeout:       lim.idle,
			MaxHeaderBytes:    lim.maxHeader,
			ErrorLog:          o.Log.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Warn}),
		},
	}
	s.mode, s.gid, s.lim = o.Mode, gid, lim
	s.srv.ConnState = connState
	s.serveOn(ul)
	if s.ln.max < lim.maxConns {
		o.Log.Info("control connections capped by the open files limit", "max_connections", s.ln.max, "wanted", lim.maxConns)
	}
	return s, nil
}

// serveOn serves the API on ul in a goroutine; s.mu is held or s is not
// shared yet.
func (s *Server) serveOn(ul *net.UnixListener) {
	ln := newLimitListener(ul, fdBudget(s.lim.maxConns), s.lim.minIdle)
	s.ln = ln
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := s.srv.Serve(ln)
		select {
		case <-ln.closed: // retired by Recreate, or Close
			return
		default:
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("control socket stopped serving", "path", s.path, "error", err)
		}
	}()
}

// Recreate makes the socket again when its file is gone or is no longer
// the one Serve made (a cleaner of /run or /tmp, an operator's rm): the
// listener would go on serving a name nobody can reach. Connections open
// on the old socket are served to their end. It reports whether it made a
// new socket; rotini calls it on every HUP.
func (s *Server) Recreate() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, nil
	}
	if fi, err := os.Lstat(s.path); err == nil && os.SameFile(fi, s.file) {
		return false, nil
	}
	ul, fi, err := listen(s.path, s.mode, s.gid, s.takeOver)
	if err != nil {
		return false, fmt.Errorf("control socket %s: %w", s.path, err)
	}
	old := s.ln
	s.file = fi
	s.serveOn(ul)
	old.Close()
	return true, nil
}

// Path is where the server listens.
func (s *Server) Path() string { return s.path }

// Close stops serving, ends every connection (a reload-wait stream sees its
// client leave; the reload goes on) and removes the socket file if it is
// still the one Serve made.
func (s *Server) Close() {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.srv.Close()
		s.wg.Wait()
		if fi, err := os.Lstat(s.path); err == nil && os.SameFile(fi, s.file) {
			os.Remove(s.path)
		}
	})
}

// listen binds the socket with its final mode and group before anyone can
// reach it: it binds in a private directory next to path, sets mode and
// group there, and renames it into place.
func listen(path string, mode os.FileMode, gid int, takeOver bool) (*net.UnixListener, os.FileInfo, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("create directory: %w", err)
	}
	if takeOver {
		if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() != fs.ModeSocket {
			return nil, nil, fmt.Errorf("%s exists and is not a socket; remove it or choose another path", path)
		}
	} else if err := removeStale(path); err != nil {
		return nil, nil, err
	}
	bind := path
	if tmp, err := os.MkdirTemp(dir, ".rotini-control-"); err == nil {
		defer os.RemoveAll(tmp)
		if p := filepath.Join(tmp, "s"); len(p) <= sockets.MaxUnixPath {
			bind = p
		}
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: bind, Net: "unix"})
	if err != nil {
		return nil, nil, err
	}
	l.SetUnlinkOnClose(false) // Close removes the file, once it has checked it is ours
	fail := func(err error) (*net.UnixListener, os.FileInfo, error) {
		l.Close()
		os.Remove(bind)
		return nil, nil, err
	}
	if err := os.Chmod(bind, mode.Perm()); err != nil {
		return fail(err)
	}
	if gid >= 0 {
		if err := os.Lchown(bind, -1, gid); err != nil {
			return fail(fmt.Errorf("set group: %w", err))
		}
	}
	if bind != path {
		if err := os.Rename(bind, path); err != nil {
			return fail(err)
		}
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	return l, fi, nil
}

// removeStale removes a socket file nobody listens on (left by a rotini that
// was killed). Anything else at path is an error: another rotini listening,
// or a file that is not a socket.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket; remove it or choose another path", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return errors.New("another process is listening on it (another rotini?)")
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	return nil
}

func lookupGroup(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, fmt.Errorf("group %q: %w", name, err)
	}
	n, err := strconv.Atoi(g.Gid)
	if err != nil {
		return 0, fmt.Errorf("group %q: gid %q is not a number", name, g.Gid)
	}
	return n, nil
}

// limitListener holds at most max connections open at once. A client that
// connects when the cap is reached takes the place of the connection that
// has been idle longest — connected without sending a byte, or kept alive
// between requests, for at least minIdle and with nothing unread — so idle
// clients cannot starve `rotini health`. A connection younger than that is
// spared, so that a client between connect and write is not cut off. When
// no connection can make room, Accept waits for one to end, go idle or age
// (meanwhile further clients wait in the socket's backlog, holding no fd
// of rotini's).
type limitListener struct {
	net.Listener
	max     int
	minIdle time.Duration
	freed   chan struct{} // a connection closed or went idle
	closed  chan struct{}
	once    sync.Once

	mu    sync.Mutex
	conns map[*limitConn]struct{}
}

func newLimitListener(l net.Listener, n int, minIdle time.Duration) *limitListener {
	return &limitListener{
		Listener: l, max: max(n, 1), minIdle: minIdle,
		freed: make(chan struct{}, 1), closed: make(chan struct{}),
		conns: map[*limitConn]struct{}{},
	}
}

func (l *limitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	lc := &limitConn{Conn: c, l: l, idleSince: time.Now()}
	l.mu.Lock()
	l.conns[lc] = struct{}{}
	l.mu.Unlock()
	for {
		l.mu.Lock()
		over := len(l.conns) > l.max
		var victim *limitConn
		var wait time.Duration
		if over {
			victim, wait = l.oldestIdle(lc, time.Now())
		}
		l.mu.Unlock()
		if !over {
			return lc, nil
		}
		if victim != nil {
			victim.Close()
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-l.freed:
		case <-t.C:
		case <-l.closed:
			t.Stop()
			lc.Close()
			return nil, net.ErrClosed
		}
		t.Stop()
	}
}

// oldestIdle is the connection idle the longest, for at least minIdle and
// with nothing unread, other than except. When there is none, wait is how
// long until the youngest idle one is old enough (0: none is idle). l.mu
// is held.
func (l *limitListener) oldestIdle(except *limitConn, now time.Time) (victim *limitConn, wait time.Duration) {
	for c := range l.conns {
		if c == except || c.idleSince.IsZero() {
			continue
		}
		if age := now.Sub(c.idleSince); age < l.minIdle {
			if left := l.minIdle - age; wait == 0 || left < wait {
				wait = left
			}
			continue
		}
		if c.unread() {
			continue // a request has arrived: it is about to be active
		}
		if victim == nil || c.idleSince.Before(victim.idleSince) {
			victim = c
		}
	}
	if wait == 0 && victim == nil {
		wait = l.minIdle // idle ones with bytes unread: look again soon
	}
	return victim, wait
}

// connState notes when http.Server is done with a request on a
// connection: from then on it is idle (Read marks it busy again).
func connState(c net.Conn, st http.ConnState) {
	lc, ok := c.(*limitConn)
	if !ok {
		return
	}
	l := lc.l
	l.mu.Lock()
	switch st {
	case http.StateIdle:
		lc.idleSince = time.Now()
	}
	l.mu.Unlock()
	if st == http.StateIdle {
		l.signal()
	}
}

func (l *limitListener) signal() {
	select {
	case l.freed <- struct{}{}:
	default:
	}
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	l         *limitListener
	once      sync.Once
	idleSince time.Time // zero while a request is read or answered; guarded by l.mu
}

// Read marks the connection busy as soon as its client sends a byte: the
// server reports a request as active only once its headers are complete,
// and a client that is sending one must not be cut off meanwhile.
func (c *limitConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.l.mu.Lock()
		c.idleSince = time.Time{}
		c.l.mu.Unlock()
	}
	return n, err
}

// unread reports whether the client has sent bytes the server has not read.
func (c *limitConn) unread() bool {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	n := 0
	_ = rc.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
	return n > 0
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
		c.l.signal()
	})
	return err
}

// fdBudget caps the control socket's connections so that they can never
// take the descriptors supervision needs (forking a worker, a readiness
// probe, a watcher): at most a quarter of those still free under
// RLIMIT_NOFILE when the socket starts.
func fdBudget(want int) int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == unix.RLIM_INFINITY {
		return want
	}
	open := 0
	if fds, err := procfs.FDs(os.Getpid()); err == nil {
		open = len(fds)
	}
	free := int64(rl.Cur) - int64(open)
	return int(max(1, min(int64(want), free/4)))
}
