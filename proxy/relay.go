package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
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
	// DialTimeout bounds connecting to the backend.
	DialTimeout time.Duration
	// ProxyProtocol sends a PROXY protocol header with the client's
	// address to the backend, before the client's bytes.
	ProxyProtocol Version
}

// ErrClosed is returned by Serve after Close.
var ErrClosed = errors.New("proxy: relay closed")

// maxLoops bounds the event loops of one Relay: every loop wakes for each
// new connection, and one loop already relays tens of thousands of
// requests a second.
const maxLoops = 4

// Relay accepts connections on a listener and relays each to the backend
// of the generation that is the target when it is accepted.
type Relay struct {
	ln net.Listener
	// lfd is a duplicate of ln's socket that the loops accept on; lerr
	// says why there is none.
	lfd   int
	lerr  error
	o     Options
	loops []*loop

	active atomic.Int64 // connections relayed now, against MaxConnections
	// closing is set by Close, under mu; loops read it without.
	closing atomic.Bool

	mu        sync.Mutex
	gen       int              // the target generation; 0 until the first SetTarget
	addrs     []netip.AddrPort // its backends (one per worker), taken in turn
	bad       []string         // the target's addresses that are not literal IP:port
	next      int
	gens      map[int]*genState
	done      chan struct{} // closed by Close
	failed    chan error    // a loop's listener failed
	wg        sync.WaitGroup
	serveOnce sync.Once
}

type genState struct {
	active  int
	drained chan struct{}
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
	lfd, lerr := listenerFD(ln)
	return &Relay{
		ln:     ln,
		lfd:    lfd,
		lerr:   lerr,
		o:      o,
		gens:   map[int]*genState{},
		done:   make(chan struct{}),
		failed: make(chan error, maxLoops),
	}
}

// FileListener makes a listener on a duplicate of f's socket, so that
// closing the Relay leaves f, and the kernel's accept queue, open.
func FileListener(f *os.File) (net.Listener, error) {
	return net.FileListener(f)
}

// SetTarget makes addrs, the backends of generation gen (one per worker),
// the destinations of every connection accepted from now on, in turn. gen
// must be positive and addrs not empty; an address is a literal IP:port
// (rotini's generations listen on 127.0.0.1), and one that is not makes
// the connections sent to it fail, with the reason in the log.
func (r *Relay) SetTarget(gen int, addrs ...string) {
	var aps []netip.AddrPort
	var bad []string
	for _, a := range addrs {
		if ap, err := netip.ParseAddrPort(a); err == nil && ap.Addr().Zone() == "" {
			aps = append(aps, ap)
		} else {
			bad = append(bad, a)
		}
	}
	if len(bad) > 0 {
		r.o.Log.Error("backend addresses must be literal IP:port, not used", "generation", gen, "addresses", fmt.Sprint(bad))
	}
	r.mu.Lock()
	old := r.gen
	r.gen, r.addrs, r.bad = gen, aps, bad
	if r.gens[gen] == nil {
		r.gens[gen] = &genState{drained: make(chan struct{})}
	}
	if old != 0 && old != gen {
		r.maybeDrained(old)
	}
	if old == 0 && !r.closing.Load() {
		// Under r.mu: Close closes the loops' eventfds under it too.
		for _, l := range r.loops {
			l.wake() // they start accepting
		}
	}
	r.mu.Unlock()
}

// hasTarget says whether SetTarget has been called.
func (r *Relay) hasTarget() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gen != 0
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

// pick counts a new connection against the target and returns it with
// its backends as a rotation: addrs (SetTarget never changes a slice it
// handed out, it replaces it) from start, the next in turn, so that a
// worker that died, or restarts, does not fail the connection when a
// sibling answers.
func (r *Relay) pick() (int, backends) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gens[r.gen].active++
	return r.gen, r.backends()
}

