package proxy

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The relay's sockets are made and used with raw syscalls, outside both
// package net and the runtime's poller: package net's accept and dial cost
// 8 more syscalls per connection that a relay does not need (getsockname
// and getpeername for addresses nobody reads, TCP_NODELAY and 4 keep-alive
// options on every accepted socket, SO_ERROR after a connect that a second
// connect answers), and the poller 4 more (fcntl when a socket enters it,
// epoll_ctl to delete it before every close) plus a read that says EAGAIN
// before each wait.

// Go's defaults for the keep-alive probes of accepted TCP connections
// (net.KeepAliveConfig), which the relay's client sockets had when they
// were accepted by package net.
const (
	keepAliveIdle     = 15 // seconds
	keepAliveInterval = 15 // seconds
	keepAliveCount    = 9
)

// listenerFD duplicates ln's socket for the relay's loops to accept on,
// close-on-exec, and prepares it (prepareListener). The duplicate shares
// the socket's file description, which package net keeps non-blocking.
func listenerFD(ln net.Listener) (int, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("proxy: listener %T has no socket to accept on", ln)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("proxy: listener: %w", err)
	}
	fd := -1
	var serr error
	if err := rc.Control(func(s uintptr) {
		fd, serr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
		if serr == nil {
			prepareListener(fd)
		}
	}); err != nil {
		return -1, fmt.Errorf("proxy: listener: %w", err)
	}
	if serr != nil {
		return -1, fmt.Errorf("proxy: listener: dup: %w", serr)
	}
	return fd, nil
}

// prepareListener sets, once on the listening socket, the options every
// accepted TCP socket inherits from it (Linux copies them at accept):
// TCP_NODELAY, so that small messages are not held back by Nagle's
// algorithm waiting for an ACK the peer delays, and Go's keep-alive
// probes. A unix socket has neither; errors only cost those options.
func prepareListener(s int) {
	if _, err := unix.GetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_NODELAY); err != nil {
		return // not TCP
	}
	unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
	unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, keepAliveIdle)
	unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, keepAliveInterval)
	unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_KEEPCNT, keepAliveCount)
}

// accept4 accepts one connection on the listening socket lfd, non-
// blocking and close-on-exec, with the client's address (invalid for a
// unix socket client). It is called raw: x/sys/unix's Accept4 asks the
// socket's protocol (getsockopt) on every call to tell L2TP addresses
// apart. A client that left the queue (ECONNABORTED) is skipped.
func accept4(lfd int) (int, netip.AddrPort, error) {
	var rsa unix.RawSockaddrAny
	for {
		n := uint32(unsafe.Sizeof(rsa))
		fd, _, e := syscall.RawSyscall6(unix.SYS_ACCEPT4, uintptr(lfd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&n)),
			unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
		switch e {
		case 0:
			return int(fd), addrPortOf(&rsa), nil
		case unix.EINTR, unix.ECONNABORTED:
			continue
		}
		return -1, netip.AddrPort{}, e
	}
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
func localAddr(fd int) net.Addr {
	var rsa unix.RawSockaddrAny
	n := uint32(unsafe.Sizeof(rsa))
	_, _, e := syscall.RawSyscall(unix.SYS_GETSOCKNAME, uintptr(fd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&n)))
	if e != 0 {
		return addrOf(netip.AddrPort{})
	}
	return addrOf(addrPortOf(&rsa))
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

// dialStart starts connecting to a literal IP:port: socket, TCP_NODELAY,
// connect, and a second connect that on Linux reports the handshake's
// outcome (0 once established, the error once refused, EALREADY while in
// flight). A loopback handshake has finished when the first connect
// returns (the kernel runs the SYN-ACK queued on the socket as connect
// releases it), so the second one nearly always settles it; otherwise
// pending is true and the caller waits for the socket to be writable,
// then asks connect again (finishConnect). No keep-alive probes: the
// backend is on loopback, where a peer that is gone resets the connection.
func dialStart(sa *rawSockaddr) (fd int, pending bool, err error) {
	s, _, e := syscall.RawSyscall(unix.SYS_SOCKET, uintptr(sa.family), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if e != 0 {
		return -1, false, os.NewSyscallError("socket", e)
	}
	fd = int(s)
	one := int32(1)
	syscall.RawSyscall6(unix.SYS_SETSOCKOPT, s, unix.IPPROTO_TCP, unix.TCP_NODELAY, uintptr(unsafe.Pointer(&one)), 4, 0)
	err = sa.connect(fd)
	if connecting(err) {
		err = sa.connect(fd)
	}
	switch {
	case err == nil || err == unix.EISCONN:
		return fd, false, nil
	case connecting(err):
		return fd, true, nil
	}
	sysClose(fd)
	return -1, false, os.NewSyscallError("connect", err)
}

// finishConnect asks a connect started by dialStart for its outcome: done
// (nil error) or not yet.
func finishConnect(sa *rawSockaddr, fd int) (done bool, err error) {
	err = sa.connect(fd)
	switch {
	case err == nil || err == unix.EISCONN:
		return true, nil
	case connecting(err):
		return false, nil
	}
	return true, os.NewSyscallError("connect", err)
}

func dialError(ap netip.AddrPort, err error) error {
	return &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(ap), Err: err}
}
