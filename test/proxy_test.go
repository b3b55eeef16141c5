package test

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rotini-dev/rotini/procfs"
)

// End-to-end tests of proxy mode (`proxy {}` in an app): apps that know
// only $PORT — a Node server, Python's http.server, the naive Go app —
// rotated every second under load through rotini's relay; broken releases
// refused; slow clients that must not pin rotini; bytes relayed exactly.

// proxySpec runs command in proxy mode with two workers; readiness is the
// default for proxy mode (the worker's port accepts) plus a short uptime.
func proxySpec(command []string, extra ...string) appSpec {
	return appSpec{
		Command:     command,
		Workers:     2,
		StopTimeout: "10s",
		Ready:       []string{`min_uptime = "200ms"`, `timeout = "10s"`},
		Extra:       append([]string{"proxy {}"}, extra...),
	}
}

func requireCommand(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Skipf("%s is missing (scripts/deps.sh test installs it)", path)
	}
}

// TestProxyApps: each app, reloaded every second for a minute under load
// with a new connection per request, loses nothing, and the answers show
// the generations changing.
func TestProxyApps(t *testing.T) {
	for _, tc := range []struct {
		name    string
		command func(t *testing.T) []string
	}{
		{"node", func(t *testing.T) []string {
			requireCommand(t, "/usr/bin/node")
			abs, _ := filepath.Abs("apps/node/server.js")
			return []string{"/usr/bin/node", abs}
		}},
		{"python-http.server", func(t *testing.T) []string {
			abs, _ := filepath.Abs("apps/pyport/app.py")
			return []string{"/usr/bin/python3", abs}
		}},
		{"naive-go", func(t *testing.T) []string { return []string{naiveBin} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			port := freeLoopbackPort(t)
			requireNoFailures(t, steerRun(t, port, rigConfig(port, proxySpec(tc.command(t))), newConn))
		})
	}
}

// TestProxyBrokenReleases: a release that never binds its port, binds it
// after the readiness timeout, binds another port, or crashes is refused
// under load: nothing fails, the old generation keeps serving, and the
// reason is in `reload --wait`.
func TestProxyBrokenReleases(t *testing.T) {
	sh := func(script string) []string { return []string{"/bin/sh", "-c", script} }
	for _, tc := range []struct {
		name    string
		command []string
		reason  string
	}{
		{"never binds", []string{"/bin/sleep", "600"}, "not ready"},
		{"binds late", sh("sleep 5; exec " + naiveBin), "not ready"},
		{"binds another port", sh("PORT=0 exec " + naiveBin), "not ready"}, // a free port the kernel picks
		{"crashes", sh("exit 3"), "exit status 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			port := freeLoopbackPort(t)
			good := proxySpec([]string{naiveBin})
			r := startRig(t, port, rigConfig(port, good))
			r.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
			l := startLoad(t, r.url, newConn, loadClients, 5*time.Minute)
			if !l.waitGeneration(1, startTimeout) {
				t.Fatalf("generation 1 never answered: %s", l.snapshot())
			}
			broken := proxySpec(tc.command)
			broken.Ready = []string{`min_uptime = "200ms"`, `timeout = "2s"`}
			r.writeConfig(rigConfig(port, broken))
			res := rotiniCLI(t, nil, "reload", "--wait", "--control", r.ctlPath())
			if res.code == 0 || !strings.Contains(res.stdout+res.stderr, tc.reason) {
				t.Errorf("reload --wait of the broken release: want a failure naming %q, got %s", tc.reason, res)
			}
			if !l.waitRequests(100, startTimeout) {
				t.Fatalf("no answers after the refused release: %s", l.snapshot())
			}
			s := l.stop()
			requireNoFailures(t, s)
			if len(s.Generations) != 1 || s.Generations["1"] == 0 {
				t.Errorf("answers came from %v, want generation 1 only", s.Generations)
			}
			r.stop()
		})
	}
}

