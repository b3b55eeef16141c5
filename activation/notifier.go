package activation

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rotini-dev/rotini/sockets"
)

// Notifier is one rotini's notify sockets, one per app, in a directory of
// its own, and the routing of each message to the worker it belongs to.
// Its methods may be called from any goroutine.
type Notifier struct {
	log     hclog.Logger
	dir     string
	marker  *net.UnixConn
	servers map[string]*server // by app name

	mu      sync.Mutex
	workers map[int]target // pid -> where its messages go
	parked  []parkedMsg    // messages from not yet registered pids
}

// target is a registered worker: its app, and where its messages go.
type target struct {
	app string
	h   func(Msg)
}

// parkedMsg is a notify message that arrived before its worker's pid was
// registered: a fast worker can send READY=1 between fork and the moment
// its app records the pid.
type parkedMsg struct {
	app        string
	candidates []int
	msg        Msg
	at         time.Time
}

// Parked messages are kept this long, and at most this many.
const (
	parkTTL = 30 * time.Second
	parkMax = 1024
)

// NewNotifier makes a directory of its own under runtimeDir (removing those
// that dead rotinis left there) and binds a socket in it for each of apps.
// Each app's socket exists even if the app does not ask for it now, so that
// a reload that turns `notify` on needs no restart. Messages are read once
// Serve is called. log is the supervisor's: the sockets log under
// "notify", routing under log itself.
func NewNotifier(log hclog.Logger, runtimeDir string, apps []string) (*Notifier, error) {
	n := &Notifier{log: log, servers: map[string]*server{}, workers: map[int]target{}}
	dir, err := newNotifyDir(log.Named("notify"), runtimeDir)
	if err != nil {
		return nil, err
	}
	n.dir = dir
	// notify.sock marks the directory as alive for as long as this rotini
	// is: a rotini that starts later in the same runtime directory can
	// tell a dead one's directory (connection refused) from a live one's.
	// Nothing reads it and no worker is given it.
	marker, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "notify.sock"), Net: "unixgram"})
	if err != nil {
		n.Close()
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	_ = os.Chmod(filepath.Join(dir, "notify.sock"), 0o600)
	n.marker = marker
	for i, name := range apps {
		path := filepath.Join(dir, "app-"+name+".sock")
		if len(path) > sockets.MaxUnixPath {
			path = filepath.Join(dir, fmt.Sprintf("app-%d.sock", i))
		}
		s, err := newServer(log.Named("notify").Named(name), path,
			func(c []int, msg Msg) { n.Deliver(name, c, msg) })
		if err != nil {
			n.Close()
			return nil, err
		}
		n.servers[name] = s
	}
	return n, nil
}

// Serve reads every app's socket, each on a goroutine of its own, until
// Close.
func (n *Notifier) Serve() {
	for _, s := range n.servers {
		go s.serve()
	}
}

// Close closes every socket and removes the directory.
func (n *Notifier) Close() {
	for _, s := range n.servers {
		s.close()
	}
	if n.marker != nil {
		n.marker.Close()
	}
	if n.dir != "" {
		_ = os.RemoveAll(n.dir)
	}
}

// Path is app's socket, for its workers' NOTIFY_SOCKET ("" for an app it
// has none for).
func (n *Notifier) Path(app string) string {
	if s := n.servers[app]; s != nil {
		return s.path
	}
	return ""
}

// Own gives app's socket to the user and group its workers run as (-1:
// rotini's own), so that they can send to it and nobody else can. Called
// before each spawn; it does something only when they changed.
func (n *Notifier) Own(app string, uid, gid int) {
	if s := n.servers[app]; s != nil {
		s.own(uid, gid)
	}
}

// Register records pid as a worker of app whose messages go to h, and
// replays, from another goroutine, any message that was waiting for it on
// app's socket (h feeds the app's loop, which is the caller).
func (n *Notifier) Register(app string, pid int, h func(Msg)) {
	n.mu.Lock()
	n.workers[pid] = target{app: app, h: h}
	var replay []Msg
	keep := n.parked[:0]
	for _, p := range n.parked {
		if p.app == app && slices.Contains(p.candidates, pid) {
			replay = append(replay, p.msg)
		} else {
			keep = append(keep, p)
		}
	}
	n.parked = keep
	n.mu.Unlock()
	if len(replay) > 0 {
		go func() {
			for _, msg := range replay {
				h(msg)
			}
		}()
	}
}

// Unregister forgets the worker pid: it is gone.
func (n *Notifier) Unregister(pid int) {
	n.mu.Lock()
	delete(n.workers, pid)
	n.mu.Unlock()
}

// Deliver gives a message that arrived on app's socket, from the sender
// whose candidates (itself, then its ancestors) are given, to the worker
// of app it belongs to, or parks it until that worker is registered. A
// worker of another app among the candidates gets nothing: the nearest
// registered ancestor decides, and if it is not app's, the message is not
// app's either. The sockets call it; so do tests, as a worker would.
func (n *Notifier) Deliver(app string, candidates []int, msg Msg) {
	n.mu.Lock()
	for _, c := range candidates {
		if t, ok := n.workers[c]; ok {
			n.mu.Unlock()
			if t.app == app {
				t.h(msg)
			} else {
				n.log.Debug("notify message from another app's worker dropped", "app", app, "pid", msg.Pid, "worker_of", t.app)
			}
			return
		}
	}
	now := time.Now()
	keep := n.parked[:0]
	for _, p := range n.parked {
		if now.Sub(p.at) < parkTTL {
			keep = append(keep, p)
		}
	}
	n.parked = append(keep, parkedMsg{app: app, candidates: candidates, msg: msg, at: now})
	if len(n.parked) > parkMax {
		n.parked = n.parked[len(n.parked)-parkMax:]
	}
	n.mu.Unlock()
	n.log.Debug("notify message parked until its worker is known", "pid", msg.Pid, "ready", msg.Ready)
}
