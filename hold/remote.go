package hold

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/sockets"
)

// callTimeout bounds a request to the holder; leaving, on the way out of a
// stop, is bounded tighter.
const (
	callTimeout  = 10 * time.Second
	leaveTimeout = 2 * time.Second
)

// Remote is the sockets.Authority of a rotini whose listeners a holder
// keeps. Socket, Serve and Release are requests to the holder; Queued reads
// the socket rotini received, which is the holder's socket itself.
type Remote struct {
	log    hclog.Logger
	c      *net.UnixConn
	tenant string
	specs  map[string]Spec
	order  []string

	wmu sync.Mutex // one request on the wire at a time

	mu      sync.Mutex
	nextID  uint64
	waiting map[uint64]chan result
	socks   map[sockKey]*sockets.Listener
	err     error // the connection ended
	closing bool

	path, container string
	superseded      func(by string)
	refusals        int // hellos a returning holder refused

	holder *HolderStatus
}

type sockKey struct {
	listener string
	gen      int
}

type result struct {
	r  reply
	fd int
}

// Dial registers rotini with the holder at path as tenant id, defining its
// listeners (the holder binds those it does not have yet). superseded is
// called, from another goroutine, when another tenant takes over what this
// one serves.
func Dial(log hclog.Logger, path, id, container string, specs []Spec, superseded func(by string)) (*Remote, error) {
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		return nil, fmt.Errorf("holder at %s: %w (is `rotini hold` running, and its volume mounted here?)", path, err)
	}
	r := &Remote{
		log: log, c: c, tenant: id, specs: map[string]Spec{},
		waiting: map[uint64]chan result{}, socks: map[sockKey]*sockets.Listener{},
		path: path, container: container, superseded: superseded,
	}
	for _, s := range specs {
		r.specs[s.Name] = s
		r.order = append(r.order, s.Name)
	}
	go r.read(c)
	if rep, _, err := r.call(request{Op: opHello, Tenant: id, Container: container, Listeners: specs}, callTimeout); err != nil {
		c.Close()
		if rep.Event == evSuperseded {
			return nil, fmt.Errorf("holder at %s: %w: %s", path, ErrSuperseded, rep.Error)
		}
		return nil, fmt.Errorf("holder at %s: %w", path, err)
	}
	log.Info("listeners kept by the holder", "holder", path, "tenant", id)
	return r, nil
}

func (r *Remote) read(c *net.UnixConn) {
	for {
		var rep reply
		fd, err := recv(c, &rep)
		if err != nil {
			r.mu.Lock()
			r.err = fmt.Errorf("connection to the holder lost: %w", err)
			for id, w := range r.waiting {
				w <- result{reply{Error: r.err.Error()}, -1}
				delete(r.waiting, id)
			}
			closing := r.closing
			r.mu.Unlock()
			if closing {
				return
			}
			go r.reconnect()
			r.log.Error("connection to the holder lost: the sockets this rotini has keep serving, but it cannot start a generation on a new one", "error", err)
			return
		}
		if rep.ID == 0 {
			if fd >= 0 {
				unix.Close(fd)
			}
			if rep.Event == evSuperseded && r.superseded != nil {
				r.superseded(rep.By)
			}
			continue
		}
		r.mu.Lock()
		w := r.waiting[rep.ID]
		delete(r.waiting, rep.ID)
		r.mu.Unlock()
		if w == nil {
			if fd >= 0 {
				unix.Close(fd)
			}
			continue
		}
		w <- result{rep, fd}
	}
}

func (r *Remote) call(req request, timeout time.Duration) (reply, int, error) {
	r.mu.Lock()
	if r.err != nil {
		r.mu.Unlock()
		return reply{}, -1, r.err
	}
	r.nextID++
	req.ID = r.nextID
	w := make(chan result, 1)
	r.waiting[req.ID] = w
	r.mu.Unlock()
	r.wmu.Lock()
	r.mu.Lock()
	c := r.c
	r.mu.Unlock()
	err := send(c, req, -1)
	r.wmu.Unlock()
	if err != nil {
		r.mu.Lock()
		delete(r.waiting, req.ID)
		r.mu.Unlock()
		return reply{}, -1, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case res := <-w:
		if res.r.Error != "" {
			if res.fd >= 0 {
				unix.Close(res.fd)
			}
			return res.r, -1, errors.New(res.r.Error)
		}
		return res.r, res.fd, nil
	case <-t.C:
		r.mu.Lock()
		delete(r.waiting, req.ID)
		r.mu.Unlock()
		return reply{}, -1, fmt.Errorf("the holder did not answer %s within %s", req.Op, timeout)
	}
}

