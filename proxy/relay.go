package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// Defaults for the zero values of Options.
const (
	DefaultMaxConnections = 10000
	DefaultIdleTimeout    = 5 * time.Minute
	DefaultDialTimeout    = 5 * time.Second
)

// Options configure a Relay. Zero values take the defaults above.
type Options struct {
	Log hclog.Logger
	// MaxConnections bounds the connections relayed at once; at the bound
	// the relay stops accepting until one ends.
	MaxConnections int
	// IdleTimeout closes a connection on which no byte went either way
	// for that long.
	IdleTimeout time.Duration
	// DialTimeout bounds connecting to the backend, and writing the PROXY
	// protocol header to it.
	DialTimeout time.Duration
	// ProxyProtocol sends a PROXY protocol header with the client's
	// address to the backend, before the client's bytes.
	ProxyProtocol Version
}

// ErrClosed is returned by Serve after Close.
var ErrClosed = errors.New("proxy: relay closed")

// Relay accepts connections on a listener and relays each to the backend
// of the generation that is the target when it is accepted.
type Relay struct {
	ln net.Listener
	// lnf is a duplicate of ln's socket in the runtime's poller, accepted
	// on with accept4 (the RawConn of a net listener cannot wait);
	// lnerr says why there is none.
	lnf   *os.File
	lnerr error
	o     Options
	slots chan struct{} // one token per relayed connection
	done  chan struct{} // closed by Close
	// ctx is cancelled by Close, which ends dials in progress.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	gen       int      // the target generation; 0 until the first SetTarget
	addrs     []string // its backends (one per worker), taken in turn
	next      int
	hasTarget chan struct{}
	gens      map[int]*genState
	conns     map[*conn]struct{}
	closed    bool

	wg sync.WaitGroup // connection goroutines
}

type genState struct {
	active  int
	drained chan struct{}
}

type conn struct {
	client  endpoint
	backend endpoint
	remote  netip.AddrPort // the client's address, from accept; invalid for a unix socket's
	gen     int            // the generation it is relayed to
	idle    *time.Timer    // watchIdle's
	ended   atomic.Bool    // a direction has reached EOF (copyConn)
	left    atomic.Int32   // directions still copying
}

// clientAddr is the client's address, for the PROXY protocol header and
// the log.
func (c *conn) clientAddr() net.Addr { return addrOf(c.remote) }

func (c *conn) close() {
	c.client.Close()
	c.backend.Close()
}

// New returns a Relay that will accept on ln once Serve runs and a target
// is set. ln is a TCP or unix stream listener (a *net.TCPListener or
// *net.UnixListener: what FileListener returns); on a TCP one, New sets
// TCP_NODELAY and keep-alive probes once, for the accepted sockets to
// inherit. The Relay closes ln on Close; pass it a listener of its own
// (FileListener makes one from rotini's socket without taking it).
func New(ln net.Listener, o Options) *Relay {
	if o.Log == nil {
		o.Log = hclog.NewNullLogger()
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	lnf, lnerr := listenerFile(ln)
	return &Relay{
		lnf:       lnf,
		lnerr:     lnerr,
		ctx:       ctx,
		cancel:    cancel,
		ln:        ln,
		o:         o,
		slots:     make(chan struct{}, o.MaxConnections),
		done:      make(chan struct{}),
		hasTarget: make(chan struct{}),
		gens:      map[int]*genState{},
		conns:     map[*conn]struct{}{},
	}
}

// FileListener makes a listener on a duplicate of f's socket, so that
// closing the Relay leaves f, and the kernel's accept queue, open.
func FileListener(f *os.File) (net.Listener, error) {
	return net.FileListener(f)
}

// SetTarget makes addrs, the backends of generation gen (one per worker),
// the destinations of every connection accepted from now on, in turn. gen
// must be positive and addrs not empty.
func (r *Relay) SetTarget(gen int, addrs ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.gen
	r.gen, r.addrs = gen, append([]string(nil), addrs...)
	if r.gens[gen] == nil {
		r.gens[gen] = &genState{drained: make(chan struct{})}
	}
	if old == 0 {
		close(r.hasTarget)
	} else if old != gen {
		r.maybeDrained(old)
	}
}

// Active is the number of connections relayed to generation gen now.
func (r *Relay) Active(gen int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if g := r.gens[gen]; g != nil {
		return g.active
	}
	return 0
}

// Conns maps each generation with relayed connections, and the target, to
// its number of relayed connections.
func (r *Relay) Conns() map[int]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[int]int, len(r.gens))
	for gen, g := range r.gens {
		m[gen] = g.active
	}
	return m
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Drained returns a channel that is closed once gen is not the target and
// no connection is relayed to it any more.
func (r *Relay) Drained(gen int) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if g := r.gens[gen]; g != nil {
		return g.drained
	}
	if gen == r.gen {
		// Only before any target: SetTarget creates the target's state.
		r.gens[gen] = &genState{drained: make(chan struct{})}
		return r.gens[gen].drained
	}
	return closedChan
}

