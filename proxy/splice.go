package proxy

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// spliceCopy moves src's bytes to dst with splice(2) through a pipe
// until src has nothing to read (false, nil), src's EOF (true, nil) or an
// error. rawCopy calls it once a read has filled its buffer, so src has
// bytes; the pipe is given back, empty, before spliceCopy returns, so a
// direction that waits holds none.
func spliceCopy(dst, src syscall.RawConn) (eof bool, err error) {
	p, err := pipes.get()
	if err != nil {
		return false, err
	}
	defer func() {
		if p != nil {
			pipes.put(p)
		}
	}()
	for {
		var n int64
		var serr error
		err := src.Read(func(fd uintptr) bool {
			for {
				n, serr = sysSplice(int(fd), p.w, maxSplice)
				if serr != unix.EINTR {
					return true
				}
			}
		})
		if err == nil {
			err = serr
		}
		if err == unix.EAGAIN {
			return false, nil // drained: the caller waits without the pipe
		}
		if err != nil {
			return false, err
		}
		if n == 0 {
			return true, nil
		}
		if err := pump(dst, p, n); err != nil {
			// Bytes may be left in the pipe: it cannot be reused.
			p.close()
			p = nil
			return false, err
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
				m, serr = sysSplice(p.r, int(fd), int(n))
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
	mu    sync.Mutex
	free  []*pipe
	taken atomic.Int64 // pipes handed out by get, ever
}

const maxFreePipes = 64

var pipes pipePool

func (pp *pipePool) get() (*pipe, error) {
	pp.taken.Add(1)
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