// Socket implements sockets.Authority.
func (r *Remote) Socket(name string, gen int) (*sockets.Listener, error) {
	k := sockKey{name, gen}
	r.mu.Lock()
	l := r.socks[k]
	r.mu.Unlock()
	if l != nil {
		return l, nil
	}
	rep, fd, err := r.call(request{Op: opSocket, Listener: name, Gen: gen}, callTimeout)
	if err != nil {
		return nil, err
	}
	if fd < 0 {
		return nil, errors.New("the holder sent no socket")
	}
	l = &sockets.Listener{Name: name, File: os.NewFile(uintptr(fd), name), Addr: rep.Addr}
	r.mu.Lock()
	r.socks[k] = l
	r.mu.Unlock()
	return l, nil
}

// Serve implements sockets.Authority.
func (r *Remote) Serve(name string, gen int) error {
	_, _, err := r.call(request{Op: opServe, Listener: name, Gen: gen}, callTimeout)
	return err
}

// Queued implements sockets.Authority.
func (r *Remote) Queued(name string, gen int) int {
	r.mu.Lock()
	l := r.socks[sockKey{name, gen}]
	r.mu.Unlock()
	if l == nil {
		return -1
	}
	return sockets.QueueLen(l)
}

// Grace implements sockets.Authority.
func (r *Remote) Grace(name string) time.Duration {
	if g := r.specs[name].GraceMS; g > 0 {
		return time.Duration(g) * time.Millisecond
	}
	return sockets.DefaultGrace
}

// Release implements sockets.Authority.
func (r *Remote) Release(name string, gen int) {
	k := sockKey{name, gen}
	r.mu.Lock()
	l := r.socks[k]
	delete(r.socks, k)
	r.mu.Unlock()
	if l != nil {
		l.File.Close()
	}
	if _, _, err := r.call(request{Op: opRelease, Listener: name, Gen: gen}, callTimeout); err != nil {
		r.log.Warn("release a socket at the holder", "listener", name, "generation", gen, "error", err)
	}
}

// Leave implements sockets.Authority: the holder steers what this rotini
// serves to its standby sockets.
func (r *Remote) Leave() bool {
	rep, _, err := r.call(request{Op: opLeave}, leaveTimeout)
	if err != nil {
		r.log.Warn("cannot hand the listeners back to the holder; stopping anyway", "error", err)
		return false
	}
	r.log.Info("new connections wait at the holder for the next container", "listeners", rep.Addr)
	return true
}

// Status implements sockets.Authority.
func (r *Remote) Status() []sockets.ListenerStatus {
	rep, _, err := r.call(request{Op: opStatus}, 2*time.Second)
	if err != nil {
		out := make([]sockets.ListenerStatus, 0, len(r.order))
		for _, n := range r.order {
			out = append(out, sockets.ListenerStatus{Name: n, Address: r.specs[n].Address, Mode: sockets.Steered, Note: "holder unreachable: " + err.Error()})
		}
		return out
	}
	r.mu.Lock()
	r.holder = rep.Holder
	r.mu.Unlock()
	var out []sockets.ListenerStatus
	for _, l := range rep.Status {
		if _, mine := r.specs[l.Name]; mine {
			l.Note = "kept by the holder"
			out = append(out, l)
		}
	}
	return out
}

// Holder is the holder's view as of the last Status.
func (r *Remote) Holder() *HolderStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.holder
}

// Close implements sockets.Authority.
func (r *Remote) Close() {
	r.mu.Lock()
	r.closing = true
	for k, l := range r.socks {
		l.File.Close()
		delete(r.socks, k)
	}
	c := r.c
	r.mu.Unlock()
	c.Close()
}

// reconnect registers again with a holder that returns (a new `rotini
// hold` at the same path). The sockets this rotini holds keep serving
// meanwhile; its next generations get sockets from the new holder. Under
// Docker a recreated holder container has a new network namespace, which
// only those new sockets are in: a reload after the holder returns makes
// the app reachable on the holder's published ports again.
func (r *Remote) reconnect() {
	for {
		time.Sleep(time.Second)
		r.mu.Lock()
		if r.closing {
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: r.path, Net: "unixpacket"})
		if err != nil {
			continue
		}
		r.mu.Lock()
		r.c, r.err = c, nil
		r.mu.Unlock()
		go r.read(c)
		specs := make([]Spec, 0, len(r.order))
		for _, n := range r.order {
			specs = append(specs, r.specs[n])
		}
		if _, _, err := r.call(request{Op: opHello, Tenant: r.tenant, Container: r.container, Listeners: specs}, callTimeout); err != nil {
			r.mu.Lock()
			r.refusals++
			n := r.refusals
			r.mu.Unlock()
			if n == 1 || n%60 == 0 {
				r.log.Warn("the holder is back but refuses this rotini", "error", err)
			}
			c.Close() // the reader sees it and tries again
			return
		}
		r.log.Info("registered again with the holder; the next generation takes its sockets from it", "holder", r.path)
		return
	}
}
