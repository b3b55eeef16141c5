package sockets

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

func newListener(log hclog.Logger, s Spec, migrate bool) (*listener, error) {
	l := &listener{log: log, spec: s, migrate: migrate, mode: Shared, note: s.Why}
	if s.Relay {
		s.Steer, l.mode = false, Relayed
	}
	if s.Steer && s.Network != "unix" {
		if err := checkFree(s.Network, s.Address); err != nil {
			return nil, fmt.Errorf("listener %q (%s://%s): %w", s.Name, s.Network, s.Address, err)
		}
		o := s.ListenerOptions
		o.ReusePort = true
		first, err := Listen(o)
		if err != nil {
			return nil, err
		}
		l.addr = first.Addr
		g := &group{log: log, members: []*member{{l: first}}, migrate: migrate}
		if err := g.program(0); err != nil {
			// An old kernel, or a seccomp profile that refuses it: one
			// socket for every generation, as without steering.
			l.note = fmt.Sprintf("steering unavailable (SO_ATTACH_REUSEPORT_CBPF: %v); generations share one socket", err)
			log.Warn("steering unavailable; generations share one socket", "error", err)
			l.shared = first
			return l, nil
		}
		l.g, l.mode, l.note = g, Steered, ""
		return l, nil
	}
	first, err := Listen(s.ListenerOptions)
	if err != nil {
		return nil, err
	}
	l.addr = first.Addr
	if s.Steer && s.Network == "unix" {
		l.u = &unixSteer{members: []*member{{l: first}}}
		l.mode, l.note = Steered, ""
		return l, nil
	}
	l.shared = first
	return l, nil
}

// member is one socket of a listener.
type member struct {
	gen     int // 0: no generation holds it (the first socket before its generation, or retired)
	l       *Listener
	tmp     string // unix: the temporary path it is bound at until it serves
	retired bool   // released; waits to leave the group
}

func (l *listener) grace() time.Duration {
	if l.mode != Steered {
		return 0
	}
	if l.spec.Grace > 0 {
		return l.spec.Grace
	}
	return DefaultGrace
}

func (l *listener) socket(gen int) (*Listener, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.g != nil:
		return l.g.socket(gen, l.bindOptions())
	case l.u != nil:
		return l.u.socket(gen, l.spec.ListenerOptions)
	}
	return l.shared, nil
}

// bindOptions are those of a listener's later sockets: the same address as
// the first, with the port it got if 0 was asked.
func (l *listener) bindOptions() ListenerOptions {
	o := l.spec.ListenerOptions
	o.ReusePort = true
	if host, _, err := net.SplitHostPort(o.Address); err == nil {
		if _, port, err := net.SplitHostPort(l.addr); err == nil {
			o.Address = net.JoinHostPort(host, port)
		}
	}
	return o
}

func (l *listener) serve(gen int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.g != nil:
		return l.g.serve(gen)
	case l.u != nil:
		return l.u.serve(gen, l.spec.Address)
	}
	return nil
}

func (l *listener) queued(gen int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	var m *member
	switch {
	case l.g != nil:
		m = find(l.g.members, gen)
	case l.u != nil:
		m = find(l.u.members, gen)
	default:
		// One queue for every generation: the old one cannot wait for it
		// to empty, since the new one fills it too.
		return 0
	}
	if m == nil {
		return -1
	}
	return queueLen(m.l, l.u != nil)
}

func (l *listener) release(gen int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.g != nil:
		l.g.release(gen)
	case l.u != nil:
		l.u.release(gen)
	}
}

func (l *listener) status() ListenerStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := ListenerStatus{Name: l.spec.Name, Address: l.addr, Mode: l.mode, Note: l.note}
	var ms []*member
	var serving *member
	steerIndex := false
	switch {
	case l.g != nil:
		ms, serving, steerIndex = l.g.members, l.g.serving, true
		st.Migrate = l.g.migrate
	case l.u != nil:
		ms, serving = l.u.members, l.u.serving
	default:
		st.Sockets = []SocketStatus{{Index: -1, Queued: queueLen(l.shared, l.spec.Network == "unix")}}
		return st
	}
	for i, m := range ms {
		s := SocketStatus{Generation: m.gen, Serving: m == serving, Index: -1, Queued: queueLen(m.l, l.u != nil)}
		if m.retired {
			s.Generation = 0
		}
		if steerIndex {
			s.Index = i
		}
		st.Sockets = append(st.Sockets, s)
	}
	return st
}

