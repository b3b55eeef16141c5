package proxy

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
)

// Ports hands out the loopback ports generations listen on: from the
// range [Min, Max] when Max is set, else ephemeral ones the kernel picks.
// A port is handed out only if nothing listens on it and no generation
// holds it (until Release), so two generations of one app, which run
// side by side during a rotation, never get the same port.
//
// A port is checked by binding it on 127.0.0.1 and closing it again, so
// something else may take it before the app binds; the app then fails to
// listen and its generation is refused. A range outside the kernel's
// ephemeral range (net.ipv4.ip_local_port_range) avoids losing ports to
// outgoing connections.
type Ports struct {
	Min, Max int

	mu   sync.Mutex
	next int // where the next search in the range starts
	held map[int]bool
}

// ErrNoPort is returned by Take when the range has no n free ports.
var ErrNoPort = errors.New("proxy: no free port")

// Take returns n ports, each free now and held until Release.
func (p *Ports) Take(n int) ([]int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held == nil {
		p.held = map[int]bool{}
	}
	var got []int
	fail := func(err error) ([]int, error) {
		for _, port := range got {
			delete(p.held, port)
		}
		return nil, err
	}
	for range n {
		port, err := p.one()
		if err != nil {
			return fail(err)
		}
		p.held[port] = true
		got = append(got, port)
	}
	return got, nil
}

func (p *Ports) one() (int, error) {
	if p.Max == 0 {
		// The kernel does not hand out a port that is bound, but one
		// that was bound and closed it may: try a few times.
		for range 16 {
			port, err := bindFree(0)
			if err != nil {
				return 0, err
			}
			if !p.held[port] {
				return port, nil
			}
		}
		return 0, ErrNoPort
	}
	size := p.Max - p.Min + 1
	for i := range size {
		port := p.Min + (p.next+i)%size
		if p.held[port] {
			continue
		}
		if _, err := bindFree(port); err == nil {
			// Round robin: a port just given up is the last to be
			// reused, which leaves its old listener time to go.
			p.next = (p.next + i + 1) % size
			return port, nil
		}
	}
	return 0, fmt.Errorf("%w in %d-%d", ErrNoPort, p.Min, p.Max)
}

// bindFree binds 127.0.0.1:port and closes it, returning the port bound.
func bindFree(port int) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Release gives ports back once the generation holding them has stopped.
func (p *Ports) Release(ports []int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, port := range ports {
		delete(p.held, port)
	}
}