// backends are the target's backends from the next in turn. r.mu is
// held.
func (r *Relay) backends() backends {
	b := backends{addrs: r.addrs, start: r.next}
	r.next++
	return b
}

// backends is a rotation of a target's addresses, tried once each.
type backends struct {
	addrs        []netip.AddrPort
	start, tried int
}

// next is the next address to try, false when each has been.
func (b *backends) next() (netip.AddrPort, bool) {
	if b.tried >= len(b.addrs) {
		return netip.AddrPort{}, false
	}
	a := b.addrs[(b.start+b.tried)%len(b.addrs)]
	b.tried++
	return a, true
}

// release uncounts a connection of gen.
func (r *Relay) release(gen int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gens[gen].active--
	r.maybeDrained(gen)
}

// repick moves a connection whose dials to gen all failed to the current
// target, if that is another generation.
func (r *Relay) repick(gen int) (int, backends, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gen == gen {
		return gen, backends{}, false
	}
	r.gens[gen].active--
	r.maybeDrained(gen)
	r.gens[r.gen].active++
	return r.gen, r.backends(), true
}

// takeSlot counts a connection about to be accepted against
// MaxConnections, or says the bound is reached.
func (r *Relay) takeSlot() bool {
	if r.active.Add(1) <= int64(r.o.MaxConnections) {
		return true
	}
	r.freeSlot()
	return false
}

// freeSlot uncounts a connection. The one that brings the count below the
// bound wakes the loops, which stopped accepting at it.
func (r *Relay) freeSlot() {
	if r.active.Add(-1) == int64(r.o.MaxConnections)-1 {
		for _, l := range r.loops {
			l.wake()
		}
	}
}

// Serve runs the relay's event loops, one per CPU the runtime uses (at
// most 4), until Close, which makes it return ErrClosed. An error of the
// listening socket other than a transient one ends it too; connections
// already relayed go on until Close.
func (r *Relay) Serve() error {
	if r.lerr != nil {
		return r.lerr
	}
	started := false
	var err error
	r.serveOnce.Do(func() {
		started = true
		err = r.startLoops(min(max(runtime.GOMAXPROCS(0), 1), maxLoops))
	})
	if !started {
		return errors.New("proxy: Serve called twice")
	}
	if err != nil {
		return err
	}
	select {
	case <-r.done:
		return ErrClosed
	case err := <-r.failed:
		select {
		case <-r.done:
			return ErrClosed
		default:
		}
		return err
	}
}

func (r *Relay) startLoops(n int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing.Load() {
		return nil
	}
	for range n {
		l, err := newLoop(r)
		if err != nil {
			for _, l := range r.loops {
				l.closeFDs()
			}
			r.loops = nil
			return err
		}
		r.loops = append(r.loops, l)
	}
	for _, l := range r.loops {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			l.run()
		}()
	}
	return nil
}

// Close stops accepting, closes the listener given to New and every
// relayed connection, and returns when the loops have ended.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closing.Swap(true) {
		r.mu.Unlock()
		return nil
	}
	close(r.done)
	loops := r.loops
	r.mu.Unlock()
	for _, l := range loops {
		l.wake()
	}
	r.wg.Wait()
	r.mu.Lock()
	for _, l := range r.loops {
		l.closeFDs()
	}
	r.loops = nil
	r.mu.Unlock()
	if r.lfd >= 0 {
		unix.Close(r.lfd)
	}
	return r.ln.Close()
}

// transient says whether an accept error goes away once a connection
// ends: the relay retries after a pause.
func transient(err error) bool {
	return errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) ||
		errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.ENOMEM)
}

// testHookDial runs before each dial; tests use it to switch the target
// at that point.
var testHookDial atomic.Pointer[func(addr string)]

// fail reports a loop's failure to Serve.
func (r *Relay) fail(err error) {
	select {
	case r.failed <- err:
	default:
	}
}

// isTarget says whether gen is the target.
func (r *Relay) isTarget(gen int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gen == gen
}