func (l *listener) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.g != nil:
		for _, m := range l.g.members {
			m.l.File.Close()
		}
		l.g.members = nil
	case l.u != nil:
		for _, m := range l.u.members {
			m.l.File.Close()
			if m.tmp != "" {
				_ = os.Remove(m.tmp)
			}
		}
		l.u.members = nil
	default:
		l.shared.File.Close()
	}
}

func find(ms []*member, gen int) *member {
	for _, m := range ms {
		if m.gen == gen && !m.retired && gen != 0 {
			return m
		}
	}
	return nil
}

// group is a steered TCP listener: its sockets in the kernel's order, and
// the index the steering program returns.
type group struct {
	log     hclog.Logger
	members []*member // index i is the kernel's socks[i]
	serving *member
	prog    int
	migrate bool // tcp_migrate_req: a closing socket's queue moves to the group
}

func (g *group) index(m *member) int {
	for i, x := range g.members {
		if x == m {
			return i
		}
	}
	return -1
}

// program points the group's steering program at index i. It is attached
// through any member: the program belongs to the group.
func (g *group) program(i int) error {
	if len(g.members) == 0 {
		return errors.New("no socket")
	}
	f := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: uint32(i)}}
	p := unix.SockFprog{Len: 1, Filter: &f[0]}
	if err := unix.SetsockoptSockFprog(int(g.members[0].l.File.Fd()), unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF, &p); err != nil {
		return err
	}
	g.prog = i
	return nil
}

func (g *group) socket(gen int, o ListenerOptions) (*Listener, error) {
	if m := find(g.members, gen); m != nil {
		return m.l, nil
	}
	// The first socket was bound at start-up for the first generation, so
	// that connections wait in its backlog meanwhile. A retired socket is
	// taken over too: it could not leave without moving the serving one,
	// and nothing is steered to it.
	for _, m := range g.members {
		if m.gen == 0 || m.retired {
			m.gen, m.retired = gen, false
			return m.l, nil
		}
	}
	l, err := Listen(o)
	if err != nil {
		return nil, err
	}
	// listen() appended it to the group: no index moved, and the program
	// still points at the serving socket.
	g.members = append(g.members, &member{gen: gen, l: l})
	g.prune()
	return l, nil
}

func (g *group) serve(gen int) error {
	m := find(g.members, gen)
	if m == nil {
		return fmt.Errorf("generation %d has no socket", gen)
	}
	if err := g.program(g.index(m)); err != nil {
		return fmt.Errorf("steer to generation %d: %w", gen, err)
	}
	g.serving = m
	g.log.Debug("steering new connections", "generation", gen, "index", g.prog)
	g.prune()
	return nil
}

func (g *group) release(gen int) {
	m := find(g.members, gen)
	if m == nil || m == g.serving {
		// The serving socket stays until Close: connections keep waiting
		// in its backlog while rotini stops.
		return
	}
	m.retired = true
	g.prune()
}

// prune removes every retired socket whose removal keeps the program
// pointing at the serving socket, then compacts.
func (g *group) prune() {
	for {
		done := true
		for i, m := range g.members {
			if m.retired && g.safeToRemove(i) {
				g.remove(i)
				done = false
				break
			}
		}
		if done {
			break
		}
	}
	g.compact()
}

// compact removes the retired sockets that prune had to keep, when the
// group holds nothing else but the serving socket and the kernel migrates a
// closing listener's queue. The program first names the retired socket's
// slot, into which the serving socket is about to move; a connection that
// arrives in between lands on the retired socket and the kernel migrates
// it at the shutdown that follows, to another socket of the group, which
// then holds only retired sockets, themselves about to migrate, and the
// serving one.
func (g *group) compact() {
	if !g.migrate || g.serving == nil {
		return
	}
	for _, m := range g.members {
		if m != g.serving && !m.retired {
			return // a booting or draining generation could receive a migrated connection
		}
	}
	for len(g.members) > 1 {
		i := 0
		if g.members[0] == g.serving {
			i = 1
		}
		if !g.safeToRemove(i) {
			// The serving socket is last and moves into slot i.
			if err := g.program(i); err != nil {
				g.log.Error("cannot re-point steering", "error", err)
				return
			}
		}
		g.remove(i)
	}
}

