package hold

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/sockets"
)

// Holder is `rotini hold`: it binds the listeners its tenants define and
// steers their connections. Its state is under mu; each tenant has a
// goroutine that serves its requests.
type Holder struct {
	log  hclog.Logger
	path string
	ln   *net.UnixListener

	mu      sync.Mutex
	local   *sockets.Local
	specs   map[string]Spec
	standby map[string]int // listener -> the holder's number of its standby socket
	serving map[string]key // listener -> who is steered to; zero: the standby
	keys    map[key]int    // a tenant's generation -> the holder's socket number
	next    int
	tenants map[string]*tenant
	// superseded: containers whose rotini another one superseded, and by
	// whom; a restarted one (restart policy) must not take traffic back.
	superseded map[string]string
}

// key names a tenant's generation's socket of a listener.
type key struct {
	tenant, listener string
	gen              int
}

type tenant struct {
	id        string
	container string
	pid       int32
	c         *net.UnixConn
	wmu       sync.Mutex // one writer at a time: replies and events
}

func (t *tenant) send(v any, fd int) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	return send(t.c, v, fd)
}

// Listen makes the holder's socket at path, mode 0600: only its owner
// (root in a container) may take sockets from it.
func Listen(log hclog.Logger, path string) (*Holder, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		os.Remove(path)
	}
	old := unix.Umask(0o177)
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	unix.Umask(old)
	if err != nil {
		return nil, err
	}
	local, _ := sockets.NewLocal(log.Named("sockets"), nil)
	return &Holder{
		log: log, path: path, ln: ln, local: local,
		specs: map[string]Spec{}, standby: map[string]int{}, serving: map[string]key{},
		keys: map[key]int{}, tenants: map[string]*tenant{}, superseded: map[string]string{},
	}, nil
}

// Path is the holder's socket.
func (h *Holder) Path() string { return h.path }

// Serve accepts tenants until Close.
func (h *Holder) Serve() error {
	for {
		c, err := h.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			h.log.Warn("accept", "error", err)
			continue
		}
		go h.serveTenant(c)
	}
}

// Close stops accepting and closes every socket: the listeners go away
// with the holder, as its container's network namespace does.
func (h *Holder) Close() {
	h.ln.Close()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.local.Close()
}

func (h *Holder) serveTenant(c *net.UnixConn) {
	defer c.Close()
	var pid int32
	if raw, err := c.SyscallConn(); err == nil {
		raw.Control(func(fd uintptr) {
			if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
				pid = cred.Pid
				h.log.Info("tenant connected", "pid", cred.Pid, "uid", cred.Uid, "gid", cred.Gid)
			}
		})
	}
	var t *tenant
	defer func() {
		if t != nil {
			h.gone(t)
		}
	}()
	for {
		var req request
		fd, err := recv(c, &req)
		if fd >= 0 {
			unix.Close(fd) // tenants send no descriptors
		}
		if err != nil {
			return
		}
		if t == nil && req.Op != opHello {
			send(c, reply{ID: req.ID, Error: "say hello first"}, -1)
			continue
		}
		if req.Op == opHello {
			if t != nil || req.Tenant == "" {
				send(c, reply{ID: req.ID, Error: "one hello per connection, with a tenant id"}, -1)
				continue
			}
			t = &tenant{id: req.Tenant, container: req.Container, pid: pid, c: c}
			if err := h.hello(t, req.Listeners); err != nil {
				h.log.Error("tenant refused", "tenant", t.id, "pid", pid, "error", err)
				rep := reply{ID: req.ID, Error: err.Error()}
				if errors.Is(err, errSuperseded) {
					rep.Event = evSuperseded
				}
				send(c, rep, -1)
				t = nil
				return
			}
			t.send(reply{ID: req.ID}, -1)
			continue
		}
		rep, sock := h.handle(t, req)
		rep.ID = req.ID
		fdOut := -1
		if sock != nil {
			fdOut = int(sock.File.Fd())
		}
		if err := t.send(rep, fdOut); err != nil {
			return
		}
	}
}

