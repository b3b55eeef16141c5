package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The relay's sockets are made with raw syscalls and handed to the
// runtime's poller as *os.File (os.NewFile: fcntl(F_GETFL) and
// epoll_ctl), not through package net, whose accept and dial cost 8 more
// syscalls per connection that a relay does not need: getsockname and
// getpeername for addresses nobody reads, TCP_NODELAY and 4 keep-alive
// options on every accepted socket, SO_ERROR after a connect that a second
// connect answers, and a park of the dialing goroutine until the poller
// reports a handshake that loopback has finished before connect returns.

// endpoint is one of a relayed connection's sockets: an *os.File made
// here, or a *net.TCPConn when the backend is dialed by name.
type endpoint interface {
	syscall.Conn
	Close() error
}

// Go's defaults for the keep-alive probes of accepted TCP connections
// (net.KeepAliveConfig), which the relay's client sockets had when they
// were accepted by package net.
const (
	keepAliveIdle     = 15 // seconds
	keepAliveInterval = 15 // seconds
	keepAliveCount    = 9
)

// listenerFile duplicates ln's socket into an *os.File in the runtime's
// poller, and prepares it for the relay.
func listenerFile(ln net.Listener) (*os.File, error) {
	fl, ok := ln.(interface{ File() (*os.File, error) })
	if !ok {
		return nil, fmt.Errorf("proxy: listener %T has no socket to accept on", ln)
	}
	f, err := fl.File()
	if err != nil {
		return nil, fmt.Errorf("proxy: listener: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("proxy: listener: %w", err)
	}
	prepareListener(rc)
	return f, nil
}

// prepareListener sets, once on the listening socket, the options every
// accepted TCP socket inherits from it (Linux copies them at accept):
// TCP_NODELAY, so that small messages are not held back by Nagle's
// algorithm waiting for an ACK the peer delays, and Go's keep-alive
// probes. A unix socket has neither; errors only cost those options.
func prepareListener(rc syscall.RawConn) {
	rc.Control(func(fd uintptr) {
		s := int(fd)
		if _, err := unix.GetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_NODELAY); err != nil {
			return // not TCP
		}
		unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
		unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, keepAliveIdle)
		unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, keepAliveInterval)
		unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_KEEPCNT, keepAliveCount)
	})
}

// acceptRaw accepts one connection on the listening socket, waiting for
// one in the runtime's poller, and returns it non-blocking and close-on-
// exec, with the client's address (invalid for a unix socket client).
// accept4 is called raw: x/sys/unix's Accept4 asks the socket's protocol
// (getsockopt) on every call to tell L2TP addresses apart.
func acceptRaw(rc syscall.RawConn) (*os.File, netip.AddrPort, error) {
	var fd uintptr
	var rsa unix.RawSockaddrAny
	var serr syscall.Errno
	err := rc.Read(func(lfd uintptr) bool {
		for {
			n := uint32(unsafe.Sizeof(rsa))
			fd, _, serr = syscall.RawSyscall6(unix.SYS_ACCEPT4, lfd, uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&n)),
				unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
			switch serr {
			case unix.EINTR, unix.ECONNABORTED:
				continue // a client that left the queue: the next one
			case unix.EAGAIN:
				return false
			}
			return true
		}
	})
	if err == nil && serr != 0 {
		err = os.NewSyscallError("accept4", serr)
	}
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	return os.NewFile(fd, "client"), addrPortOf(&rsa), nil
}

// addrPortOf is an IP socket address's address and port; invalid for
// other kinds.
func addrPortOf(rsa *unix.RawSockaddrAny) netip.AddrPort {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(p[0])<<8|uint16(p[1]))
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(p[0])<<8|uint16(p[1]))
	}
	return netip.AddrPort{}
}

// addrOf is the net.Addr of a socket's address: TCP, or else unix (a unix
// socket's client has no name).
func addrOf(ap netip.AddrPort) net.Addr {
	if ap.IsValid() {
		return net.TCPAddrFromAddrPort(ap)
	}
	return &net.UnixAddr{Net: "unix"}
}

