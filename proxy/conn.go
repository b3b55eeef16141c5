package proxy

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// A conn is one relayed connection, owned by the loop that accepted it.
type conn struct {
	l      *loop
	id     int32 // in its sockets' epoll data, against reused fds
	gen    int   // the generation it is relayed to
	remote netip.AddrPort
	fd     [2]int  // client, backend; -1 when none
	out    [2]bool // EPOLLOUT is in fd[i]'s interest set
	flows  [2]flow // client to backend, backend to client
	done   bool    // closed, as the loop sees it
	queued bool    // on the loop's again list

	// Dialing: the backends still to try, the one tried, and a connect
	// in flight (pending) with its deadline.
	backends backends
	addr     netip.AddrPort
	sa       *rawSockaddr
	pending  bool
	deadline time.Time
	repicked bool
	lastErr  error

	// mu orders closing the sockets (the loop) against checkIdle, the
	// only code that uses them from another goroutine.
	mu     sync.Mutex
	closed bool
	idle   *time.Timer
	killed atomic.Bool // checkIdle shut the sockets down
}

// A flow is one direction of a conn: the bytes of socket src to socket
// dst (indexes into conn.fd).
type flow struct {
	src, dst int
	// readable: src may have bytes or its EOF (an event said so and no
	// read since has shown it empty). rdhup: src's peer had sent its FIN
	// when an event was reported, so once src's bytes are read, its EOF
	// is all that is left. hup: src failed or is shut down; urg: TCP
	// urgent data is queued, where a read stops short (at the mark);
	// drain: src is a unix socket, whose reads stop short where passed
	// fds or credentials change. With any of these a short read does not
	// mean src is empty: it is read until EAGAIN.
	readable, rdhup, hup, urg, drain bool
	eof                              bool // src's EOF is read and passed on
	splicing                         bool // bulk: src's bytes go through pipe
	// pend are bytes read but not yet written, in hold (from copyBufs);
	// inPipe bytes wait in pipe.
	hold   *[]byte
	pend   []byte
	pipe   *pipe
	inPipe int
}

// copyBufSize is the most one read takes through the loop's buffer; a
// read that fills it switches its direction to splice.
const copyBufSize = 16 << 10

// flowBudget bounds the reads (16 KiB each, or a pipe's worth spliced) a
// direction makes in one turn, so that a bulk transfer does not keep its
// loop from the other connections; the rest waits for its next turn.
const flowBudget = 16

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// start relays a connection the loop accepted.
func (l *loop) start(fd int, remote netip.AddrPort) {
	gen, b := l.r.pick()
	c := &conn{l: l, id: l.newID(), gen: gen, remote: remote, fd: [2]int{fd, -1}, backends: b}
	c.flows[0] = flow{src: 0, dst: 1, drain: !remote.IsValid()} // a unix socket client
	c.flows[1] = flow{src: 1, dst: 0}
	c.dial()
}

// dial connects c to the next of its backends: the target's, the one in
// turn first, then (if all fail) the current target's when that changed
// since c was accepted. A connect that does not settle at once waits for
// its socket in the loop (event), at most DialTimeout.
func (c *conn) dial() {
	r := c.l.r
	for {
		addr, ok := c.backends.next()
		if ok && c.addr.IsValid() && !r.isTarget(c.gen) {
			ok = false // a sibling of a generation that is being replaced
		}
		if !ok {
			if !c.repicked {
				c.repicked = true
				if gen, b, moved := r.repick(c.gen); moved {
					r.o.Log.Debug("dial failed, trying the new target", "generation", c.gen, "backend", c.addr.String(), "error", c.lastErr)
					c.gen, c.backends = gen, b
					continue
				}
			}
			if c.lastErr == nil {
				c.lastErr = errors.New("the target has no usable backend address")
			}
			r.o.Log.Warn("cannot reach backend, closing client connection",
				"generation", c.gen, "backend", c.addr.String(), "client", addrOf(c.remote).String(), "error", c.lastErr)
			c.close()
			return
		}
		c.addr = addr
		if h := testHookDial.Load(); h != nil {
			(*h)(c.addr.String())
		}
		c.sa = newRawSockaddr(c.addr)
		fd, pending, err := dialStart(c.sa)
		if err != nil {
			c.lastErr = dialError(c.addr, err)
			continue
		}
		c.fd[1] = fd
		if !pending {
			c.connected()
			return
		}
		if err := c.l.add(c, fd, evWrite); err != nil {
			sysClose(fd)
			c.fd[1] = -1
			c.lastErr = dialError(c.addr, err)
			continue
		}
		c.out[1] = true
		c.pending = true
		c.deadline = time.Now().Add(r.o.DialTimeout)
		c.l.dialing = append(c.l.dialing, c)
		return
	}
}