func (h *Holder) hello(t *tenant, specs []Spec) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tenants[t.id] != nil {
		return fmt.Errorf("tenant %q is already connected", t.id)
	}
	if by, ok := h.superseded[t.container]; ok && t.container != "" {
		return fmt.Errorf("%w: this container was superseded by %s and will not take the traffic back; remove it", errSuperseded, by)
	}
	for _, s := range specs {
		if prev, ok := h.specs[s.Name]; ok {
			if !prev.sameAs(s) {
				return fmt.Errorf("listener %q is %s://%s here; this tenant defines it as %s://%s", s.Name, prev.Network, prev.Address, s.Network, s.Address)
			}
			continue
		}
		if s.Network == "unix" {
			return fmt.Errorf("listener %q: the holder keeps TCP listeners only", s.Name)
		}
		if err := h.local.Add(s.sockets()); err != nil {
			return err
		}
		sb := h.alloc()
		if _, err := h.local.Socket(s.Name, sb); err != nil {
			return err
		}
		if err := h.local.Serve(s.Name, sb); err != nil {
			return err
		}
		h.specs[s.Name], h.standby[s.Name] = s, sb
		h.log.Info("listening", "listener", s.Name, "address", h.local.Addr(s.Name), "for", t.id)
	}
	h.tenants[t.id] = t
	h.log.Info("tenant registered", "tenant", t.id, "pid", t.pid, "listeners", len(specs))
	return nil
}

func (h *Holder) alloc() int {
	h.next++
	return h.next
}

func (h *Holder) handle(t *tenant, req request) (reply, *sockets.Listener) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := key{t.id, req.Listener, req.Gen}
	if req.Op != opLeave && req.Op != opStatus {
		if _, ok := h.specs[req.Listener]; !ok {
			return reply{Error: fmt.Sprintf("no listener %q: define it in hello", req.Listener)}, nil
		}
	}
	switch req.Op {
	case opSocket:
		if n, ok := h.keys[k]; ok {
			l, err := h.local.Socket(req.Listener, n)
			return h.sockReply(l, err)
		}
		if h.serving[req.Listener] == (key{}) {
			// Nobody serves: the tenant takes the standby, with whatever
			// queued in it, and the holder binds the next standby.
			sb := h.standby[req.Listener]
			h.keys[k] = sb
			h.serving[req.Listener] = k
			next := h.alloc()
			if _, err := h.local.Socket(req.Listener, next); err != nil {
				h.log.Error("cannot bind a new standby socket", "listener", req.Listener, "error", err)
			} else {
				h.standby[req.Listener] = next
			}
			h.log.Info("standby socket handed over", "listener", req.Listener, "tenant", t.id, "generation", req.Gen)
			l, err := h.local.Socket(req.Listener, sb)
			return h.sockReply(l, err)
		}
		n := h.alloc()
		h.keys[k] = n
		l, err := h.local.Socket(req.Listener, n)
		return h.sockReply(l, err)
	case opServe:
		n, ok := h.keys[k]
		if !ok {
			return reply{Error: fmt.Sprintf("generation %d has no socket of %q", req.Gen, req.Listener)}, nil
		}
		if err := h.local.Serve(req.Listener, n); err != nil {
			return reply{Error: err.Error()}, nil
		}
		prev := h.serving[req.Listener]
		h.serving[req.Listener] = k
		if prev == (key{}) && n != h.standby[req.Listener] {
			// The standby served (its tenant died or left while this one
			// booted beside it) and may hold connections: it leaves the
			// group now that nothing is steered to it (with
			// tcp_migrate_req the kernel moves its queue to the serving
			// socket), and a fresh standby takes its place.
			h.renewStandby(req.Listener)
		}
		if prev.tenant != "" && prev.tenant != t.id {
			h.log.Info("tenant superseded", "listener", req.Listener, "old", prev.tenant, "new", t.id)
			if old := h.tenants[prev.tenant]; old != nil {
				if old.container != "" && old.container != t.container {
					h.superseded[old.container] = t.id
				}
				go old.send(reply{Event: evSuperseded, By: t.id}, -1)
			}
		}
		return reply{}, nil
	case opRelease:
		n, ok := h.keys[k]
		if !ok {
			return reply{}, nil
		}
		if h.serving[req.Listener] == k {
			h.toStandby(req.Listener)
		}
		h.local.Release(req.Listener, n)
		delete(h.keys, k)
		return reply{}, nil
	case opLeave:
		n := h.leave(t)
		return reply{Addr: fmt.Sprint(n)}, nil
	case opStatus:
		return h.status(t), nil
	}
	return reply{Error: fmt.Sprintf("unknown op %q", req.Op)}, nil
}

