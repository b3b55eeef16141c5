package proxy

import (
	"encoding/binary"
	"errors"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A loop is one of a Relay's event loops: a goroutine that waits for its
// own epoll instance in the runtime's poller, accepts on the shared
// listening socket (each new connection wakes every loop; one accepts
// it), and moves the bytes of the connections it accepted. Everything a loop owns
// (its connections' fds, buffers, pipes) is touched by its goroutine
// alone; other goroutines only write to its eventfd (wake), and an idle
// timer shuts a connection's sockets down under the connection's lock
// (conn.checkIdle), which the loop sees as an event.
type loop struct {
	r    *Relay
	epfd int
	// ep is epfd in the runtime's poller, where the loop's goroutine
	// parks while nothing is ready (see run); its read deadline is the
	// loop's next timer.
	ep        *os.File
	epc       syscall.RawConn
	deadline  time.Time
	wakefd    int
	listening bool      // the listening socket is in the interest set
	retryAt   time.Time // accepting paused after a transient error until then
	conns     []*conn   // by fd: both of a connection's sockets map to it
	again     []*conn   // connections whose turn ended with work left
	dialing   []*conn   // connections whose connect is in flight
	nextID    int32
	events    [maxEvents]unix.EpollEvent
	// buf is where small messages pass from one socket to the other; a
	// write that takes only part of it leaves the rest in a buffer of
	// the direction's own (flow.hold).
	buf [copyBufSize]byte
}

const maxEvents = 128

// The interest sets: every connected socket is edge-triggered, for
// reading from its entry in the set on; writing is added only once a write
// to it could not take everything (EPOLL_CTL_MOD, and kept). The listening
// socket is level-triggered. (EPOLLEXCLUSIVE would not help: it picks
// among threads blocked in epoll_wait on the instances, and the loops
// wait in the runtime's poller instead, so every loop wakes for a new
// connection and one of them accepts it.)
const (
	evRead   uint32 = unix.EPOLLIN | unix.EPOLLPRI | unix.EPOLLRDHUP | unix.EPOLLET
	evWrite  uint32 = evRead | unix.EPOLLOUT
	evListen uint32 = unix.EPOLLIN
)

// acceptBatch is the most connections one wake-up of the listening socket
// accepts: level-triggered, it wakes the loop again if more are queued,
// and a loop that stops early leaves them to the others.
const acceptBatch = 4

func newLoop(r *Relay) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	wfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("eventfd", err)
	}
	if err := epollCtl(epfd, unix.EPOLL_CTL_ADD, wfd, unix.EPOLLIN, 0); err != nil {
		unix.Close(epfd)
		unix.Close(wfd)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	// Non-blocking, so that os.NewFile puts it in the runtime's poller
	// (epoll_wait itself ignores the flag).
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		unix.Close(wfd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	ep := os.NewFile(uintptr(epfd), "epoll")
	epc, err := ep.SyscallConn()
	if err != nil {
		ep.Close()
		unix.Close(wfd)
		return nil, err
	}
	return &loop{r: r, epfd: epfd, ep: ep, epc: epc, wakefd: wfd}, nil
}

// wake makes the loop look again at the relay's state: target, bound,
// Close. Any goroutine may call it.
func (l *loop) wake() {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	sysWrite(l.wakefd, one[:])
}

// run is the loop's goroutine. It waits for its epoll instance to have
// events in the runtime's poller, like any goroutine reading a socket,
// and collects them with a raw epoll_wait that does not wait: no thread
// is held while the relay is idle, and a busy loop never enters a
// blocking syscall, whose P the runtime would hand to another thread.
func (l *loop) run() {
	defer l.exit()
	l.update()
	for {
		var perr error
		err := l.epc.Read(func(uintptr) bool {
			park, err := l.poll()
			perr = err
			return !park
		})
		if err == nil {
			err = perr
		}
		if l.r.closing.Load() {
			return
		}
		switch {
		case err == nil:
			if l.timerDue() {
				l.expireDials()
				l.update()
			}
		case errors.Is(err, os.ErrDeadlineExceeded):
			l.expireDials()
			l.update()
		default:
			l.r.o.Log.Error("relay loop stopped", "error", err)
			l.r.fail(err)
			return
		}
		l.setDeadline()
	}
}

// poll handles what is ready until nothing is, and says whether the loop
// may park (true) or must return to run: closing, a timer to set, an
// error. Parking is safe only once the instance's ready list has been
// seen empty, or holds nothing but edge-triggered events already taken:
// from then on anything new wakes the poller. The listening socket is
// level-triggered: once reported it stays on the ready list, and only an
// accept that said EAGAIN proves it empty; otherwise the loop polls
// again.
func (l *loop) poll() (park bool, err error) {
	for {
		n, err := epollWait(l.epfd, l.events[:])
		if err != nil {
			return false, os.NewSyscallError("epoll_wait", err)
		}
		again := n == len(l.events)
		for i := range n {
			ev := l.events[i]
			switch fd := int(ev.Fd); {
			case ev.Pad != 0:
				if c := l.lookup(fd, ev.Pad); c != nil {
					c.event(fd, ev.Events)
				}
			case fd == l.wakefd:
				var b [8]byte
				sysRead(l.wakefd, b[:])
				if l.r.closing.Load() {
					return false, nil
				}
				l.update()
			case fd == l.r.lfd:
				if !l.accept() {
					again = true
				}
			}
		}
		l.runAgain()
		if len(l.again) > 0 {
			again = true
		}
		if !again {
			return l.nextTimer().Equal(l.deadline), nil
		}
		if l.timerDue() {
			// A loop that always has work left would never see its
			// read deadline: run looks at the timers.
			return false, nil
		}
	}
}

// timerDue says whether the loop's next timer has passed.
func (l *loop) timerDue() bool {
	next := l.nextTimer()
	return !next.IsZero() && !time.Now().Before(next)
}

// setDeadline makes the next timer the read deadline of the loop's wait.
func (l *loop) setDeadline() {
	next := l.nextTimer()
	if next.Equal(l.deadline) {
		return
	}
	l.deadline = next
	l.ep.SetReadDeadline(next)
}

// nextTimer is when the loop must run without an event: the first dial's
// deadline or the end of an accept pause; zero for none.
func (l *loop) nextTimer() time.Time {
	var next time.Time
	for _, c := range l.dialing {
		if next.IsZero() || c.deadline.Before(next) {
			next = c.deadline
		}
	}
	if !l.retryAt.IsZero() && (next.IsZero() || l.retryAt.Before(next)) {
		next = l.retryAt
	}
	return next
}

// update puts the listening socket in the interest set or takes it out:
// the loop accepts while the relay has a target, is not at its bound, and
// no accept pause runs.
func (l *loop) update() {
	if !l.retryAt.IsZero() && !time.Now().Before(l.retryAt) {
		l.retryAt = time.Time{}
	}
	want := l.r.hasTarget() && l.retryAt.IsZero() &&
		l.r.active.Load() < int64(l.r.o.MaxConnections)
	if want == l.listening {
		return
	}
	op := unix.EPOLL_CTL_DEL
	if want {
		op = unix.EPOLL_CTL_ADD
	}
	if err := epollCtl(l.epfd, op, l.r.lfd, evListen, 0); err != nil {
		l.r.o.Log.Error("cannot watch the listening socket, retrying", "error", os.NewSyscallError("epoll_ctl", err), "in", acceptPause)
		l.retryAt = time.Now().Add(acceptPause)
		return
	}
	l.listening = want
}

// accept accepts up to acceptBatch connections, and says whether the
// queue was seen empty (or the listening socket is no longer watched).
func (l *loop) accept() bool {
	for range acceptBatch {
		if !l.r.takeSlot() {
			l.update() // at the bound: clients wait in the backlog
			return true
		}
		fd, remote, err := accept4(l.r.lfd)
		if err != nil {
			l.r.freeSlot()
			switch {
			case err == unix.EAGAIN:
			case transient(err):
				// EMFILE, ENFILE, ENOBUFS: a connection's end frees what
				// is missing; until then a level-triggered listener would
				// spin.
				l.r.o.Log.Warn("accept failed, retrying", "error", os.NewSyscallError("accept4", err), "in", acceptPause)
				l.retryAt = time.Now().Add(acceptPause)
				l.update()
			default:
				l.r.o.Log.Error("accept failed, relay stops accepting", "error", os.NewSyscallError("accept4", err))
				l.retryAt = time.Now().Add(24 * time.Hour)
				l.update()
				l.r.fail(os.NewSyscallError("accept4", err))
			}
			return true
		}
		l.start(fd, remote)
	}
	return false
}

// acceptPause is how long a loop stops accepting after a transient error.
const acceptPause = 50 * time.Millisecond

// add makes fd one of c's sockets in the loop's table and interest set.
func (l *loop) add(c *conn, fd int, events uint32) error {
	if err := epollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, events, c.id); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	for fd >= len(l.conns) {
		l.conns = append(l.conns, make([]*conn, max(len(l.conns), 64))...)
	}
	l.conns[fd] = c
	return nil
}

