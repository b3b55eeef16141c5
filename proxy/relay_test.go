package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/procfs"
)

// waitFor is how long a test waits for something that must happen; it is
// generous because the machine is shared and the tests run under -race.
const waitFor = 30 * time.Second

// startRelay runs a Relay on a loopback port; it is closed at the end of
// the test, and Serve must then return ErrClosed.
func startRelay(t testing.TB, o Options) (*Relay, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, ln, o), ln.Addr().String()
}

func serveOn(t testing.TB, ln net.Listener, o Options) *Relay {
	r := New(ln, o)
	errc := make(chan error, 1)
	go func() { errc <- r.Serve() }()
	t.Cleanup(func() {
		r.Close()
		if err := <-errc; err != ErrClosed {
			t.Errorf("Serve returned %v, want ErrClosed", err)
		}
	})
	return r
}

// startBackend serves each connection with handle, which may leave it
// open: the connection is closed when handle returns or at the end of the
// test.
func startBackend(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				handle(c)
				c.Close()
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// bannerEcho says its name on a line, then echoes until EOF, then
// half-closes.
func bannerEcho(name string) func(net.Conn) {
	return func(c net.Conn) {
		fmt.Fprintf(c, "%s\n", name)
		io.Copy(c, c)
		c.(*net.TCPConn).CloseWrite()
	}
}

func echo(c net.Conn) {
	io.Copy(c, c)
	c.(*net.TCPConn).CloseWrite()
}

type client struct {
	net.Conn
	r *bufio.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{c, bufio.NewReader(c)}
}

func (c *client) line(t testing.TB) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitFor))
	s, err := c.r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading a line: %q, %v", s, err)
	}
	return strings.TrimSuffix(s, "\n")
}

// roundTrip sends a line and expects it back.
func (c *client) roundTrip(t testing.TB, s string) {
	t.Helper()
	fmt.Fprintf(c, "%s\n", s)
	if got := c.line(t); got != s {
		t.Fatalf("echo: got %q, want %q", got, s)
	}
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

const bigSize = 100 << 20

// stream is a reproducible pseudo-random byte stream.
func stream(seed uint64, n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{byte(seed)}), n)
}

// The backend reads the client's 100 MB to its EOF while sending its own
// 100 MB, then sends the hash of what it read and half-closes. The client
// sends, half-closes, and must read the backend's bytes, then the hash of
// its own, then EOF: each byte relayed once and in order, and each EOF
// passed on as a half-close without closing the other direction.
func TestRelayLargeHalfClose(t *testing.T) {
	backend := func(c net.Conn) {
		sent := make(chan error, 1)
		go func() {
			_, err := io.Copy(c, stream(2, bigSize))
			sent <- err
		}()
		h := sha256.New()
		if _, err := io.Copy(h, c); err != nil {
			t.Errorf("backend read: %v", err)
		}
		if err := <-sent; err != nil {
			t.Errorf("backend write: %v", err)
		}
		c.Write(h.Sum(nil))
		c.(*net.TCPConn).CloseWrite()
	}
	check := func(t *testing.T, c net.Conn) {
		want := sha256.New()
		sent := make(chan error, 1)
		go func() {
			_, err := io.Copy(c, io.TeeReader(stream(1, bigSize), want))
			if err == nil {
				err = c.(interface{ CloseWrite() error }).CloseWrite()
			}
			sent <- err
		}()
		c.SetReadDeadline(time.Now().Add(5 * waitFor))
		got := sha256.New()
		if n, err := io.CopyN(got, c, bigSize); err != nil {
			t.Fatalf("after %d bytes from the backend: %v", n, err)
		}
		if err := <-sent; err != nil {
			t.Fatalf("client write: %v", err)
		}
		exp := sha256.New()
		io.Copy(exp, stream(2, bigSize))
		if !bytes.Equal(got.Sum(nil), exp.Sum(nil)) {
			t.Errorf("the backend's 100 MB arrived altered")
		}
		tail, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("reading the hash and EOF: %v", err)
		}
		if !bytes.Equal(tail, want.Sum(nil)) {
			t.Errorf("the backend read other bytes than the client sent: hash %x, want %x", tail, want.Sum(nil))
		}
	}
	baddr := startBackend(t, backend)

	t.Run("tcp client", func(t *testing.T) {
		r, addr := startRelay(t, Options{})
		r.SetTarget(1, baddr)
		check(t, dial(t, addr).Conn)
	})
	t.Run("unix client", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "s")
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		r := serveOn(t, ln, Options{})
		r.SetTarget(1, baddr)
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		check(t, c)
	})
}

