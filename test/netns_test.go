package test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Tests that need a network namespace of their own: a sysctl the machine's
// namespace must not be changed for (tcp_migrate_req), or a packet filter
// that holds back the clients' final ACKs. rotini runs in the namespace
// (nsenter execs it, so its pid is the one the rig signals); the load
// client dials from a thread that has joined it.

var netnsCount atomic.Int64

// testNetns is a network namespace made by `ip netns add`, loopback up,
// deleted at the end of the test.
type testNetns struct {
	name, path string
	fd         int
}

func newTestNetns(t *testing.T, migrate bool) *testNetns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	for _, tool := range []string{"ip", "nsenter", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (scripts/deps.sh installs iproute2, util-linux and nftables)", tool)
		}
	}
	n := &testNetns{name: fmt.Sprintf("rotini-test-%d-%d", os.Getpid(), netnsCount.Add(1))}
	n.path = "/run/netns/" + n.name
	n.run(t, "ip", "netns", "add", n.name)
	t.Cleanup(func() {
		if n.fd > 0 {
			unix.Close(n.fd)
		}
		exec.Command("ip", "netns", "del", n.name).Run()
	})
	n.run(t, "ip", "-n", n.name, "link", "set", "lo", "up")
	v := "0"
	if migrate {
		v = "1"
	}
	n.run(t, "nsenter", "--net="+n.path, "sh", "-c", "echo "+v+" > /proc/sys/net/ipv4/tcp_migrate_req")
	fd, err := unix.Open(n.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	n.fd = fd
	return n
}

func (n *testNetns) run(t *testing.T, argv ...string) {
	t.Helper()
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
}

// prefix runs a command in the namespace.
func (n *testNetns) prefix() []string { return []string{"nsenter", "--net=" + n.path} }

// dial connects from inside the namespace: the socket is made on a thread
// that joined it (sockets belong to the namespace of the thread that makes
// them), which then ends with its goroutine.
func (n *testNetns) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread is in another namespace
		if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, err}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// slowDial is n.dial followed by a pause before the first request byte: the
// server completes the handshake with the client's final ACK, or, when that
// ACK is dropped, with the request's first segment after the pause.
func (n *testNetns) slowDial(pause time.Duration) dialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := n.dial(ctx, network, addr)
		if err == nil {
			time.Sleep(pause)
		}
		return c, err
	}
}

// TestSteerLateHandshakes: handshakes in flight at a switch complete into
// the replaced generation's socket a round trip later. A packet filter in
// the test's namespace drops every other pure ACK to the port, so half the
// handshakes complete only with the request, sent a while after connect.
// With tcp_migrate_req on, the kernel moves them to the serving socket when
// the old one closes: nothing fails. Off (the negative control), with a
// switch grace shorter than the pause, they are reset.
func TestSteerLateHandshakes(t *testing.T) {
	for _, migrate := range []bool{true, false} {
		t.Run(fmt.Sprintf("tcp_migrate_req=%t", migrate), func(t *testing.T) {
			t.Parallel()
			ns := newTestNetns(t, migrate)
			const port = 8000 // the namespace is the test's own
			rules := fmt.Sprintf(`table inet rotini_test {
  chain in {
    type filter hook input priority 0;
    tcp dport %d tcp flags == ack numgen inc mod 2 == 0 drop
  }
}
`, port)
			cmd := exec.Command("nsenter", "--net="+ns.path, "nft", "-f", "-")
			cmd.Stdin = strings.NewReader(rules)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("nft: %v\n%s", err, out)
			}
			// An app whose drain answers every connection it accepted (the
			// client's pause is before its request), so that what fails is
			// only a handshake that completed on a closed socket.
			spec := appSpec{
				Command:  testappServe("--notify"),
				Ready:    []string{`notify = true`, `min_uptime = "100ms"`, `timeout = "10s"`},
				Listener: []string{`switch_grace = "10ms"`},
			}
			r := startRigWith(t, port, rigConfig(port, spec), ns.prefix())
			r.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
			wantLog := "tcp_migrate_req is off"
			if migrate {
				wantLog = "tcp_migrate_req is on"
			}
			r.waitLog(wantLog, 1, time.Second)
			l := startLoadVia(t, r.url, newConn, loadClients, 5*time.Minute, ns.slowDial(150*time.Millisecond))
			if !l.waitGeneration(1, startTimeout) {
				t.Fatalf("generation 1 never answered: %s", l.snapshot())
			}
			const n = 30
			for i := 1; i <= n; i++ {
				if line, ok := r.hupAndWait(i); !ok {
					t.Fatalf("reload %d: %s", i, line)
				}
				if !l.waitGeneration(i+1, reloadTimeout) {
					t.Fatalf("generation %d never answered: %s", i+1, l.snapshot())
				}
			}
			s := l.stop()
			if migrate {
				requireNoFailures(t, s)
			} else {
				requireSomeFailures(t, s, "tcp_migrate_req")
			}
			r.signal(syscall.SIGTERM)
			r.waitExit(stopTimeout)
		})
	}
}
