package sockets

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Authority binds an app's listeners and steers their new connections
// between the app's generations. Generations are numbered per app, and a
// listener belongs to one app, so (listener, generation) names a socket.
//
// Calls for one listener come from its app's goroutine; Status may come from
// anywhere.
type Authority interface {
	// Socket returns the listening socket that generation gen's workers
	// inherit for the listener, binding one if gen has none yet. A socket
	// receives no connection until Serve is called for its generation.
	Socket(listener string, gen int) (*Listener, error)
	// Serve steers every new connection of the listener to gen's socket.
	Serve(listener string, gen int) error
	// Queued is the length of the accept queue of gen's socket: the
	// connections the kernel completed that no worker has accepted yet.
	// For a unix socket it is 0 or 1 (empty or not). -1: unknown.
	Queued(listener string, gen int) int
	// Grace is how long a replaced generation keeps accepting once its
	// queue is empty, for handshakes that were in flight at the switch.
	Grace(listener string) time.Duration
	// Release says that gen's workers are gone: its socket leaves the
	// group, now or as soon as that keeps steering exact.
	Release(listener string, gen int)
	// Status describes every listener and its sockets.
	Status() []ListenerStatus
	// Close closes every socket.
	Close()
}

// Mode is how a listener's connections reach generations.
type Mode string

const (
	// Steered: a socket per generation, and the kernel puts each new
	// connection in the serving generation's socket.
	Steered Mode = "steered"
	// Shared: one socket for every generation, one accept queue.
	Shared Mode = "shared"
)

// Spec is a listener to bind, and how.
type Spec struct {
	ListenerOptions
	// Steer asks for a socket per generation. Apps that reload by restart
	// or signal have one generation at a time and share one socket.
	Steer bool
	// Why is logged and shown in status when Steer is false.
	Why string
	// Grace: see Authority.Grace. Zero picks DefaultGrace.
	Grace time.Duration
}

// DefaultGrace covers a round trip of a client far away, or a lost final
// ACK that the client's next segment replaces.
const DefaultGrace = time.Second

// SocketStatus describes one socket of a listener.
type SocketStatus struct {
	// Generation is the generation whose workers hold the socket; 0 for a
	// socket that no live generation holds (retired: it receives nothing
	// and leaves the group at the next change that keeps steering exact).
	Generation int  `json:"generation"`
	Serving    bool `json:"serving"`
	// Index is the socket's place in the kernel's reuseport group (-1 when
	// the listener is not steered by index).
	Index  int `json:"index"`
	Queued int `json:"queued"`
}

// ListenerStatus describes one listener.
type ListenerStatus struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Mode    Mode   `json:"mode,omitempty"`
	Note    string `json:"note,omitempty"`
	// Migrate: tcp_migrate_req is on, for a steered TCP listener.
	Migrate bool           `json:"tcp_migrate_req,omitempty"`
	Sockets []SocketStatus `json:"sockets,omitempty"`
}

// Local is the Authority of a rotini that binds its own sockets.
type Local struct {
	log   hclog.Logger
	order []string
	ls    map[string]*listener
}

// NewLocal binds the first socket of every listener, so that an address in
// use is an error at start-up, and connections wait in the backlog while
// the first generation boots.
func NewLocal(log hclog.Logger, specs []Spec) (*Local, error) {
	a := &Local{log: log, ls: map[string]*listener{}}
	migrate := migrateReq(log, specs)
	for _, s := range specs {
		l, err := newListener(log.With("listener", s.Name), s, migrate)
		if err != nil {
			a.Close()
			return nil, err
		}
		a.order = append(a.order, s.Name)
		a.ls[s.Name] = l
	}
	return a, nil
}

func (a *Local) get(name string) (*listener, error) {
	l := a.ls[name]
	if l == nil {
		return nil, fmt.Errorf("no listener named %q", name)
	}
	return l, nil
}

// Socket implements Authority.
func (a *Local) Socket(name string, gen int) (*Listener, error) {
	l, err := a.get(name)
	if err != nil {
		return nil, err
	}
	return l.socket(gen)
}

// Serve implements Authority.
func (a *Local) Serve(name string, gen int) error {
	l, err := a.get(name)
	if err != nil {
		return err
	}
	return l.serve(gen)
}

// Queued implements Authority.
func (a *Local) Queued(name string, gen int) int {
	l, err := a.get(name)
	if err != nil {
		return -1
	}
	return l.queued(gen)
}

// Grace implements Authority.
func (a *Local) Grace(name string) time.Duration {
	l, err := a.get(name)
	if err != nil {
		return 0
	}
	return l.grace()
}

// Release implements Authority.
func (a *Local) Release(name string, gen int) {
	if l, err := a.get(name); err == nil {
		l.release(gen)
	}
}

// Status implements Authority.
func (a *Local) Status() []ListenerStatus {
	out := make([]ListenerStatus, 0, len(a.order))
	for _, n := range a.order {
		out = append(out, a.ls[n].status())
	}
	return out
}

// Close implements Authority.
func (a *Local) Close() {
	for _, l := range a.ls {
		l.close()
	}
}

// Addr is the address a listener is bound to, with the real port.
func (a *Local) Addr(name string) string {
	if l := a.ls[name]; l != nil {
		return l.addr
	}
	return ""
}

// migrateReqPath is the sysctl that moves a closing listener's queued and
// half-open connections to another socket of its reuseport group.
const migrateReqPath = "/proc/sys/net/ipv4/tcp_migrate_req"

// migrateReq reports whether tcp_migrate_req is on in rotini's network
// namespace, when a steered TCP listener would use it. rotini does not set
// it: a process cannot tell whether the namespace it runs in is a
// container's or the host's, and a container's /proc/sys is read-only
// anyway; `docker run --sysctl net.ipv4.tcp_migrate_req=1` sets it.
func migrateReq(log hclog.Logger, specs []Spec) bool {
	need := false
	for _, s := range specs {
		need = need || (s.Steer && s.Network != "unix")
	}
	if !need {
		return false
	}
	b, err := os.ReadFile(migrateReqPath)
	if err == nil && strings.TrimSpace(string(b)) != "0" {
		log.Info("tcp_migrate_req is on: handshakes in flight at a switch move to the serving generation")
		return true
	}
	log.Info("tcp_migrate_req is off: a replaced generation keeps accepting for switch_grace after its queue is empty (net.ipv4.tcp_migrate_req=1 lets the kernel move late handshakes instead)")
	return false
}

// listener is one configured listener and its sockets. Its methods take
// its mutex; the app's goroutine calls them, Status may too from anywhere.
type listener struct {
	mu      sync.Mutex
	log     hclog.Logger
	spec    Spec
	addr    string
	mode    Mode
	note    string
	migrate bool
	shared  *Listener
	g       *group // steered TCP
	u       *unixSteer
}
