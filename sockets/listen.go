package sockets

import (
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// MaxUnixPath is the longest path a unix socket can be bound at or
// connected to: sun_path holds 108 bytes, the last of them a NUL.
const MaxUnixPath = len(unix.RawSockaddrUnix{}.Path) - 1

// ListenerOptions describe one socket rotini binds and owns.
type ListenerOptions struct {
	Name    string
	Network string // tcp, tcp4, tcp6 or unix
	Address string // host:port, or a path for unix
	Backlog int
	Mode    os.FileMode // unix sockets only; 0 keeps the umask's
	Owner   string      // unix sockets only: user name or uid
	Group   string      // unix sockets only: group name or gid
	// ReusePort sets SO_REUSEPORT before bind (TCP only), so that several
	// sockets bound to the address form one reuseport group.
	ReusePort bool
}

// Listener is a bound, listening socket that rotini holds for its lifetime.
type Listener struct {
	Name string
	File *os.File // the listening socket; close-on-exec in rotini
	Addr string   // the bound address, with the real port if 0 was asked
}

// Listen binds and listens on o with the given backlog, without accepting.
// It uses raw sockets rather than net.Listen so that the backlog is the one
// asked for and no Go poller owns the descriptor.
func Listen(o ListenerOptions) (*Listener, error) { return listen(o, o.Address) }

// listen is Listen with a unix socket bound at unixPath instead of
// o.Address: a generation's socket waits at a temporary path until it is
// renamed over the configured one.
func listen(o ListenerOptions, unixPath string) (*Listener, error) {
	backlog := o.Backlog
	if backlog <= 0 {
		backlog = 1024
	}
	var fd int
	var err error
	var addr string
	switch o.Network {
	case "unix":
		fd, addr, err = listenUnixAt(o, unixPath)
	case "tcp", "tcp4", "tcp6":
		fd, err = bindTCP(o.Network, o.Address, o.ReusePort)
	default:
		return nil, fmt.Errorf("listener %q: unknown network %q", o.Name, o.Network)
	}
	if err != nil {
		return nil, fmt.Errorf("listener %q (%s://%s): %w", o.Name, o.Network, o.Address, err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("listener %q: listen: %w", o.Name, err)
	}
	if addr == "" {
		addr = sockName(fd)
	}
	return &Listener{Name: o.Name, File: os.NewFile(uintptr(fd), o.Name), Addr: addr}, nil
}

func bindTCP(network, address string, reusePort bool) (int, error) {
	ta, err := net.ResolveTCPAddr(network, address)
	if err != nil {
		return -1, err
	}
	family, sa := unix.AF_INET, unix.Sockaddr(nil)
	if ip4 := ta.IP.To4(); ip4 != nil && network != "tcp6" {
		s := &unix.SockaddrInet4{Port: ta.Port}
		copy(s.Addr[:], ip4)
		sa = s
	} else if ta.IP == nil && network == "tcp4" {
		sa = &unix.SockaddrInet4{Port: ta.Port}
	} else if ta.IP == nil && network == "tcp" {
		family, sa = unix.AF_INET6, &unix.SockaddrInet6{Port: ta.Port} // dual stack
	} else {
		s := &unix.SockaddrInet6{Port: ta.Port}
		copy(s.Addr[:], ta.IP.To16())
		family, sa = unix.AF_INET6, s
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if reusePort {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			unix.Close(fd)
			return -1, err
		}
	}
	if family == unix.AF_INET6 && ta.IP == nil {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		if family == unix.AF_INET6 && ta.IP == nil && network == "tcp" {
			// No IPv6 in this network namespace: fall back to IPv4 any.
			return bindTCP("tcp4", address, reusePort)
		}
		return -1, err
	}
	return fd, nil
}

// listenUnixAt binds a unix socket for o at path, which is o.Address or, for
// a generation that is not serving yet, a temporary path beside it.
func listenUnixAt(o ListenerOptions, path string) (int, string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return -1, "", err
	}
	// A socket file left by a previous run would make bind fail; anything
	// else at that path is not ours to remove.
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return -1, "", fmt.Errorf("%s exists and is not a socket", path)
		}
		_ = os.Remove(path)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, "", err
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return -1, "", err
	}
	if o.Mode != 0 {
		if err := os.Chmod(path, o.Mode); err != nil {
			unix.Close(fd)
			return -1, "", err
		}
	}
	if o.Owner != "" || o.Group != "" {
		uid, gid := -1, -1
		if o.Owner != "" {
			if uid, err = lookupUID(o.Owner); err != nil {
				unix.Close(fd)
				return -1, "", err
			}
		}
		if o.Group != "" {
			if gid, err = lookupGID(o.Group); err != nil {
				unix.Close(fd)
				return -1, "", err
			}
		}
		if err := os.Lchown(path, uid, gid); err != nil {
			unix.Close(fd)
			return -1, "", err
		}
	}
	return fd, path, nil
}

func sockName(fd int) string {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return ""
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(a.Port))
	case *unix.SockaddrInet6:
		return net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(a.Port))
	}
	return ""
}

func lookupUID(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil {
		return n, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return -1, err
	}
	return strconv.Atoi(u.Uid)
}

func lookupGID(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil {
		return n, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return -1, err
	}
	return strconv.Atoi(g.Gid)
}
