package proxy

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The relay's syscalls on sockets and pipes go through RawSyscall: every
// fd is non-blocking, so they never wait, they only take the time the
// kernel needs to move the bytes. A loopback write runs the receiver's TCP
// stack before it returns (often more than 20 µs), and the runtime hands
// the P of a goroutine that stays that long in a Syscall to another
// thread, which would cost a thread wake-up and two context switches per
// message on a busy relay.

// rawNoEINTR makes a raw syscall again while it is interrupted.
func rawNoEINTR(trap, a1, a2, a3, a4, a5, a6 uintptr) (int, error) {
	for {
		r, _, e := syscall.RawSyscall6(trap, a1, a2, a3, a4, a5, a6)
		switch e {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		}
		return 0, e
	}
}

func sysRead(fd int, b []byte) (int, error) {
	return rawNoEINTR(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), 0, 0, 0)
}

func sysWrite(fd int, b []byte) (int, error) {
	return rawNoEINTR(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), 0, 0, 0)
}

func sysSplice(in, out int, n int) (int, error) {
	return rawNoEINTR(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
}

// sysShutdown half- or fully closes a socket; shutdown(2) never waits. An
// error is not reported: a peer that is gone shows in the other
// direction.
func sysShutdown(fd, how int) {
	syscall.RawSyscall(unix.SYS_SHUTDOWN, uintptr(fd), uintptr(how), 0)
}

func sysClose(fd int) {
	syscall.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
}

// epollCtl is epoll_ctl(2), raw: it never waits.
func epollCtl(epfd, op, fd int, events uint32, id int32) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(fd), Pad: id}
	_, _, e := syscall.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(&ev)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// epollWait is epoll_wait(2) with a timeout of 0, raw: it never waits
// (the loop waits in the runtime's poller instead).
func epollWait(epfd int, events []unix.EpollEvent) (int, error) {
	return rawNoEINTR(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(unsafe.SliceData(events))), uintptr(len(events)), 0, 0, 0)
}