// dialFailed gives up the connect in flight and tries the next backend.
func (c *conn) dialFailed(err error) {
	c.l.undial(c)
	c.pending = false
	c.l.remove(c.fd[1])
	sysClose(c.fd[1])
	c.fd[1], c.out[1] = -1, false
	c.lastErr = dialError(c.addr, err)
	c.dial()
}

// connected starts relaying once the backend has accepted: both sockets
// in the loop's set (the kernel reports what is already readable when a
// socket enters it), the idle timer, the PROXY protocol header first in
// line for the backend.
func (c *conn) connected() {
	if !c.out[1] {
		if err := c.l.add(c, c.fd[1], evRead); err != nil {
			c.fail(err)
			return
		}
	}
	if err := c.l.add(c, c.fd[0], evRead); err != nil {
		c.fail(err)
		return
	}
	r := c.l.r
	c.mu.Lock()
	c.idle = time.AfterFunc(r.o.IdleTimeout, c.checkIdle)
	c.mu.Unlock()
	if r.o.ProxyProtocol != None {
		c.flows[0].keep(Header(r.o.ProxyProtocol, addrOf(c.remote), localAddr(c.fd[0])))
	}
	c.run()
}

// event takes what epoll reported for one of c's sockets.
func (c *conn) event(fd int, ev uint32) {
	s := 0
	if fd == c.fd[1] {
		s = 1
	}
	if ev&(unix.EPOLLIN|unix.EPOLLPRI|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		f := &c.flows[s] // the flow that reads socket s
		f.readable = true
		if ev&unix.EPOLLPRI != 0 {
			f.urg = true
		}
		if ev&unix.EPOLLRDHUP != 0 {
			f.rdhup = true
		}
		if ev&(unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			f.hup = true
		}
	}
	if c.pending {
		if s != 1 || ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) == 0 {
			return
		}
		done, err := finishConnect(c.sa, c.fd[1])
		if err != nil {
			c.dialFailed(err)
			return
		}
		if done {
			c.l.undial(c)
			c.pending = false
			c.connected()
		}
		return
	}
	c.run()
}

// run moves what both directions can move now, and closes c once both
// have passed their EOF on, or on an error.
func (c *conn) run() {
	if c.done {
		return
	}
	if c.killed.Load() {
		c.l.r.o.Log.Debug("closing idle connection", "client", addrOf(c.remote).String())
		c.close()
		return
	}
	for i := range c.flows {
		if err := c.flows[i].move(c); err != nil {
			c.fail(err)
			return
		}
	}
	if c.flows[0].eof && c.flows[1].eof {
		c.close()
	}
}

func (c *conn) fail(err error) {
	c.l.r.o.Log.Debug("relayed connection failed", "client", addrOf(c.remote).String(), "generation", c.gen, "error", err)
	c.close()
}

