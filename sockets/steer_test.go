package sockets

import (
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

func newTestLocal(t *testing.T, specs ...Spec) *Local {
	t.Helper()
	a, err := NewLocal(hclog.NewNullLogger(), specs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

func tcpSpec(name string) Spec {
	return Spec{ListenerOptions: ListenerOptions{Name: name, Network: "tcp4", Address: "127.0.0.1:0", Backlog: 512}, Steer: true}
}

// dialN opens n connections to addr and waits until the kernel has queued
// all of them on some listening socket; the caller reads where.
func dialN(t *testing.T, addr string, n int, queues func() int) []net.Conn {
	t.Helper()
	before := queues()
	var cs []net.Conn
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	t.Cleanup(func() {
		for _, c := range cs {
			c.Close()
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for queues() < before+n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d connections queued", queues()-before, n)
		}
		time.Sleep(time.Millisecond)
	}
	return cs
}

// queuedByGen is the accept-queue length of every generation's socket.
func queuedByGen(a *Local, name string) map[int]int {
	out := map[int]int{}
	for _, s := range a.Status()[0].Sockets {
		out[s.Generation] += s.Queued
	}
	return out
}

func total(m map[int]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// drain accepts and closes what gen's socket has queued.
func drain(t *testing.T, l *Listener) {
	t.Helper()
	for {
		nfd, _, err := unix.Accept4(int(l.File.Fd()), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			return
		}
		unix.Close(nfd)
		if queueLen(l, false) == 0 {
			return
		}
	}
}

func TestSteeringFollowsServingAcrossEveryChange(t *testing.T) {
	a := newTestLocal(t, tcpSpec("http"))
	addr := a.Addr("http")
	q := func() int { return total(queuedByGen(a, "http")) }
	socks := map[int]*Listener{}
	sock := func(gen int) {
		l, err := a.Socket("http", gen)
		if err != nil {
			t.Fatal(err)
		}
		socks[gen] = l
	}
	// expect dials 20 connections and checks that gen's socket got them all.
	expect := func(step string, gen int) {
		t.Helper()
		dialN(t, addr, 20, q)
		got := queuedByGen(a, "http")
		if diff := cmp.Diff(map[int]int{gen: 20}, nonZero(got)); diff != "" {
			t.Fatalf("%s: connections by generation (-want +got):\n%s", step, diff)
		}
		drain(t, socks[gen])
	}
	serve := func(gen int) {
		if err := a.Serve("http", gen); err != nil {
			t.Fatal(err)
		}
	}

	sock(1)
	serve(1)
	expect("one generation", 1)
	sock(2)
	expect("generation 2 booting", 1)
	serve(2)
	expect("generation 2 serving", 2)
	sock(3) // a reload while generation 1 still drains
	expect("generation 3 booting, 1 draining", 2)
	serve(3)
	expect("generation 3 serving", 3)
	a.Release("http", 1) // serving is last: a naive close would move it
	expect("generation 1 gone", 3)
	a.Release("http", 2)
	expect("generation 2 gone", 3)
	sock(4)
	expect("generation 4 booting", 3)
	a.Release("http", 4) // a failed release
	expect("generation 4 rolled back", 3)
	sock(5)
	serve(5)
	expect("generation 5 serving", 5)
	a.Release("http", 3)
	expect("generation 3 gone", 5)
	if n := len(a.Status()[0].Sockets); n != 1 {
		t.Fatalf("%d sockets left in the group, want 1: %+v", n, a.Status()[0].Sockets)
	}
}

func nonZero(m map[int]int) map[int]int {
	out := map[int]int{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// TestNaiveCloseMisroutes is the negative control of the test above: with
// the serving socket last in a group of three, closing the first socket
// moves the serving one under a program that names a slot past the end,
// and the kernel hashes connections to the other sockets.
func TestNaiveCloseMisroutes(t *testing.T) {
	o := ListenerOptions{Name: "x", Network: "tcp4", Address: "127.0.0.1:0", Backlog: 512, ReusePort: true}
	first, err := Listen(o)
	if err != nil {
		t.Fatal(err)
	}
	o.Address = first.Addr
	var ls []*Listener
	ls = append(ls, first)
	for range 2 {
		l, err := Listen(o)
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
	}
	defer func() {
		for _, l := range ls {
			l.File.Close()
		}
	}()
	g := &group{log: hclog.NewNullLogger()}
	for _, l := range ls {
		g.members = append(g.members, &member{l: l})
	}
	if err := g.program(2); err != nil {
		t.Fatal(err)
	}
	ls[0].File.Close() // the naive way: ls[2] moves to slot 0, the program still says 2
	ls = ls[1:]
	q := func() int { return queueLen(ls[0], false) + queueLen(ls[1], false) }
	dialN(t, first.Addr, 40, q)
	if queueLen(ls[0], false) == 0 {
		t.Fatalf("all 40 connections reached the serving socket: the hazard this package avoids did not show")
	}
}

func TestUnixSteeringRenames(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.sock")
	a := newTestLocal(t, Spec{ListenerOptions: ListenerOptions{Name: "u", Network: "unix", Address: path, Mode: 0o600}, Steer: true})
	l1, _ := a.Socket("u", 1)
	if err := a.Serve("u", 1); err != nil {
		t.Fatal(err)
	}
	l2, err := a.Socket("u", 2)
	if err != nil {
		t.Fatal(err)
	}
	connect := func() {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	connect()
	if queueLen(l1, true) != 1 || queueLen(l2, true) != 0 {
		t.Fatal("a booting generation's socket got a connection")
	}
	if err := a.Serve("u", 2); err != nil {
		t.Fatal(err)
	}
	connect()
	if queueLen(l2, true) != 1 {
		t.Fatal("the serving generation's socket got nothing")
	}
	if queueLen(l1, true) != 1 {
		t.Fatal("the old socket lost what it had queued")
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket at the configured path: %v %v", fi, err)
	}
	a.Release("u", 1)
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("left in %s: %v", dir, ents)
	}
}

func TestAddressInUseByStranger(t *testing.T) {
	// A stranger with SO_REUSEPORT, as workers left by a killed rotini.
	o := ListenerOptions{Name: "x", Network: "tcp4", Address: "127.0.0.1:0", ReusePort: true}
	stranger, err := Listen(o)
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.File.Close()
	_, err = NewLocal(hclog.NewNullLogger(), []Spec{{ListenerOptions: ListenerOptions{Name: "http", Network: "tcp", Address: stranger.Addr}, Steer: true}})
	if err == nil {
		t.Fatal("joined a stranger's reuseport group")
	}
	t.Log(err)
	// The negative control: without the check the bind succeeds.
	o.Address = stranger.Addr
	l, err := Listen(o)
	if err != nil {
		t.Fatalf("the kernel refused the bind itself (%v): the check guards nothing", err)
	}
	l.File.Close()
}

func TestParseProcAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F:1F90":                         "127.0.0.1:8080",
		"00000000:0050":                         "0.0.0.0:80",
		"00000000000000000000000000000000:1F90": "[::]:8080",
		"0000000000000000FFFF00000100007F:0016": "[::ffff:127.0.0.1]:22",
	} {
		ap, ok := parseProcAddr(in)
		if !ok || ap.String() != want {
			t.Errorf("parseProcAddr(%q) = %v, %v; want %s", in, ap, ok, want)
		}
	}
}

// inPrivateNetns runs f on a thread of its own in a new network namespace
// with loopback up and tcp_migrate_req as asked, so that the test changes
// nothing of the machine's.
func inPrivateNetns(t *testing.T, migrate bool, f func()) {
	t.Helper()
	done := make(chan struct{})
	var setupErr error
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies with its namespace
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			setupErr = err
			return
		}
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			setupErr = err
			return
		}
		defer unix.Close(fd)
		ifr, err := unix.NewIfreq("lo")
		if err != nil {
			setupErr = err
			return
		}
		ifr.SetUint16(unix.IFF_UP | unix.IFF_LOOPBACK | unix.IFF_RUNNING)
		if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
			setupErr = err
			return
		}
		v := "0\n"
		if migrate {
			v = "1\n"
		}
		// /proc/sys/net shows the namespace of the thread that opens it.
		if err := os.WriteFile(migrateReqPath, []byte(v), 0o644); err != nil {
			setupErr = err
			return
		}
		f()
	}()
	<-done
	if setupErr != nil {
		t.Skipf("cannot make a private network namespace here: %v", setupErr)
	}
}

// TestCompactLosesNothing: with tcp_migrate_req, sockets retired behind a
// serving socket that is last leave the group at once, under a stream of
// new connections, and every connection reaches the serving socket.
func TestCompactLosesNothing(t *testing.T) {
	inPrivateNetns(t, true, func() {
		a, err := NewLocal(hclog.NewNullLogger(), []Spec{tcpSpec("http")})
		if err != nil {
			t.Error(err)
			return
		}
		defer a.Close()
		if !a.Status()[0].Migrate {
			t.Error("tcp_migrate_req not seen")
			return
		}
		nsFD, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer unix.Close(nsFD)
		addr := a.Addr("http")
		var dialed atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var conns sync.Map
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runtime.LockOSThread()
				if err := unix.Setns(nsFD, unix.CLONE_NEWNET); err != nil {
					t.Error(err)
					return
				}
				for {
					select {
					case <-stop:
						return
					default:
					}
					c, err := net.DialTimeout("tcp", addr, time.Second)
					if err != nil {
						t.Errorf("dial: %v", err)
						return
					}
					conns.Store(c, true)
					dialed.Add(1)
				}
			}()
		}
		sock := func(gen int) *Listener {
			l, err := a.Socket("http", gen)
			if err != nil {
				t.Error(err)
			}
			return l
		}
		// Keep the serving socket's queue short: accept and close.
		var accepted atomic.Int64
		var cur atomic.Pointer[Listener]
		var curMu sync.RWMutex // the acceptor's socket is not closed under it
		acceptStop := make(chan struct{})
		acceptDone := make(chan struct{})
		go func() {
			defer close(acceptDone)
			for {
				select {
				case <-acceptStop:
					return
				default:
				}
				curMu.RLock()
				if l := cur.Load(); l != nil && queueLen(l, false) > 0 {
					if nfd, _, err := unix.Accept4(int(l.File.Fd()), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC); err == nil {
						unix.Close(nfd)
						accepted.Add(1)
						curMu.RUnlock()
						continue
					}
				}
				curMu.RUnlock()
				time.Sleep(100 * time.Microsecond)
			}
		}()
		l := sock(1)
		_ = a.Serve("http", 1)
		cur.Store(l)
		for gen := 2; gen <= 30; gen += 2 {
			sock(gen)
			l := sock(gen + 1)
			_ = a.Serve("http", gen+1)
			// Only the serving socket is accepted from: the others' queues
			// must stay empty.
			cur.Store(l)
			time.Sleep(5 * time.Millisecond)
			curMu.Lock()
			a.Release("http", gen-1)
			a.Release("http", gen)
			curMu.Unlock()
			time.Sleep(5 * time.Millisecond)
			if n := len(a.Status()[0].Sockets); n != 1 {
				t.Errorf("generation %d: %d sockets, want 1 after compaction", gen+1, n)
			}
		}
		close(stop)
		wg.Wait()
		deadline := time.Now().Add(10 * time.Second)
		for accepted.Load() < dialed.Load() && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		close(acceptStop)
		<-acceptDone
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		if accepted.Load() != dialed.Load() || dialed.Load() == 0 {
			t.Errorf("dialed %d connections, the serving sockets accepted %d", dialed.Load(), accepted.Load())
		}
		t.Logf("%d connections across 15 switches", dialed.Load())
	})
}
