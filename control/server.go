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
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rotini-dev/rotini/reload"
)

// DefaultSocket is where the control socket listens unless told otherwise.
const DefaultSocket = "/run/rotini/rotini.sock"

// maxSocketPath is the longest unix socket path: sun_path holds 108 bytes,
// the last being NUL.
const maxSocketPath = 107

// Backend is what the control socket drives; *reload.Manager is one. Its
// methods must not block on processes (Status is bounded by its timeout).
type Backend interface {
	Status(timeout time.Duration) []reload.AppStatus
	// ReloadApps reloads the named apps (every app when names is empty)
	// and sends exactly one Result per app on reply, if not nil; events
	// go to progress without blocking.
	ReloadApps(names []string, reply chan<- reload.Result, progress chan<- reload.Event)
	ScaleApp(name string, workers int) error
	Health() (ok bool, reason string)
	Listeners() []reload.ListenerStatus
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
}

// limits bound what one client can cost rotini. Tests shorten them.
type limits struct {
	readHeader, read, idle time.Duration
	write                  time.Duration // for each write of an answer (each line of a stream)
	maxHeader              int
	maxBody                int64
	maxConns               int
	status                 time.Duration // bound of Backend.Status
	defaultWait, maxWait   time.Duration // of POST /v1/reload?wait=1
	maxWorkers             int
}

var defaultLimits = limits{
	readHeader:  5 * time.Second,
	read:        10 * time.Second,
	idle:        10 * time.Second,
	write:       10 * time.Second,
	maxHeader:   8 << 10,
	maxBody:     64 << 10,
	maxConns:    64,
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
	done chan struct{}
	once sync.Once
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
	if len(o.Path) > maxSocketPath {
		return nil, fmt.Errorf("control socket %s: path longer than %d bytes", o.Path, maxSocketPath)
	}
	gid := -1
	if o.Group != "" {
		g, err := lookupGroup(o.Group)
		if err != nil {
			return nil, fmt.Errorf("control socket %s: %w", o.Path, err)
		}
		gid = g
	}
	ul, fi, err := listen(o.Path, o.Mode, gid)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", o.Path, err)
	}
	h := &handler{b: b, log: o.Log, version: o.Version, started: o.Started, pid: os.Getpid(), lim: lim}
	s := &Server{
		path: o.Path, file: fi, h: h, log: o.Log, done: make(chan struct{}),
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: lim.readHeader,
			ReadTimeout:       lim.read,
			IdleTimeout:       lim.idle,
			MaxHeaderBytes:    lim.maxHeader,
			ErrorLog:          o.Log.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Warn}),
		},
	}
	ln := newLimitListener(ul, lim.maxConns)
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("control socket stopped serving", "path", s.path, "error", err)
		}
	}()
	return s, nil
}

// Path is where the server listens.
func (s *Server) Path() string { return s.path }

// Close stops serving, ends every connection (a reload-wait stream sees its
// client leave; the reload goes on) and removes the socket file if it is
// still the one Serve made.
func (s *Server) Close() {
	s.once.Do(func() {
		s.srv.Close()
		<-s.done
		if fi, err := os.Lstat(s.path); err == nil && os.SameFile(fi, s.file) {
			os.Remove(s.path)
		}
	})
}

// listen binds the socket with its final mode and group before anyone can
// reach it: it binds in a private directory next to path, sets mode and
// group there, and renames it into place.
func listen(path string, mode os.FileMode, gid int) (*net.UnixListener, os.FileInfo, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("create directory: %w", err)
	}
	if err := removeStale(path); err != nil {
		return nil, nil, err
	}
	bind := path
	if tmp, err := os.MkdirTemp(dir, ".rotini-control-"); err == nil {
		defer os.RemoveAll(tmp)
		if p := filepath.Join(tmp, "s"); len(p) <= maxSocketPath {
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

// limitListener holds at most n connections open at once: Accept waits for
// one to close, and further clients wait in the socket's backlog.
type limitListener struct {
	net.Listener
	sem    chan struct{}
	closed chan struct{}
	once   sync.Once
}

func newLimitListener(l net.Listener, n int) *limitListener {
	return &limitListener{Listener: l, sem: make(chan struct{}, n), closed: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.closed:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