// remove forgets fd, which the caller closes: the kernel drops a closed
// socket from every interest set (none of the relay's fds is ever
// duplicated).
func (l *loop) remove(fd int) {
	l.conns[fd] = nil
}

// lookup is the connection an event is for. An fd closed earlier in the
// same batch of events, and reused by a connection accepted since, would
// hand its event to the newcomer: the id in the event's data tells them
// apart.
func (l *loop) lookup(fd int, id int32) *conn {
	if fd < 0 || fd >= len(l.conns) {
		return nil
	}
	if c := l.conns[fd]; c != nil && c.id == id {
		return c
	}
	return nil
}

// newID numbers connections; 0 is the loop's own fds.
func (l *loop) newID() int32 {
	l.nextID++
	if l.nextID <= 0 {
		l.nextID = 1
	}
	return l.nextID
}

// requeue gives c another turn after this round of events.
func (l *loop) requeue(c *conn) {
	if !c.queued {
		c.queued = true
		l.again = append(l.again, c)
	}
}

func (l *loop) runAgain() {
	if len(l.again) == 0 {
		return
	}
	again := l.again
	l.again = nil
	for _, c := range again {
		c.queued = false
		if !c.done {
			c.run()
		}
	}
}

// expireDials fails the connects that have taken DialTimeout.
func (l *loop) expireDials() {
	if len(l.dialing) == 0 {
		return
	}
	now := time.Now()
	for _, c := range append([]*conn(nil), l.dialing...) {
		if !c.done && c.pending && !now.Before(c.deadline) {
			c.dialFailed(errors.New("connect: timed out"))
		}
	}
}

// undial takes c off the list of connects in flight.
func (l *loop) undial(c *conn) {
	for i, d := range l.dialing {
		if d == c {
			l.dialing = append(l.dialing[:i], l.dialing[i+1:]...)
			return
		}
	}
}

// exit closes every connection of the loop. Its own fds are closed by
// Relay.Close once every loop has ended, since the others may wake it
// until then.
func (l *loop) exit() {
	for _, c := range l.conns {
		if c != nil && !c.done {
			c.close()
		}
	}
	for _, c := range l.dialing {
		if !c.done {
			c.close()
		}
	}
}

func (l *loop) closeFDs() {
	l.ep.Close()
	unix.Close(l.wakefd)
}
