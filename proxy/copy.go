package proxy

import (
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawCopy moves src's bytes to dst until src's EOF (nil) or an error.
//
// Small messages (requests and responses of keep-alive traffic) go through
// a user-space buffer: read(2) and write(2), one copy each way, and no pipe
// to take and give back. A read that fills the buffer means bulk: the
// bytes that follow go with splice(2) until src has nothing more to read,
// then small messages go through the buffer again. The buffer is taken
// from a pool only once src is readable and is back in it before the
// goroutine waits, so an idle direction holds no buffer and no pipe.
//
// A direction waits only after a read said EAGAIN, even when the read
// before returned less than the buffer: that read may also have consumed
// the peer's FIN queued behind the bytes, and no readiness would follow.
func rawCopy(dst, src syscall.RawConn) error {
	for {
		bulk, err := bufferedCopy(dst, src)
		if err != nil || !bulk {
			return err
		}
		eof, err := spliceCopy(dst, src)
		if err != nil || eof {
			return err
		}
	}
}

// copyBufSize is the most one read takes through the buffer; a read that
// fills it switches to splice.
const copyBufSize = 16 << 10

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// bufferedCopy copies src's bytes to dst through a pooled buffer, waiting
// for src whenever it has nothing to read. It returns bulk when a read
// filled the buffer, and (false, nil) at src's EOF.
func bufferedCopy(dst, src syscall.RawConn) (bulk bool, err error) {
	var serr error
	rerr := src.Read(func(fd uintptr) bool {
		for {
			bp := copyBufs.Get().(*[]byte)
			n, err := readNoEINTR(int(fd), *bp)
			switch {
			case err == unix.EAGAIN:
				copyBufs.Put(bp)
				return false
			case err != nil:
				copyBufs.Put(bp)
				serr = err
				return true
			case n == 0:
				copyBufs.Put(bp)
				return true // EOF
			}
			// Writing here holds src's read lock, and takes only
			// dst's write lock.
			err = writeAll(dst, (*bp)[:n])
			copyBufs.Put(bp)
			if err != nil {
				serr = err
				return true
			}
			if n == len(*bp) {
				bulk = true
				return true
			}
		}
	})
	if rerr != nil {
		return false, rerr
	}
	return bulk, serr
}

func readNoEINTR(fd int, b []byte) (int, error) {
	for {
		n, err := sysRead(fd, b)
		if err != unix.EINTR {
			return n, err
		}
	}
}

// writeAll writes b to dst, waiting for dst to take it.
func writeAll(dst syscall.RawConn, b []byte) error {
	var serr error
	err := dst.Write(func(fd uintptr) bool {
		for len(b) > 0 {
			n, err := sysWrite(int(fd), b)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				return false
			case err != nil:
				serr = err
				return true
			}
			b = b[n:]
		}
		return true
	})
	if err != nil {
		return err
	}
	return serr
}

// The syscalls of the copy loops go through RawSyscall: on non-blocking
// sockets and pipes they never wait, they only take the time the kernel
// needs to move the bytes. A loopback write runs the receiver's TCP stack
// before it returns (often more than 20 µs), and the runtime hands the P
// of a goroutine that stays that long in a Syscall to another thread,
// which costs a thread wake-up and two context switches per message on a
// busy relay.

func sysRead(fd int, b []byte) (int, error) {
	r, _, e := syscall.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func sysWrite(fd int, b []byte) (int, error) {
	r, _, e := syscall.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func sysSplice(in, out int, n int) (int64, error) {
	r, _, e := syscall.RawSyscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
	if e != 0 {
		return 0, e
	}
	return int64(r), nil
}

// closeWrite half-closes a socket (shutdown(SHUT_WR) never waits). An
// error is not reported: a peer that is gone shows in the other
// direction.
func closeWrite(rc syscall.RawConn) {
	rc.Control(func(fd uintptr) {
		syscall.RawSyscall(unix.SYS_SHUTDOWN, fd, syscall.SHUT_WR, 0)
	})
}
