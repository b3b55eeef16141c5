package activation

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/procfs"
)

// server receives sd_notify datagrams (READY=1, STATUS=…) for one app
// on a path socket of its own, and attributes each to a worker of that app
// by the sender's credentials (SO_PASSCRED, which the kernel fills in and a
// sender cannot forge): the sender itself, or the nearest worker among its
// ancestors. So a READY=1 sent by a worker's child (a gunicorn master's
// helper, `systemd-notify`) still counts, while a process that is not a
// worker's descendant — one that joined a worker's process group with
// setpgid, a worker of another app, anyone else on the host — is credited
// nothing.
//
// The socket is mode 0600, owned by the user the app's workers run as, so
// that no other user can even send to it; each sender pid gets at most
// notifyRate messages a second handled, the rest dropped (and logged
// once), and rotini reads at most notifySocketRate a second from one
// socket, so that a flood costs rotini little and delays no other app's
// READY=1.
type server struct {
	log  hclog.Logger
	path string
	conn *net.UnixConn
	// deliver hands a message to the first registered worker among the
	// candidate pids (the sender, then its ancestors).
	deliver func(candidates []int, msg Msg)

	mu    sync.Mutex
	owner [2]int // uid, gid the socket was last given; -1 = rotini's

	// Rate limiting, owned by serve's goroutine.
	window  time.Time
	total   int          // messages read in this window
	counts  map[int]int  // by sender pid, in this window
	flooded map[int]bool // senders already logged as flooding
	paused  bool         // the socket's rate was exceeded once (logged)
}

// notifyRate bounds the messages one sender pid may send per second; a
// worker sends a handful in its life. notifySocketRate bounds what rotini
// reads from one app's socket per second, whoever sends.
const (
	notifyRate       = 32
	notifySocketRate = 256
)

// Msg is one sd_notify datagram, as far as rotini reads it.
type Msg struct {
	Pid    int    // the sender, from its credentials
	Ready  bool   // READY=1
	Status string // STATUS=…
}

// newNotifyDir makes the directory of this rotini's notify sockets: one of
// its own, since several rotinis may share /run (tests, or PID namespaces
// that each have a PID 1). Others may traverse it but not list it.
func newNotifyDir(log hclog.Logger, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("notify socket dir: %w", err)
	}
	removeStaleNotifyDirs(log, dir)
	own, err := os.MkdirTemp(dir, "notify-")
	if err != nil {
		return "", fmt.Errorf("notify socket dir: %w", err)
	}
	_ = os.Chmod(own, 0o711)
	return own, nil
}

func newServer(log hclog.Logger, path string, deliver func([]int, Msg)) (*server, error) {
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	// Only rotini's own user until own gives it to the app's.
	if err := os.Chmod(path, 0o600); err != nil {
		conn.Close()
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	}); err != nil || serr != nil {
		conn.Close()
		return nil, fmt.Errorf("notify socket: SO_PASSCRED: %w", errors.Join(err, serr))
	}
	return &server{
		log: log, path: path, conn: conn, deliver: deliver,
		owner: [2]int{-1, -1}, counts: map[int]int{}, flooded: map[int]bool{},
	}, nil
}

// own gives the socket to the user and group the app's workers run as, so
// that they can send to it and nobody else can; -1 means rotini's own.
// Called before each spawn; it does something only when they changed.
func (n *server) own(uid, gid int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.owner == [2]int{uid, gid} {
		return
	}
	u, g := uid, gid
	if u < 0 {
		u = os.Getuid()
	}
	if g < 0 {
		g = os.Getgid()
	}
	if err := os.Chown(n.path, u, g); err != nil {
		n.log.Warn("cannot give the notify socket to the workers' user; READY=1 from them may be refused", "path", n.path, "uid", u, "gid", g, "error", err)
		return
	}
	n.owner = [2]int{uid, gid}
}

// throttle counts a message against the socket's rate: past
// notifySocketRate in one second, it stops reading until the second is
// over, so that a flood costs rotini a few hundred reads a second, not a
// core. Senders then wait for room in the socket's queue; the socket is
// this app's only, so no other app's messages wait with them. It reports
// whether the message is to be dropped.
func (n *server) throttle(now time.Time) bool {
	if now.Sub(n.window) >= time.Second {
		n.window = now
		n.total = 0
		clear(n.counts)
		if len(n.flooded) > 4096 {
			clear(n.flooded)
		}
	}
	n.total++
	if n.total <= notifySocketRate {
		return false
	}
	if !n.paused {
		n.paused = true
		n.log.Warn("notify socket flooded: reading paused for the rest of each second past the rate", "rate_per_second", notifySocketRate)
	}
	time.Sleep(time.Second - now.Sub(n.window))
	return true
}

// allow counts a message from pid against its rate and reports whether it
// may be handled.
func (n *server) allow(pid int, now time.Time) bool {
	n.counts[pid]++
	if n.counts[pid] <= notifyRate {
		return true
	}
	if !n.flooded[pid] {
		n.flooded[pid] = true
		n.log.Warn("notify socket flooded: dropping messages beyond the rate from this sender", "pid", pid, "rate_per_second", notifyRate)
	}
	return false
}

func (n *server) serve() {
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	for {
		nb, noob, _, _, err := n.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			n.log.Warn("notify socket read", "error", err)
			continue
		}
		now := time.Now()
		if n.throttle(now) {
			continue
		}
		pid := senderPid(oob[:noob])
		if pid <= 0 {
			n.log.Debug("notify message without credentials dropped")
			continue
		}
		if !n.allow(pid, now) {
			continue
		}
		n.deliver(candidates(pid), parseNotify(pid, buf[:nb]))
	}
}

func (n *server) close() {
	n.conn.Close()
	_ = os.Remove(n.path)
}

func senderPid(oob []byte) int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for _, m := range msgs {
		if cred, err := unix.ParseUnixCredentials(&m); err == nil {
			return int(cred.Pid)
		}
	}
	return 0
}

func parseNotify(pid int, b []byte) Msg {
	m := Msg{Pid: pid}
	for _, line := range bytes.Split(b, []byte("\n")) {
		k, v, _ := strings.Cut(string(line), "=")
		switch k {
		case "READY":
			m.Ready = v == "1"
		case "STATUS":
			m.Status = v
		}
	}
	return m
}

// candidates lists the pids whose worker a message from pid may belong to,
// most specific first: the sender, then its ancestors up to rotini. Not
// its process group: any process of the session can join a worker's group
// with setpgid, so the group proves nothing.
func candidates(pid int) []int {
	c := []int{pid}
	self := os.Getpid()
	for p, i := pid, 0; p > 1 && i < 64; i++ {
		if p = parentPid(p); p > 1 && p != self {
			c = append(c, p)
		} else {
			break
		}
	}
	return c
}

// parentPid is pid's parent (0 when the process is gone).
func parentPid(pid int) int {
	p, _ := procfs.Stat(pid)
	return p.PPID
}