// rssOf is a process's resident set size in bytes.
func rssOf(t *testing.T, pid int) int64 {
	t.Helper()
	rss, err := procfs.RSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	return rss
}

// proxyIdleBound is the most rotini's memory may grow per idle relayed
// connection (README: proxy mode's limits). The relay's own bookkeeping
// is under 1 KiB; the rest is the heap's slack under the load that runs
// alongside (about 4 KiB in all, measured here).
const proxyIdleBound = 16 << 10

// TestProxySlowClients: 500 clients connect and send nothing while a
// normal load runs: the load is served without a failure, and rotini's
// memory grows by less than proxyIdleBound per slow client.
func TestProxySlowClients(t *testing.T) {
	t.Parallel()
	port := freeLoopbackPort(t)
	r := startRig(t, port, rigConfig(port, proxySpec([]string{naiveBin})))
	r.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
	pid := r.p.target(t)
	l := startLoad(t, r.url, newConn, loadClients, 5*time.Minute)
	if !l.waitRequests(200, startTimeout) {
		t.Fatalf("no answers: %s", l.snapshot())
	}
	before := rssOf(t, pid)
	const slow = 500
	var conns []net.Conn
	for range slow {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	eventually(t, startTimeout, "the slow clients are relayed", func() (bool, string) {
		n := 0
		for _, g := range r.statusJSON().Apps[0].Generations {
			n += g.Relayed
		}
		return n >= slow, fmt.Sprintf("%d relayed", n)
	})
	if !l.waitRequests(1000, startTimeout) {
		t.Fatalf("the load stalled behind %d slow clients: %s", slow, l.snapshot())
	}
	after := rssOf(t, pid)
	s := l.stop()
	requireNoFailures(t, s)
	per := (after - before) / slow
	t.Logf("rotini RSS %d KiB before, %d KiB with %d idle relayed connections: %d bytes each", before>>10, after>>10, slow, per)
	if per > proxyIdleBound {
		t.Errorf("rotini grew by %d bytes per idle relayed connection, more than the stated %d", per, proxyIdleBound)
	}
	r.stop()
}

// TestProxyLargeHalfClose: 100 MB from the client, a half-close, and 100
// MB back cross the relay byte for byte (apps/halfclose hashes what it
// read and answers with a known pattern).
func TestProxyLargeHalfClose(t *testing.T) {
	t.Parallel()
	const size = 100 << 20
	bin := filepath.Join(t.TempDir(), "halfclose")
	if out, err := exec.Command("go", "build", "-o", bin, "./apps/halfclose").CombinedOutput(); err != nil {
		t.Fatalf("build apps/halfclose: %v\n%s", err, out)
	}
	port := freeLoopbackPort(t)
	spec := proxySpec([]string{bin}, fmt.Sprintf(`env = { HALFCLOSE_BYTES = "%d" }`, size))
	spec.Workers = 1
	r := startRig(t, port, rigConfig(port, spec))
	r.waitLog(`generation ready: generation=1\b`, 1, time.Minute)

	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sent := sha256.New()
	go func() {
		rng := rand.NewChaCha8([32]byte{7})
		buf := make([]byte, 1<<20)
		for range size / len(buf) {
			rng.Read(buf)
			sent.Write(buf)
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
		c.(*net.TCPConn).CloseWrite()
	}()
	br := bufio.NewReaderSize(c, 1<<20)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("no hash back: %v", err)
	}
	if got, want := strings.TrimSpace(line), fmt.Sprintf("%x", sent.Sum(nil)); got != want {
		t.Fatalf("the app read other bytes than were sent: sha256 %s, want %s", got, want)
	}
	var n int64
	buf := make([]byte, 1<<20)
	for {
		k, err := br.Read(buf)
		for i := range k {
			if buf[i] != byte((n+int64(i))*7%251) {
				t.Fatalf("byte %d of the reply differs", n+int64(i))
			}
		}
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", n, err)
		}
	}
	if n != size {
		t.Fatalf("got %d bytes back, want %d", n, size)
	}
	r.stop()
}