// maybeDrained forgets gen once it is neither the target nor relaying.
// r.mu is held.
func (r *Relay) maybeDrained(gen int) {
	g := r.gens[gen]
	if g != nil && gen != r.gen && g.active == 0 {
		close(g.drained)
		delete(r.gens, gen)
	}
}

// pick counts a new connection against the target and returns it.
func (r *Relay) pick() (int, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gens[r.gen].active++
	return r.gen, r.nextAddr()
}

// nextAddr takes the target's backends in turn. r.mu is held.
func (r *Relay) nextAddr() string {
	a := r.addrs[r.next%len(r.addrs)]
	r.next++
	return a
}

// siblings are the target's other backends when gen is still the target:
// a worker that died, or restarts, does not fail the connection.
func (r *Relay) siblings(gen int, tried string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gen != gen {
		return nil
	}
	var out []string
	for _, a := range r.addrs {
		if a != tried {
			out = append(out, a)
		}
	}
	return out
}

// release uncounts a connection of gen.
func (r *Relay) release(gen int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gens[gen].active--
	r.maybeDrained(gen)
}

// repick moves a connection whose dial to gen failed to the current
// target, if that is another generation.
func (r *Relay) repick(gen int) (int, string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gen == gen {
		return gen, "", false
	}
	r.gens[gen].active--
	r.maybeDrained(gen)
	r.gens[r.gen].active++
	return r.gen, r.nextAddr(), true
}

// Serve accepts connections until Close, which makes it return ErrClosed;
// any other error of the listener but a transient one ends it too.
func (r *Relay) Serve() error {
	if r.lnerr != nil {
		return r.lnerr
	}
	lnrc, err := r.lnf.SyscallConn()
	if err != nil {
		return err
	}
	var backoff time.Duration
	for {
		select {
		case <-r.hasTarget:
		case <-r.done:
			return ErrClosed
		}
		// At the bound, stop calling accept: clients wait in the backlog.
		select {
		case r.slots <- struct{}{}:
		case <-r.done:
			return ErrClosed
		}
		c, sa, err := acceptRaw(lnrc)
		if err != nil {
			<-r.slots
			select {
			case <-r.done:
				return ErrClosed
			default:
			}
			if !transient(err) {
				return err
			}
			// EMFILE, ENFILE, ENOBUFS: another connection's end frees
			// what is missing, so retry soon, without spinning.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			r.o.Log.Warn("accept failed, retrying", "error", err, "in", backoff)
			select {
			case <-time.After(backoff):
			case <-r.done:
				return ErrClosed
			}
			continue
		}
		backoff = 0
		r.wg.Add(1)
		go r.handle(c, sa)
	}
}

func transient(err error) bool {
	return errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) ||
		errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.ENOMEM) ||
		errors.Is(err, unix.ECONNABORTED)
}

// Close stops accepting, closes the listener given to New and every
// relayed connection, and returns when their goroutines have ended.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.done)
	r.cancel()
	for c := range r.conns {
		c.close()
	}
	r.mu.Unlock()
	err := r.ln.Close()
	if r.lnf != nil {
		r.lnf.Close() // wakes Serve's accept
	}
	r.wg.Wait()
	return err
}

// testHookDial runs before each dial; tests use it to switch the target
// at that point.
var testHookDial atomic.Pointer[func(addr string)]