func (h *Holder) sockReply(l *sockets.Listener, err error) (reply, *sockets.Listener) {
	if err != nil {
		return reply{Error: err.Error()}, nil
	}
	return reply{Addr: l.Addr}, l
}

// renewStandby replaces a listener's standby socket with a new one. h.mu
// is held.
func (h *Holder) renewStandby(listener string) {
	old := h.standby[listener]
	h.local.Release(listener, old)
	next := h.alloc()
	if _, err := h.local.Socket(listener, next); err != nil {
		h.log.Error("cannot bind a new standby socket", "listener", listener, "error", err)
		return
	}
	h.standby[listener] = next
	h.log.Info("standby socket renewed", "listener", listener)
}

// toStandby steers a listener's new connections to its standby socket.
// h.mu is held.
func (h *Holder) toStandby(listener string) {
	if err := h.local.Serve(listener, h.standby[listener]); err != nil {
		h.log.Error("cannot steer to the standby socket", "listener", listener, "error", err)
		return
	}
	h.serving[listener] = key{}
	h.log.Info("new connections wait in the standby socket", "listener", listener)
}

// leave steers what t serves to standby; it returns how many listeners.
// h.mu is held.
func (h *Holder) leave(t *tenant) int {
	n := 0
	for l, k := range h.serving {
		if k.tenant == t.id {
			h.toStandby(l)
			n++
		}
	}
	return n
}

// gone forgets a tenant whose connection ended (its processes are gone, or
// soon will be: they keep the copies they hold). A socket it was serving
// becomes the listener's standby, steered to as it already is: the
// connections queued in it, and those that keep arriving, wait there for
// the next tenant instead of being reset with it (without tcp_migrate_req
// the kernel cannot move them), so only what its workers had accepted is
// lost. Its other sockets leave.
func (h *Holder) gone(t *tenant) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tenants[t.id] != t {
		return
	}
	delete(h.tenants, t.id)
	for l, k := range h.serving {
		if k.tenant != t.id {
			continue
		}
		n := h.keys[k]
		delete(h.keys, k)
		h.local.Release(l, h.standby[l])
		h.standby[l] = n
		h.serving[l] = key{}
		h.log.Info("new connections wait at the holder in the gone tenant's socket", "listener", l, "tenant", t.id)
	}
	for k, n := range h.keys {
		if k.tenant == t.id {
			h.local.Release(k.listener, n)
			delete(h.keys, k)
		}
	}
	h.log.Info("tenant gone", "tenant", t.id, "pid", t.pid)
}

// status is the holder's view, with the asking tenant's generations named
// as it knows them.
func (h *Holder) status(asker *tenant) reply {
	owner := map[int]key{}
	for k, n := range h.keys {
		owner[n] = k
	}
	st := h.local.Status()
	for i := range st {
		sb := h.standby[st[i].Name]
		for j := range st[i].Sockets {
			s := &st[i].Sockets[j]
			k, ok := owner[s.Generation]
			switch {
			case s.Generation == sb && s.Generation != 0:
				s.Owner, s.Generation = "standby", 0
			case ok && k.tenant == asker.id:
				s.Owner, s.Generation = "", k.gen
			case ok:
				s.Owner, s.Generation = k.tenant, k.gen
			default:
				s.Generation = 0
			}
		}
	}
	hs := &HolderStatus{Pid: os.Getpid(), Socket: h.path}
	for id, t := range h.tenants {
		ts := Tenant{ID: id, Pid: t.pid}
		for l, k := range h.serving {
			if k.tenant == id {
				ts.Serving = append(ts.Serving, l)
			}
		}
		hs.Tenants = append(hs.Tenants, ts)
	}
	return reply{Status: st, Holder: hs}
}