// localAddr is the address a client connected to (getsockname, raw as
// accept4: only the PROXY protocol header needs it).
func localAddr(s endpoint) net.Addr {
	if c, ok := s.(net.Conn); ok {
		return c.LocalAddr()
	}
	var ap netip.AddrPort
	if rc, err := s.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			var rsa unix.RawSockaddrAny
			n := uint32(unsafe.Sizeof(rsa))
			_, _, e := syscall.RawSyscall(unix.SYS_GETSOCKNAME, fd, uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&n)))
			if e == 0 {
				ap = addrPortOf(&rsa)
			}
		})
	}
	return addrOf(ap)
}

// rawSockaddr is an IP address and port as connect(2) takes it.
type rawSockaddr struct {
	family int
	v4     unix.RawSockaddrInet4
	v6     unix.RawSockaddrInet6
}

func newRawSockaddr(ap netip.AddrPort) *rawSockaddr {
	sa := &rawSockaddr{}
	port := (*[2]byte)(unsafe.Pointer(&sa.v4.Port))
	if a := ap.Addr().Unmap(); a.Is4() {
		sa.family = unix.AF_INET
		sa.v4.Family = unix.AF_INET
		sa.v4.Addr = a.As4()
	} else {
		sa.family = unix.AF_INET6
		sa.v6.Family = unix.AF_INET6
		sa.v6.Addr = a.As16()
		port = (*[2]byte)(unsafe.Pointer(&sa.v6.Port))
	}
	port[0], port[1] = byte(ap.Port()>>8), byte(ap.Port()) // network order
	return sa
}

// connect calls connect(2) on the non-blocking socket fd, raw: it never
// waits, and on loopback the whole handshake runs inside it.
func (sa *rawSockaddr) connect(fd int) error {
	p, n := unsafe.Pointer(&sa.v4), unsafe.Sizeof(sa.v4)
	if sa.family == unix.AF_INET6 {
		p, n = unsafe.Pointer(&sa.v6), unsafe.Sizeof(sa.v6)
	}
	_, _, e := syscall.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(p), n)
	if e != 0 {
		return e
	}
	return nil
}

// connecting says whether a connect(2) result means "not done yet".
func connecting(err error) bool {
	return err == unix.EINPROGRESS || err == unix.EALREADY || err == unix.EINTR
}

// dialRaw connects to a literal IP:port without package net: socket,
// TCP_NODELAY, connect, and a second connect that on Linux reports the
// handshake's outcome (0 once established, the error once refused,
// EALREADY while in flight). A loopback handshake has finished when the
// first connect returns (the kernel runs the SYN-ACK queued on the socket
// as connect releases it), so the second one nearly always settles it;
// otherwise the socket waits in the poller until it is writable, at most
// timeout or until ctx is done. No keep-alive probes: the backend is on
// loopback, where a peer that is gone resets the connection.
func dialRaw(ctx context.Context, ap netip.AddrPort, timeout time.Duration) (*os.File, error) {
	sa := newRawSockaddr(ap)
	fd, _, e := syscall.RawSyscall(unix.SYS_SOCKET, uintptr(sa.family), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if e != 0 {
		return nil, dialError(ap, os.NewSyscallError("socket", e))
	}
	one := int32(1)
	syscall.RawSyscall6(unix.SYS_SETSOCKOPT, fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, uintptr(unsafe.Pointer(&one)), 4, 0)
	err := sa.connect(int(fd))
	if connecting(err) {
		err = sa.connect(int(fd))
	}
	if err == unix.EISCONN {
		err = nil
	}
	if err != nil && !connecting(err) {
		unix.Close(int(fd))
		return nil, dialError(ap, os.NewSyscallError("connect", err))
	}
	f := os.NewFile(fd, "backend")
	if err != nil {
		if err := waitConnected(ctx, f, sa, timeout); err != nil {
			f.Close()
			return nil, dialError(ap, err)
		}
	}
	return f, nil
}

// waitConnected waits until f's connect has settled, and returns its
// outcome.
func waitConnected(ctx context.Context, f *os.File, sa *rawSockaddr, timeout time.Duration) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	f.SetWriteDeadline(time.Now().Add(timeout))
	defer f.SetWriteDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { f.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	var cerr error
	err = rc.Write(func(fd uintptr) bool {
		cerr = sa.connect(int(fd))
		if cerr == unix.EISCONN {
			cerr = nil
		}
		return !connecting(cerr)
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return errors.New("connect: timed out")
		}
		return err
	}
	if cerr != nil {
		return os.NewSyscallError("connect", cerr)
	}
	return nil
}

func dialError(ap netip.AddrPort, err error) error {
	return &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(ap), Err: err}
}
