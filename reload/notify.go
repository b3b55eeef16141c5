package reload

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// notifyServer receives sd_notify datagrams (READY=1, STATUS=…) on a path
// socket and attributes each to a worker by the sender's credentials
// (SO_PASSCRED): the sender itself, or the worker whose process group it is
// in, or the nearest worker among its ancestors. So a READY=1 sent by a
// worker's child (a gunicorn master's helper, `systemd-notify`) still counts.
type notifyServer struct {
	log  hclog.Logger
	path string
	conn *net.UnixConn
	// deliver hands a message to the first registered worker among the
	// candidate pids (the sender, its process group, its ancestors).
	deliver func(candidates []int, msg notifyMsg)
}

type notifyMsg struct {
	Pid    int
	Ready  bool
	Status string
}

func newNotifyServer(log hclog.Logger, dir string, deliver func([]int, notifyMsg)) (*notifyServer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("notify socket dir: %w", err)
	}
	removeStaleNotifyDirs(log, dir)
	// A directory of its own: several rotinis may share /run (tests, or
	// PID namespaces that each have a PID 1).
	own, err := os.MkdirTemp(dir, "notify-")
	if err != nil {
		return nil, fmt.Errorf("notify socket dir: %w", err)
	}
	_ = os.Chmod(own, 0o755)
	path := filepath.Join(own, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	// Workers may run as another user after dropping privileges.
	_ = os.Chmod(path, 0o666)
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
	return &notifyServer{log: log, path: path, conn: conn, deliver: deliver}, nil
}

func (n *notifyServer) serve() {
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
		pid := senderPid(oob[:noob])
		if pid <= 0 {
			n.log.Debug("notify message without credentials dropped")
			continue
		}
		n.deliver(candidates(pid), parseNotify(pid, buf[:nb]))
	}
}

func (n *notifyServer) close() {
	n.conn.Close()
	_ = os.RemoveAll(filepath.Dir(n.path))
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

func parseNotify(pid int, b []byte) notifyMsg {
	m := notifyMsg{Pid: pid}
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

// candidates lists the pids whose worker a message from pid belongs to, most
// specific first: the sender, its process group (a worker's group id is its
// pid), then its ancestors.
func candidates(pid int) []int {
	c := []int{pid}
	if pgid, err := unix.Getpgid(pid); err == nil && pgid != pid {
		c = append(c, pgid)
	}
	for p, i := pid, 0; p > 1 && i < 64; i++ {
		if p = parentPid(p); p > 1 {
			c = append(c, p)
		}
	}
	return c
}

// parentPid reads the ppid from /proc/PID/stat (0 when the process is gone).
func parentPid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	var state byte
	var ppid int
	if _, err := fmt.Sscanf(string(b[i+2:]), "%c %d", &state, &ppid); err != nil {
		return 0
	}
	return ppid
}