// wantOut adds EPOLLOUT to socket s's interest set, once: a write to it
// could not take everything. The kernel reports the socket at once if it
// became writable in between.
func (c *conn) wantOut(s int) error {
	if c.out[s] {
		return nil
	}
	if err := epollCtl(c.l.epfd, unix.EPOLL_CTL_MOD, c.fd[s], evWrite, c.id); err != nil {
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	c.out[s] = true
	return nil
}

// move copies what f's source has to f's destination, until the source
// is empty, the destination full, or the turn's budget spent (then c runs
// again after this round of events). Small reads go through the loop's
// buffer; a read that fills it switches to splice until the source is
// empty.
func (f *flow) move(c *conn) error {
	l := c.l
	src, dst := c.fd[f.src], c.fd[f.dst]
	for range flowBudget {
		if len(f.pend) > 0 || f.inPipe > 0 {
			if ok, err := f.flush(c); err != nil || !ok {
				return err
			}
		}
		if f.eof || !f.readable {
			return nil
		}
		if f.splicing {
			if f.pipe == nil {
				p, err := pipes.get()
				if err != nil {
					// No pipe (EMFILE): the buffer still works.
					f.splicing = false
					continue
				}
				f.pipe = p
			}
			n, err := sysSplice(src, f.pipe.w, maxSplice)
			switch {
			case err == unix.EAGAIN:
				f.readable, f.urg = false, false
				f.endSplice()
				return nil
			case err != nil:
				return fmt.Errorf("splice: %w", err)
			case n == 0:
				f.endSplice()
				return f.finish(c)
			}
			f.inPipe = n
			continue
		}
		n, err := sysRead(src, l.buf[:])
		switch {
		case err == unix.EAGAIN:
			f.readable, f.urg = false, false
			return nil
		case err != nil:
			return fmt.Errorf("read: %w", err)
		case n == 0:
			return f.finish(c)
		}
		m, err := sysWrite(dst, l.buf[:n])
		if err == unix.EAGAIN {
			m, err = 0, nil
		}
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if m < n {
			f.keep(l.buf[m:n])
			return c.wantOut(f.dst)
		}
		if n == len(l.buf) {
			f.splicing = true
			continue
		}
		// A short read emptied src: bytes that arrive after it raise
		// a new event (edge-triggered), so no read need say EAGAIN.
		// Once src's peer has sent its FIN that event is spent: no
		// byte can follow the FIN, so the EOF behind the bytes is
		// passed on now. An error or shutdown is read to its end.
		switch {
		case f.hup, f.urg, f.drain:
		case f.rdhup:
			return f.finish(c)
		default:
			f.readable = false
			return nil
		}
	}
	l.requeue(c)
	return nil
}

// keep holds bytes f's destination has not taken yet.
func (f *flow) keep(b []byte) {
	f.hold = copyBufs.Get().(*[]byte)
	f.pend = append((*f.hold)[:0], b...)
	heldBufs.Add(1)
}

// heldBufs counts the buffers directions hold for destinations that have
// not taken their bytes: at most one per direction.
var heldBufs atomic.Int64

// unhold gives f's buffer back.
func (f *flow) unhold() {
	copyBufs.Put(f.hold)
	f.hold, f.pend = nil, nil
	heldBufs.Add(-1)
}

// flush writes what f holds, and says whether all of it went.
func (f *flow) flush(c *conn) (bool, error) {
	dst := c.fd[f.dst]
	for len(f.pend) > 0 {
		m, err := sysWrite(dst, f.pend)
		if err == unix.EAGAIN {
			return false, c.wantOut(f.dst)
		}
		if err != nil {
			return false, fmt.Errorf("write: %w", err)
		}
		f.pend = f.pend[m:]
	}
	if f.hold != nil {
		f.unhold()
	}
	for f.inPipe > 0 {
		m, err := sysSplice(f.pipe.r, dst, f.inPipe)
		if err == unix.EAGAIN {
			return false, c.wantOut(f.dst)
		}
		if err != nil {
			return false, fmt.Errorf("splice: %w", err)
		}
		if m == 0 {
			return false, io.ErrUnexpectedEOF // a pipe with bytes in it cannot be empty
		}
		f.inPipe -= m
	}
	return true, nil
}

// endSplice gives the (empty) pipe back: an idle direction holds none.
func (f *flow) endSplice() {
	f.splicing = false
	if f.pipe != nil && f.inPipe == 0 {
		pipes.put(f.pipe)
		f.pipe = nil
	}
}

// finish passes src's EOF on as a half-close of dst. The second
// direction to finish leaves the FIN to the close that follows at once:
// dst is the other direction's source, read to its EOF, so the close
// sends a FIN and not a reset, and the shutdown(2) would only cost a
// syscall.
func (f *flow) finish(c *conn) error {
	f.eof = true
	if !c.flows[f.dst].eof {
		sysShutdown(c.fd[f.dst], unix.SHUT_WR)
	}
	return nil
}

// release gives back what f holds; a pipe with bytes left in it cannot
// be reused.
func (f *flow) release() {
	if f.hold != nil {
		f.unhold()
	}
	if f.pipe != nil {
		if f.inPipe > 0 {
			pipes.drop(f.pipe)
		} else {
			pipes.put(f.pipe)
		}
		f.pipe = nil
	}
}

// close closes c's sockets and uncounts it.
func (c *conn) close() {
	if c.done {
		return
	}
	c.done = true
	c.mu.Lock()
	c.closed = true
	if c.idle != nil {
		c.idle.Stop()
	}
	c.mu.Unlock()
	l := c.l
	for i, fd := range c.fd {
		if fd < 0 {
			continue
		}
		if fd < len(l.conns) && l.conns[fd] == c {
			l.remove(fd)
		}
		sysClose(fd)
		c.fd[i] = -1
	}
	if c.pending {
		l.undial(c)
		c.pending = false
	}
	for i := range c.flows {
		c.flows[i].release()
	}
	l.r.release(c.gen)
	l.r.freeSlot()
}

// checkIdle runs on c's timer, IdleTimeout after the connection started
// and then after whatever it found left of it: it closes c if no byte
// went either way for IdleTimeout, by shutting both sockets down (the
// loop, woken by that, closes them). Being outside the loop, it also ends
// a connection whose directions both wait on peers that do not read.
func (c *conn) checkIdle() {
	timeout := c.l.r.o.IdleTimeout
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	idle, err := idleFor(c.fd[1])
	if err == nil && idle < timeout {
		c.idle.Reset(timeout - idle)
		return
	}
	c.killed.Store(true)
	sysShutdown(c.fd[0], unix.SHUT_RDWR)
	sysShutdown(c.fd[1], unix.SHUT_RDWR)
}

// idleFor is how long ago the backend socket last sent or received data:
// what went to the backend came from the client and what came from it went
// to the client, so it is the connection's idleness both ways.
func idleFor(backend int) (time.Duration, error) {
	info, err := unix.GetsockoptTCPInfo(backend, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return 0, fmt.Errorf("TCP_INFO: %w", err)
	}
	ms := min(info.Last_data_recv, info.Last_data_sent)
	return time.Duration(ms) * time.Millisecond, nil
}