// After a switch, new connections go to the new target and the old
// connection keeps talking to the old one; the old generation is drained
// when its last connection closes, not before.
func TestSwitchTarget(t *testing.T) {
	a := startBackend(t, bannerEcho("A"))
	b := startBackend(t, bannerEcho("B"))
	r, addr := startRelay(t, Options{})
	r.SetTarget(1, a)
	old := dial(t, addr)
	if got := old.line(t); got != "A" {
		t.Fatalf("first connection went to %q, want A", got)
	}
	r.SetTarget(2, b)
	nc := dial(t, addr)
	if got := nc.line(t); got != "B" {
		t.Fatalf("connection after the switch went to %q, want B", got)
	}
	old.roundTrip(t, "still on A")
	nc.roundTrip(t, "on B")
	if a, b := r.Active(1), r.Active(2); a != 1 || b != 1 {
		t.Errorf("Active(1), Active(2) = %d, %d, want 1, 1", a, b)
	}
	select {
	case <-r.Drained(1):
		t.Fatal("generation 1 drained while a connection to it is open")
	default:
	}
	old.Close()
	select {
	case <-r.Drained(1):
	case <-time.After(waitFor):
		t.Fatal("generation 1 not drained after its last connection closed")
	}
	if n := r.Active(1); n != 0 {
		t.Errorf("Active(1) = %d after drain", n)
	}
	select {
	case <-r.Drained(2):
		t.Fatal("the target is drained")
	default:
	}
	nc.roundTrip(t, "B goes on")
}

// Nothing is accepted before the first target: the client waits in the
// backlog and is served once there is one.
func TestNoTargetYet(t *testing.T) {
	a := startBackend(t, bannerEcho("A"))
	r, addr := startRelay(t, Options{})
	c := dial(t, addr) // the kernel completes the handshake
	r.SetTarget(1, a)
	if got := c.line(t); got != "A" {
		t.Fatalf("got %q, want A", got)
	}
}

// With MaxConnections open, the next client is not refused: it waits and
// is served when one of them closes.
func TestMaxConnections(t *testing.T) {
	a := startBackend(t, bannerEcho("A"))
	r, addr := startRelay(t, Options{MaxConnections: 2})
	r.SetTarget(1, a)
	c1, c2 := dial(t, addr), dial(t, addr)
	c1.line(t)
	c2.line(t)
	c3 := dial(t, addr) // connects: the kernel queues it
	got := make(chan string, 1)
	go func() {
		c3.SetReadDeadline(time.Now().Add(waitFor))
		s, _ := c3.r.ReadString('\n')
		got <- s
	}()
	select {
	case s := <-got:
		t.Fatalf("third connection served (%q) while two were open with max_connections = 2", s)
	case <-time.After(300 * time.Millisecond):
	}
	if n := r.Active(1); n != 2 {
		t.Errorf("Active(1) = %d, want 2", n)
	}
	c1.Close()
	if s := <-got; s != "A\n" {
		t.Fatalf("third connection after one closed: %q, want the banner", s)
	}
	c2.roundTrip(t, "still served")
}