// dial connects to a backend: a literal IP:port (what rotini's
// generations get) with dialRaw, a name through package net.
func (r *Relay) dial(addr string) (endpoint, error) {
	if h := testHookDial.Load(); h != nil {
		(*h)(addr)
	}
	if ap, err := netip.ParseAddrPort(addr); err == nil && ap.Addr().Zone() == "" {
		return dialRaw(r.ctx, ap, r.o.DialTimeout)
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.o.DialTimeout)
	defer cancel()
	d := net.Dialer{KeepAlive: -1} // as dialRaw
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// handle relays one accepted connection: it dials the backend, then runs
// one direction while a second goroutine runs the other. The direction
// that ends last cleans up: neither waits for the other.
func (r *Relay) handle(client endpoint, remote netip.AddrPort) {
	c := &conn{client: client, remote: remote}
	if !r.connect(c) {
		<-r.slots
		r.wg.Done()
		return
	}
	c.idle = r.watchIdle(c)
	c.left.Store(2)
	go r.direction(c, c.backend, c.client)
	r.direction(c, c.client, c.backend)
}

// connect dials c's backend and registers c, or closes the client and
// uncounts it.
func (r *Relay) connect(c *conn) bool {
	gen, addr := r.pick()
	backend, err := r.dial(addr)
	if err != nil {
		for _, a := range r.siblings(gen, addr) {
			if backend, err = r.dial(a); err == nil {
				addr = a
				break
			}
		}
	}
	if err != nil {
		if g, a, moved := r.repick(gen); moved {
			r.o.Log.Debug("dial failed, trying the new target", "generation", gen, "backend", addr, "error", err)
			gen, addr = g, a
			backend, err = r.dial(addr)
		}
	}
	c.gen = gen
	if err != nil {
		r.o.Log.Warn("cannot reach backend, closing client connection",
			"generation", gen, "backend", addr, "client", c.clientAddr().String(), "error", err)
		c.client.Close()
		r.release(gen)
		return false
	}
	c.backend = backend
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		c.close()
		r.release(gen)
		return false
	}
	r.conns[c] = struct{}{}
	r.mu.Unlock()

	if r.o.ProxyProtocol != None {
		hdr := Header(r.o.ProxyProtocol, c.clientAddr(), localAddr(c.client))
		if err := r.writeHeader(backend, hdr); err != nil {
			r.o.Log.Warn("cannot send the proxy protocol header, closing client connection",
				"generation", gen, "backend", addr, "error", err)
			r.forget(c)
			return false
		}
	}
	return true
}

// direction copies src to dst (copyConn); one that fails closes both
// sockets, which ends the other. The second to end finishes c.
func (r *Relay) direction(c *conn, dst, src endpoint) {
	if err := copyConn(dst, src, &c.ended); err != nil {
		c.close()
	}
	if c.left.Add(-1) == 0 {
		c.idle.Stop()
		r.forget(c)
		<-r.slots
		r.wg.Done()
	}
}

// forget closes a registered connection and uncounts it.
func (r *Relay) forget(c *conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
	c.close()
	r.release(c.gen)
}

// writeHeader writes the PROXY protocol header to the backend, which has
// DialTimeout to take it.
func (r *Relay) writeHeader(backend endpoint, hdr []byte) error {
	w := backend.(interface {
		Write([]byte) (int, error)
		SetWriteDeadline(time.Time) error
	})
	w.SetWriteDeadline(time.Now().Add(r.o.DialTimeout))
	defer w.SetWriteDeadline(time.Time{})
	_, err := w.Write(hdr)
	return err
}

// copyConn copies src to dst until src's EOF, then half-closes dst, with
// rawCopy. The second direction to reach EOF leaves dst's FIN to the close
// that follows at once: dst is the other direction's source, read to its
// EOF, so the close sends a FIN and not a reset, and the shutdown(2) would
// only cost a syscall.
func copyConn(dst, src syscall.Conn, ended *atomic.Bool) error {
	drc, err := dst.SyscallConn()
	if err != nil {
		return err
	}
	srcrc, err := src.SyscallConn()
	if err != nil {
		return err
	}
	if err := rawCopy(drc, srcrc); err != nil {
		return err
	}
	if !ended.Swap(true) {
		closeWrite(drc)
	}
	return nil
}

// watchIdle closes c once no byte has gone either way for IdleTimeout.
// A timer, not a goroutine: it wakes up at most once per IdleTimeout of
// activity, and works while a direction is stuck writing to a peer that
// does not read.
func (r *Relay) watchIdle(c *conn) *time.Timer {
	var t *time.Timer
	var mu sync.Mutex // t is assigned after AfterFunc returns
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(r.o.IdleTimeout, func() {
		idle, err := idleFor(c.backend)
		if err != nil || idle >= r.o.IdleTimeout {
			if err == nil {
				r.o.Log.Debug("closing idle connection", "client", c.clientAddr().String(), "idle", idle)
			}
			c.close()
			return
		}
		mu.Lock()
		t.Reset(r.o.IdleTimeout - idle)
		mu.Unlock()
	})
	return t
}

// idleFor is how long ago the backend socket last sent or received data:
// what went to the backend came from the client and what came from it went
// to the client, so it is the connection's idleness both ways.
func idleFor(backend endpoint) (time.Duration, error) {
	rc, err := backend.SyscallConn()
	if err != nil {
		return 0, err
	}
	var info *unix.TCPInfo
	var serr error
	if err := rc.Control(func(fd uintptr) {
		info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, fmt.Errorf("TCP_INFO: %w", serr)
	}
	ms := min(info.Last_data_recv, info.Last_data_sent)
	return time.Duration(ms) * time.Millisecond, nil
}
