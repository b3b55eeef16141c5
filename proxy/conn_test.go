package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Small request/response messages go through a buffer, without a pipe;
// bytes that fill the buffer go on with splice. pipes.taken counts the
// pipes the relay took, so both paths are seen from outside the copy
// loops.
func TestSmallMessagesBufferedBulkSpliced(t *testing.T) {
	srv := startBackend(t, echo)
	r, addr := startRelay(t, Options{})
	r.SetTarget(1, srv)
	c := dial(t, addr)
	c.roundTrip(t, "warm up") // the connection is relayed
	before := pipes.taken.Load()
	for i := range 200 {
		c.roundTrip(t, fmt.Sprintf("small request %d", i))
	}
	if n := pipes.taken.Load() - before; n != 0 {
		t.Errorf("200 small round trips took %d pipes, want 0 (read/write through a buffer)", n)
	}

	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	go c.Write(big)
	got := make([]byte, len(big))
	c.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := io.ReadFull(c.r, got); err != nil {
		t.Fatalf("reading 1 MiB back: %v", err)
	}
	if !bytes.Equal(got, big) {
		t.Fatalf("1 MiB came back altered")
	}
	if pipes.taken.Load()-before == 0 {
		t.Errorf("1 MiB each way took no pipe: bulk is not spliced")
	}
	c.roundTrip(t, "small again")
}

// Messages of sizes around the buffer's switch between read/write and
// splice, in both directions, arrive whole and in order, from a TCP and
// from a unix stream client.
func TestRelayMixedSizes(t *testing.T) {
	sizes := []int{1, copyBufSize - 1, copyBufSize, copyBufSize + 1, 100, 3 * copyBufSize, 7, 1 << 20, 2, 2*copyBufSize + 5, 1}
	srv := startBackend(t, echo)
	check := func(t *testing.T, c net.Conn) {
		for i, n := range sizes {
			msg := make([]byte, n)
			io.ReadFull(stream(uint64(i), int64(n)), msg)
			werr := make(chan error, 1)
			go func() { _, err := c.Write(msg); werr <- err }()
			got := make([]byte, n)
			c.SetReadDeadline(time.Now().Add(waitFor))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatalf("message %d (%d bytes): %v", i, n, err)
			}
			if err := <-werr; err != nil {
				t.Fatalf("message %d (%d bytes): write: %v", i, n, err)
			}
			if !bytes.Equal(got, msg) {
				t.Fatalf("message %d (%d bytes) came back altered", i, n)
			}
		}
		// EOF is passed on, and the backend's half-close comes back.
		if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(waitFor))
		if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
			t.Fatalf("after the half-close: %d bytes, %v; want EOF", len(rest), err)
		}
	}
	t.Run("tcp client", func(t *testing.T) {
		r, addr := startRelay(t, Options{})
		r.SetTarget(1, srv)
		check(t, dial(t, addr).Conn)
	})
	t.Run("unix client", func(t *testing.T) {
		ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
		if err != nil {
			t.Fatal(err)
		}
		r := serveOn(t, ln, Options{})
		r.SetTarget(1, srv)
		c, err := net.Dial("unix", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		check(t, c)
	})
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a.(*net.TCPConn), b.(*net.TCPConn)
}

// A short read no longer proves a source empty once its peer's FIN has
// been reported: the event is spent, so the EOF queued behind the bytes
// must be read at once, passed on as a half-close, and the bytes relayed,
// rather than wait for an event that will not come. The message and the
// FIN are queued on the client's socket before the relay accepts it (no
// target yet), so the first event for it reports both.
func TestEOFQueuedBehindMessage(t *testing.T) {
	for _, size := range []int{5, copyBufSize - 1, copyBufSize, 3*copyBufSize + 1} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			// The backend answers with what it got, once it has the EOF.
			srv := startBackend(t, func(c net.Conn) {
				b, err := io.ReadAll(c)
				if err == nil {
					c.Write(b)
				}
			})
			r, addr := startRelay(t, Options{})
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			msg := bytes.Repeat([]byte("m"), size)
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
			c.(*net.TCPConn).CloseWrite()
			r.SetTarget(1, srv)
			c.SetReadDeadline(time.Now().Add(waitFor))
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("after %d of %d bytes: %v (the EOF was not passed on)", len(got), size, err)
			}
			if !bytes.Equal(got, msg) {
				t.Fatalf("got %d bytes back, want the %d sent", len(got), size)
			}
		})
	}
}

// TCP urgent data (telnet's Synch, rlogin) in the middle of a message
// does not stall the bytes behind it: a read stops short at the urgent
// mark, so a short read does not prove the socket empty while urgent data
// is queued (EPOLLPRI). The urgent byte itself is dropped, as read(2)
// does for a reader that does not ask for it (package doc).
func TestUrgentDataRelayed(t *testing.T) {
	srv := startBackend(t, echo)
	r, addr := startRelay(t, Options{})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) {
		unix.Write(int(fd), []byte("abc"))
		unix.Sendto(int(fd), []byte("X"), unix.MSG_OOB, nil)
		unix.Write(int(fd), []byte("efg\n"))
	})
	// All of it is queued before the relay accepts: its first event
	// reports the bytes and the urgent mark together.
	eventually(t, "the bytes queued", func() bool {
		info, err := tcpInfo(c.(*net.TCPConn))
		return err == nil && info.Notsent_bytes == 0 && info.Unacked == 0
	})
	r.SetTarget(1, srv)
	c.SetReadDeadline(time.Now().Add(waitFor))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("got %q, %v: the bytes behind the urgent mark were not relayed", line, err)
	}
	if line != "abcefg\n" {
		t.Fatalf("got %q, want %q", line, "abcefg\n")
	}
}

// A unix socket client's read stops short where a message passing fds
// ends, so its short reads do not prove it empty either: the bytes after
// such a message are relayed, not left waiting for an event. (The fds
// themselves are not relayed: there is no such thing on TCP.)
func TestUnixClientPassingFDs(t *testing.T) {
	srv := startBackend(t, echo)
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	r := serveOn(t, ln, Options{})
	c, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	uc := c.(*net.UnixConn)
	if _, _, err := uc.WriteMsgUnix([]byte("abc"), unix.UnixRights(int(os.Stdin.Fd())), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := uc.Write([]byte("def\n")); err != nil {
		t.Fatal(err)
	}
	r.SetTarget(1, srv) // both queued before the relay accepts
	c.SetReadDeadline(time.Now().Add(waitFor))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "abcdef\n" {
		t.Fatalf("got %q, %v; want %q", line, err, "abcdef\n")
	}
}

func tcpInfo(c *net.TCPConn) (*unix.TCPInfo, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var info *unix.TCPInfo
	var serr error
	if err := rc.Control(func(fd uintptr) {
		info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil {
		return nil, err
	}
	return info, serr
}