// safeToRemove reports whether the socket at index i can leave the group
// now. The kernel moves the last socket into slot i. That is harmless when
// i is last, or when the serving socket is not the one that moves; and when
// only the serving socket remains, an index past the end hashes to it
// alone. Otherwise the serving socket would move under a program that
// still names its old slot, past the end of the group, and the kernel
// would hash new connections across booting and draining generations.
func (g *group) safeToRemove(i int) bool {
	last := len(g.members) - 1
	s := g.index(g.serving)
	return i == last || s != last || len(g.members) == 2
}

func (g *group) remove(i int) {
	m := g.members[i]
	fd := int(m.l.File.Fd())
	// shutdown takes a listening socket out of its group at once, even if
	// a process that should not hold it still does.
	if err := unix.Shutdown(fd, unix.SHUT_RD); err != nil {
		g.log.Warn("shutdown of a replaced socket", "error", err)
	}
	m.l.File.Close()
	last := len(g.members) - 1
	g.members[i] = g.members[last]
	g.members = g.members[:last]
	if s := g.index(g.serving); s >= 0 && s != g.prog {
		if err := g.program(s); err != nil {
			g.log.Error("cannot re-point steering after a socket left", "error", err)
		}
	}
}

// unixSteer is a steered unix listener: the serving socket is the one at
// the configured path.
type unixSteer struct {
	members []*member
	serving *member
}

func (u *unixSteer) socket(gen int, o ListenerOptions) (*Listener, error) {
	if m := find(u.members, gen); m != nil {
		return m.l, nil
	}
	if len(u.members) == 1 && u.members[0].gen == 0 {
		u.members[0].gen = gen
		return u.members[0].l, nil
	}
	tmp := filepath.Join(filepath.Dir(o.Address), "."+filepath.Base(o.Address)+"."+strconv.Itoa(gen))
	if len(tmp) > MaxUnixPath {
		// The configured path is within the limit (config checks it); the
		// temporary one beside it may not be.
		tmp = filepath.Join(filepath.Dir(o.Address), ".r"+strconv.Itoa(gen))
	}
	l, err := listen(o, tmp)
	if err != nil {
		return nil, err
	}
	u.members = append(u.members, &member{gen: gen, l: l, tmp: tmp})
	return l, nil
}

func (u *unixSteer) serve(gen int, path string) error {
	m := find(u.members, gen)
	if m == nil {
		return fmt.Errorf("generation %d has no socket", gen)
	}
	if m.tmp != "" {
		// New connections find the new socket from now on; the old one
		// keeps what it has queued for its generation to accept.
		if err := os.Rename(m.tmp, path); err != nil {
			return fmt.Errorf("steer to generation %d: %w", gen, err)
		}
		m.tmp = ""
	}
	u.serving = m
	return nil
}

func (u *unixSteer) release(gen int) {
	m := find(u.members, gen)
	if m == nil || m == u.serving {
		return
	}
	m.l.File.Close()
	if m.tmp != "" {
		_ = os.Remove(m.tmp)
	}
	for i, x := range u.members {
		if x == m {
			u.members = append(u.members[:i], u.members[i+1:]...)
			break
		}
	}
}

// QueueLen is the length of l's accept queue (0 or 1 for a unix socket:
// empty or not).
func QueueLen(l *Listener) int {
	d, err := unix.GetsockoptInt(int(l.File.Fd()), unix.SOL_SOCKET, unix.SO_DOMAIN)
	return queueLen(l, err == nil && d == unix.AF_UNIX)
}

// queueLen is the length of a listening socket's accept queue. For TCP,
// TCP_INFO's tcpi_unacked is the queue length on a listening socket; a
// unix socket only tells whether it is empty (poll).
func queueLen(l *Listener, isUnix bool) int {
	fd := int(l.File.Fd())
	if !isUnix {
		if ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			return int(ti.Unacked)
		}
	}
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	if n, err := unix.Poll(p, 0); err == nil && n > 0 && p[0].Revents&unix.POLLIN != 0 {
		return 1
	}
	return 0
}
