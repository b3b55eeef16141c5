package proxy

import (
	"errors"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// maxSplice is the most one splice call asks for; the pipe's free space
// bounds what it moves.
const maxSplice = 1 << 20

type pipe struct{ r, w int }

func (p *pipe) close() {
	unix.Close(p.r)
	unix.Close(p.w)
}

// pipePool keeps a few empty pipes for reuse: creating one is two
// syscalls (pipe2, fcntl), and only directions moving bulk bytes hold
// one, so a small pool serves a busy relay.
type pipePool struct {
	mu    sync.Mutex
	free  []*pipe
	taken atomic.Int64 // pipes handed out by get, ever
	out   atomic.Int64 // pipes handed out and not given back (put or drop)
}

const maxFreePipes = 64

var pipes pipePool

func (pp *pipePool) get() (*pipe, error) {
	pp.taken.Add(1)
	pp.out.Add(1)
	pp.mu.Lock()
	if n := len(pp.free); n > 0 {
		p := pp.free[n-1]
		pp.free = pp.free[:n-1]
		pp.mu.Unlock()
		return p, nil
	}
	pp.mu.Unlock()
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		pp.out.Add(-1)
		return nil, errors.Join(errors.New("pipe2"), err)
	}
	// The default size (64 KiB) is kept: a larger one would count
	// against the user's pipe-user-pages-soft for every pooled pipe.
	return &pipe{r: fds[0], w: fds[1]}, nil
}

// drop closes a pipe that cannot be reused (bytes are left in it).
func (pp *pipePool) drop(p *pipe) {
	pp.out.Add(-1)
	p.close()
}

// put takes back an empty pipe.
func (pp *pipePool) put(p *pipe) {
	pp.out.Add(-1)
	pp.mu.Lock()
	if len(pp.free) < maxFreePipes {
		pp.free = append(pp.free, p)
		p = nil
	}
	pp.mu.Unlock()
	if p != nil {
		p.close()
	}
}
