package proxy

import (
	"errors"
	"io"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// spliceCopy moves src's bytes to dst with splice(2) until src's EOF
// (nil) or an error. Unlike the standard library's splice, it holds a
// pipe only while bytes are in flight: when src has nothing to read the
// pipe goes back to the pool before the goroutine parks, so an idle
// connection costs its two sockets and no pipe.
func spliceCopy(dst, src syscall.RawConn) error {
	var p *pipe
	defer func() {
		if p != nil {
			pipes.put(p)
		}
	}()
	for {
		var n int64
		var serr error
		err := src.Read(func(fd uintptr) bool {
			if p == nil {
				if p, serr = pipes.get(); serr != nil {
					return true
				}
			}
			for {
				n, serr = unix.Splice(int(fd), nil, p.w, nil, maxSplice, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
				if serr != unix.EINTR {
					break
				}
			}
			if serr == unix.EAGAIN {
				// Nothing to read: give the empty pipe back, then wait.
				pipes.put(p)
				p = nil
				return false
			}
			return true
		})
		if err == nil {
			err = serr
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return nil // EOF
		}
		if err := pump(dst, p, n); err != nil {
			// Bytes may be left in the pipe: it cannot be reused.
			p.close()
			p = nil
			return err
		}
	}
}

// pump moves n bytes from p to dst, waiting for dst to take them.
func pump(dst syscall.RawConn, p *pipe, n int64) error {
	for n > 0 {
		var m int64
		var serr error
		err := dst.Write(func(fd uintptr) bool {
			for {
				m, serr = unix.Splice(p.r, nil, int(fd), nil, int(n), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
				if serr != unix.EINTR {
					break
				}
			}
			return serr != unix.EAGAIN
		})
		if err == nil {
			err = serr
		}
		if err != nil {
			return err
		}
		if m == 0 {
			return io.ErrUnexpectedEOF // a pipe with bytes in it cannot be empty
		}
		n -= m
	}
	return nil
}

// maxSplice is the most one splice call asks for; the pipe's free space
// bounds what it moves.
const maxSplice = 1 << 20

type pipe struct{ r, w int }

func (p *pipe) close() {
	unix.Close(p.r)
	unix.Close(p.w)
}

// pipePool keeps a few empty pipes for reuse: creating one is two
// syscalls (pipe2, fcntl), and only connections moving bytes hold one, so
// a small pool serves a busy relay.
type pipePool struct {
	mu   sync.Mutex
	free []*pipe
}

const maxFreePipes = 64

var pipes pipePool

func (pp *pipePool) get() (*pipe, error) {
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
		return nil, errors.Join(errors.New("pipe2"), err)
	}
	// The default size (64 KiB) is kept: a larger one would count
	// against the user's pipe-user-pages-soft for every pooled pipe.
	return &pipe{r: fds[0], w: fds[1]}, nil
}

// put takes back an empty pipe.
func (pp *pipePool) put(p *pipe) {
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