// A connection with nothing going either way is closed after IdleTimeout;
// one with bytes going one way only is not.
func TestIdleTimeout(t *testing.T) {
	const idle = 2 * time.Second
	ticker := func(c net.Conn) { // sends a byte every 20 ms for 3 idle timeouts
		for range 3 * idle / (20 * time.Millisecond) {
			if _, err := c.Write([]byte{'.'}); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		c.Write([]byte("\n"))
		io.Copy(io.Discard, c)
	}
	sink := func(c net.Conn) { // reads until "\n", then echoes
		br := bufio.NewReader(c)
		br.ReadString('\n')
		fmt.Fprintf(c, "got it\n")
		io.Copy(c, br)
	}
	t.Run("silent", func(t *testing.T) {
		t.Parallel()
		r, addr := startRelay(t, Options{IdleTimeout: idle})
		r.SetTarget(1, startBackend(t, echo))
		c := dial(t, addr)
		c.roundTrip(t, "hi")
		c.SetReadDeadline(time.Now().Add(waitFor))
		if b, err := c.r.ReadByte(); err != io.EOF {
			t.Fatalf("idle connection: read %q, %v; want EOF", b, err)
		}
		eventually(t, "Active(1) == 0", func() bool { return r.Active(1) == 0 })
	})
	t.Run("backend talks", func(t *testing.T) {
		t.Parallel()
		r, addr := startRelay(t, Options{IdleTimeout: idle})
		r.SetTarget(1, startBackend(t, ticker))
		c := dial(t, addr)
		s := c.line(t)
		if want := strings.Repeat(".", int(3*idle/(20*time.Millisecond))); s != want {
			t.Fatalf("got %d bytes, want %d", len(s), len(want))
		}
	})
	t.Run("client talks", func(t *testing.T) {
		t.Parallel()
		r, addr := startRelay(t, Options{IdleTimeout: idle})
		r.SetTarget(1, startBackend(t, sink))
		c := dial(t, addr)
		for range 3 * idle / (20 * time.Millisecond) {
			if _, err := c.Write([]byte{'.'}); err != nil {
				t.Fatalf("closed while the client was sending: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		c.Write([]byte("\n"))
		if s := c.line(t); s != "got it" {
			t.Fatalf("got %q", s)
		}
	})
}

// A failed dial closes the client; when the target changed during the
// dial, the new target is tried once.
func TestDialFailure(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close() // nothing listens there any more: connection refused

	t.Run("closes the client", func(t *testing.T) {
		r, addr := startRelay(t, Options{})
		r.SetTarget(1, deadAddr)
		c := dial(t, addr)
		c.SetReadDeadline(time.Now().Add(waitFor))
		if _, err := c.r.ReadByte(); err == nil || errors.Is(err, net.ErrClosed) || isTimeout(err) {
			t.Fatalf("read %v, want the connection closed by the relay", err)
		}
		eventually(t, "Active(1) == 0", func() bool { return r.Active(1) == 0 })
	})
	t.Run("retries the new target", func(t *testing.T) {
		b := startBackend(t, bannerEcho("B"))
		r, addr := startRelay(t, Options{})
		r.SetTarget(1, deadAddr)
		hook := func(a string) {
			if a == deadAddr {
				r.SetTarget(2, b)
			}
		}
		testHookDial.Store(&hook)
		defer testHookDial.Store(nil)
		c := dial(t, addr)
		if got := c.line(t); got != "B" {
			t.Fatalf("got %q, want B", got)
		}
		select {
		case <-r.Drained(1):
		case <-time.After(waitFor):
			t.Error("generation 1 still counts the moved connection")
		}
		if n := r.Active(2); n != 1 {
			t.Errorf("Active(2) = %d, want 1", n)
		}
	})
}

// silentBackend is a loopback address whose listener never accepts and
// whose queue is full, so that the kernel drops the SYNs of further
// connects: they stay in flight, as to a host that does not answer.
func silentBackend(t *testing.T) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port)
	// A backlog of 0 queues one connection; the next connect then hangs.
	for {
		d := net.Dialer{Timeout: 200 * time.Millisecond}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			if !isTimeout(err) {
				t.Fatal(err)
			}
			return addr
		}
		t.Cleanup(func() { c.Close() })
	}
}

// A backend that does not answer is given up after DialTimeout: the
// client's connection goes to a sibling that answers, or is closed when
// there is none. The connect waits in the loop, which serves other
// connections meanwhile.
func TestDialTimeout(t *testing.T) {
	silent := silentBackend(t)
	t.Run("sibling", func(t *testing.T) {
		b := startBackend(t, bannerEcho("B"))
		r, addr := startRelay(t, Options{DialTimeout: time.Second})
		r.SetTarget(1, silent, b)
		first := dial(t, addr) // tries silent first
		eventually(t, "the first connection relayed", func() bool { return r.Active(1) == 1 })
		// While its connect waits, the next connection (b first) is
		// served.
		second := dial(t, addr)
		if got := second.line(t); got != "B" {
			t.Fatalf("second connection: got %q, want B", got)
		}
		if got := first.line(t); got != "B" {
			t.Fatalf("first connection: got %q, want B from the sibling", got)
		}
	})
	t.Run("none answers", func(t *testing.T) {
		r, addr := startRelay(t, Options{DialTimeout: 500 * time.Millisecond})
		r.SetTarget(1, silent)
		c := dial(t, addr)
		c.SetReadDeadline(time.Now().Add(waitFor))
		if _, err := c.r.ReadByte(); err == nil || isTimeout(err) {
			t.Fatalf("read %v, want the connection closed after the dial timed out", err)
		}
		eventually(t, "Active(1) == 0", func() bool { return r.Active(1) == 0 })
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// 500 clients that connect and send nothing hold no goroutine in the
// relay and do not keep others from being served; when they leave,
// everything the relay started is gone.
func TestSlowloris(t *testing.T) {
	const slow = 500
	baseline := runtime.NumGoroutine()
	// In a subtest, so that the relay and the backend are closed by its
	// cleanups before the count is checked.
	t.Run("load", func(t *testing.T) {
		// An echo without splice, whose idle connections hold no pipe, so
		// that the fds counted below are the relay's and the sockets'.
		srv := startBackend(t, func(c net.Conn) {
			io.CopyBuffer(struct{ io.Writer }{c}, struct{ io.Reader }{c}, make([]byte, 512))
		})
		r, addr := startRelay(t, Options{})
		r.SetTarget(1, srv)
		before := runtime.NumGoroutine()
		fdsBefore := openFDs(t)
		var idle []net.Conn
		for range slow {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			idle = append(idle, c)
		}
		eventually(t, fmt.Sprintf("%d relayed connections", slow), func() bool { return r.Active(1) == slow })
		for i := range 50 {
			c := dial(t, addr)
			c.roundTrip(t, fmt.Sprintf("request %d", i))
			c.Close()
		}
		// Relay: none per connection (its loops are running already);
		// backend: 1 per connection.
		if g, max := runtime.NumGoroutine()-before, slow+10; g > max {
			t.Errorf("%d goroutines for %d idle connections, want at most %d", g, slow, max)
		}
		// Relay: 2 per connection, idle (package doc); the test's client
		// and the backend's end: 1 each. Slack: the relay's pool of empty
		// pipes (64 at most, 2 fds each).
		if n, max := openFDs(t)-fdsBefore, 4*slow+2*maxFreePipes+10; n > max {
			t.Errorf("%d more open fds for %d idle connections, want at most %d", n, slow, max)
		}
		for _, c := range idle {
			c.Close()
		}
		eventually(t, "Active(1) == 0", func() bool { return r.Active(1) == 0 })
	})
	eventually(t, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= baseline })
}

// Clients that send a lot to a backend that does not read, and a
// backend that sends a lot to clients that do not read: each stalled
// direction stops reading its source once its destination is full, and
// holds at most one buffer or one pipe meanwhile, however much its
// source has to send. The kernel's socket buffers, not rotini's memory,
// hold the rest.
func TestStalledReaders(t *testing.T) {
	const n = 20
	chunk := make([]byte, 1<<20)
	// push writes chunks to c until a write stalls for a second.
	push := func(c net.Conn) {
		for {
			c.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}
	stuck := make(chan struct{})
	// Half the connections: the backend reads nothing. The other half:
	// the backend sends to a client that reads nothing.
	var mu sync.Mutex
	k := 0
	pushed := make(chan struct{}, n)
	srv := startBackend(t, func(c net.Conn) {
		mu.Lock()
		k++
		talk := k%2 == 0
		mu.Unlock()
		if talk {
			push(c)
		}
		pushed <- struct{}{}
		<-stuck
	})
	t.Cleanup(func() { close(stuck) }) // before the backend's cleanup waits
	r, addr := startRelay(t, Options{})
	r.SetTarget(1, srv)
	held0, pipes0 := heldBufs.Load(), pipes.out.Load()
	var wg sync.WaitGroup
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			push(c)
		}()
	}
	wg.Wait()
	for range n {
		<-pushed
	}
	// Every direction is stalled now, with its source full.
	held, out := heldBufs.Load()-held0, pipes.out.Load()-pipes0
	t.Logf("%d stalled connections: %d buffers and %d pipes held", n, held, out)
	if held+out > 2*n {
		t.Errorf("the relay holds %d buffers and %d pipes for %d connections, want at most one per direction (%d)", held, out, n, 2*n)
	}
	r.Close()
	if held, out := heldBufs.Load()-held0, pipes.out.Load()-pipes0; held != 0 || out != 0 {
		t.Errorf("%d buffers and %d pipes still held after Close", held, out)
	}
}

// At the process's limit of open files a relayed connection keeps going:
// bulk bytes go through the buffer when no pipe can be made. (Accepting
// at the limit is not tested here: the test's own backend, in this
// process, would hit the limit too.)
func TestOpenFileLimit(t *testing.T) {
	srv := startBackend(t, echo)
	r, addr := startRelay(t, Options{})
	r.SetTarget(1, srv)
	c := dial(t, addr)
	c.roundTrip(t, "warm up")
	// No spare pipe in the pool: a bulk transfer must make one.
	pipes.mu.Lock()
	for _, p := range pipes.free {
		p.close()
	}
	pipes.free = nil
	pipes.mu.Unlock()

	// Files no longer referenced are closed by finalizers, which would
	// free fd numbers below the limit at any time: run them now.
	runtime.GC()
	runtime.GC()
	// Fill every free fd number up to the highest in use, then make
	// that the limit: any new fd fails with EMFILE.
	fds, err := procfs.FDs(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	highest := slices.Max(fds)
	var fillers []int
	defer func() {
		for _, fd := range fillers {
			unix.Close(fd)
		}
	}()
	for {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		fillers = append(fillers, fd)
		if fd >= highest {
			break
		}
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = uint64(fillers[len(fillers)-1] + 1)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	restore := func() { unix.Setrlimit(unix.RLIMIT_NOFILE, &lim) }
	defer restore()
	if _, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0); err != unix.EMFILE {
		t.Fatalf("at the limit, open: %v, want EMFILE", err)
	}

	// Bulk through the open connection: no pipe can be made.
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	go c.Write(big)
	got := make([]byte, len(big))
	c.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := io.ReadFull(c.r, got); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("1 MiB at the fd limit: %v (altered: %v)", err, !bytes.Equal(got, big))
	}

	restore()
	c.roundTrip(t, "small again")
}

func openFDs(t *testing.T) int {
	t.Helper()
	fds, err := procfs.FDs(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

// Close ends the relayed connections too, and returns once their
// goroutines have.
func TestCloseEndsConnections(t *testing.T) {
	a := startBackend(t, bannerEcho("A"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := New(ln, Options{})
	served := make(chan error, 1)
	go func() { served <- r.Serve() }()
	r.SetTarget(1, a)
	c := dial(t, ln.Addr().String())
	c.line(t)
	closed := make(chan error, 1)
	go func() { closed <- r.Close() }()
	select {
	case <-closed:
	case <-time.After(waitFor):
		t.Fatal("Close did not return with a connection open")
	}
	if err := <-served; err != ErrClosed {
		t.Errorf("Serve returned %v, want ErrClosed", err)
	}
	c.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := c.r.ReadByte(); err == nil || isTimeout(err) {
		t.Errorf("the relayed connection is still open after Close: %v", err)
	}
	if n := r.Active(1); n != 0 {
		t.Errorf("Active(1) = %d after Close", n)
	}
}

func BenchmarkRoundTrip(b *testing.B) {
	srv := startBackend(b, echo)
	bench := func(b *testing.B, addr string) {
		b.RunParallel(func(pb *testing.PB) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Error(err)
				return
			}
			defer c.Close()
			req := bytes.Repeat([]byte("x"), 128)
			resp := make([]byte, len(req))
			for pb.Next() {
				if _, err := c.Write(req); err != nil {
					b.Error(err)
					return
				}
				if _, err := io.ReadFull(c, resp); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.Run("direct", func(b *testing.B) { bench(b, srv) })
	b.Run("relay", func(b *testing.B) {
		r, addr := startRelay(b, Options{})
		r.SetTarget(1, srv)
		bench(b, addr)
	})
	b.Run("relay-new-conn", func(b *testing.B) {
		r, addr := startRelay(b, Options{})
		r.SetTarget(1, srv)
		b.RunParallel(func(pb *testing.PB) {
			req := []byte("ping\n")
			resp := make([]byte, len(req))
			for pb.Next() {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Error(err)
					return
				}
				c.Write(req)
				_, err = io.ReadFull(c, resp)
				c.Close()
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("direct-new-conn", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			req := []byte("ping\n")
			resp := make([]byte, len(req))
			for pb.Next() {
				c, err := net.Dial("tcp", srv)
				if err != nil {
					b.Error(err)
					return
				}
				c.Write(req)
				_, err = io.ReadFull(c, resp)
				c.Close()
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// The relay's sockets keep what package net gave them when it accepted
// and dialed them: the client's has TCP_NODELAY and Go's keep-alive
// probes (inherited from the listening socket, where the relay sets them
// once), the backend's has TCP_NODELAY and no probes.
func TestSocketOptions(t *testing.T) {
	r, addr := startRelay(t, Options{})
	bAddr := startBackend(t, bannerEcho("A"))
	r.SetTarget(1, bAddr)
	c := dial(t, addr)
	c.line(t)
	var client, backend int = -1, -1
	eventually(t, "the relay's two sockets", func() bool {
		client, backend = relaySockets(t, addr, c.LocalAddr().String(), bAddr)
		return client >= 0 && backend >= 0
	})
	opt := func(fd, level, name int) int {
		t.Helper()
		v, err := unix.GetsockoptInt(fd, level, name)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, o := range []struct {
		what        string
		s           int
		level, name int
		want        int
	}{
		{"client TCP_NODELAY", client, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
		{"client SO_KEEPALIVE", client, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{"client TCP_KEEPIDLE", client, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, keepAliveIdle},
		{"client TCP_KEEPINTVL", client, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, keepAliveInterval},
		{"client TCP_KEEPCNT", client, unix.IPPROTO_TCP, unix.TCP_KEEPCNT, keepAliveCount},
		{"backend TCP_NODELAY", backend, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
		{"backend SO_KEEPALIVE", backend, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 0},
	} {
		if got := opt(o.s, o.level, o.name); got != o.want {
			t.Errorf("%s = %d, want %d", o.what, got, o.want)
		}
	}
	c.roundTrip(t, "still relaying")
}

// relaySockets finds, among this process's fds, the relay's socket of a
// connection from client to the relay at addr, and its socket to the
// backend at baddr (a backend has one connection in the tests that use
// it); -1 for one not found.
func relaySockets(t *testing.T, addr, client, baddr string) (int, int) {
	t.Helper()
	fds, err := procfs.FDs(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	name := func(sa unix.Sockaddr) string {
		if sa4, ok := sa.(*unix.SockaddrInet4); ok {
			return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), uint16(sa4.Port)).String()
		}
		return ""
	}
	cfd, bfd := -1, -1
	for _, fd := range fds {
		local, err1 := unix.Getsockname(fd)
		peer, err2 := unix.Getpeername(fd)
		if err1 != nil || err2 != nil {
			continue
		}
		switch {
		case name(local) == addr && name(peer) == client:
			cfd = fd
		case name(peer) == baddr:
			bfd = fd
		}
	}
	return cfd, bfd
}
