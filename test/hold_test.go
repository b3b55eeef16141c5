package test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// End-to-end tests of `rotini hold` with plain processes on this machine:
// a holder, and app rotinis that take their sockets from it, as app
// containers would from a holder container whose network namespace they
// join. A new rotini beside the serving one (start-first) takes over once
// ready and the old one drains and exits 0; a stopping rotini (stop-first)
// leaves new connections in the holder's standby socket for the next one.

// startHolder runs `rotini hold` on a socket in a directory of t's.
func startHolder(t *testing.T) (sock string, p *proc) {
	t.Helper()
	sock = filepath.Join(t.TempDir(), "hold.sock")
	p = start(t, procOptions{}, rotiniBin, "hold", "--socket", sock)
	p.waitStderrLine(t, regexp.MustCompile("holding sockets"), startTimeout)
	return sock, p
}

// holdConfig is the naive app's config with a hold block.
func holdConfig(sock string, port int) string {
	return fmt.Sprintf("hold {\n  socket = %q\n}\n\n", sock) + rigConfig(port, naiveSpec(true))
}

func TestHoldDeploys(t *testing.T) {
	t.Parallel()
	sock, _ := startHolder(t)
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the hold socket: %v, %v; want mode 0600", fi, err)
	}
	port := freeLoopbackPort(t)
	cfg := holdConfig(sock, port)
	cur := startRig(t, port, cfg)
	cur.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
	l := startLoad(t, cur.url, newConn, loadClients, 10*time.Minute)
	if !l.waitRequests(100, startTimeout) {
		t.Fatalf("no answers: %s", l.snapshot())
	}
	const n = 5
	for i := 1; i <= n; i++ {
		// Start-first: the next rotini boots beside the serving one.
		next := startRig(t, port, cfg)
		next.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
		if code := cur.waitExit(stopTimeout); code != 0 {
			t.Fatalf("start-first deploy %d: the superseded rotini exited %d, want 0", i, code)
		}
		cur.waitLog(`superseded by a newer rotini`, 1, time.Second)
		cur = next
		if !l.waitRequests(100, startTimeout) {
			t.Fatalf("start-first deploy %d: no answers after it: %s", i, l.snapshot())
		}
	}
	for i := 1; i <= n; i++ {
		// Stop-first: the serving rotini stops, then the next one starts;
		// connections wait in the holder's standby socket meanwhile.
		cur.signal(syscall.SIGTERM)
		if code := cur.waitExit(stopTimeout); code != 0 {
			t.Fatalf("stop-first deploy %d: the stopped rotini exited %d, want 0", i, code)
		}
		cur = startRig(t, port, cfg)
		cur.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
		if !l.waitRequests(100, startTimeout) {
			t.Fatalf("stop-first deploy %d: no answers after it: %s", i, l.snapshot())
		}
	}
	s := l.stop()
	requireNoFailures(t, s)
	st := cur.statusJSON()
	if st.Holder == nil || len(st.Holder.Tenants) != 1 || len(st.Holder.Tenants[0].Serving) != 1 {
		t.Errorf("status does not show the holder and its one tenant serving: %+v", st.Holder)
	}
	if res := rotiniCLI(t, nil, "status", "--control", cur.ctlPath()); !regexp.MustCompile(`holder pid \d+ at .*hold\.sock; tenants: .*serving http`).MatchString(res.stdout) {
		t.Errorf("status does not show the holder:\n%s", res.stdout)
	}
	cur.stop()
}

// TestHoldTenantKilled: the serving rotini is SIGKILLed (its workers die
// with it): the holder steers new connections to its standby at once, and
// the next rotini serves them. Only requests the killed workers held fail.
func TestHoldTenantKilled(t *testing.T) {
	t.Parallel()
	sock, holder := startHolder(t)
	port := freeLoopbackPort(t)
	cfg := holdConfig(sock, port)
	r := startRig(t, port, cfg)
	r.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
	l := startLoad(t, r.url, newConn, loadClients, 5*time.Minute)
	if !l.waitRequests(100, startTimeout) {
		t.Fatalf("no answers: %s", l.snapshot())
	}
	r.p.cmd.Process.Signal(syscall.SIGKILL)
	r.waitExit(stopTimeout)
	holder.waitStderrLine(t, regexp.MustCompile("tenant gone"), startTimeout)
	next := startRig(t, port, cfg)
	next.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
	if !l.waitRequests(100, startTimeout) {
		t.Fatalf("no answers after the next rotini: %s", l.snapshot())
	}
	s := l.stop()
	t.Logf("load across a killed tenant: %s", s)
	// What the killed workers held, and what sat in its socket's queue
	// (reset as the socket leaves without tcp_migrate_req), fails: at most
	// one request per client.
	if s.Failures > loadClients {
		t.Errorf("%d failed; want at most the %d requests the killed tenant held", s.Failures, loadClients)
	}
	next.stop()
}

// TestHoldBadTenants: a rotini whose holder is unreachable, or that
// defines a listener differently from the holder's, says why and exits 70;
// the serving tenant is untouched.
func TestHoldBadTenants(t *testing.T) {
	t.Parallel()
	port := freeLoopbackPort(t)
	missing := startRig(t, port, holdConfig(filepath.Join(t.TempDir(), "nobody.sock"), port))
	missing.waitLog(`rotini: holder at .*nobody\.sock`, 1, startTimeout)
	if code := missing.waitExit(startTimeout); code != 70 {
		t.Errorf("unreachable holder: exit %d, want 70", code)
	}

	sock, _ := startHolder(t)
	good := startRig(t, port, holdConfig(sock, port))
	good.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
	other := freeLoopbackPort(t)
	bad := startRig(t, other, holdConfig(sock, other))
	bad.waitLog(`listener "http" is tcp4?://127\.0\.0\.1:\d+ here; this tenant defines it as`, 1, startTimeout)
	if code := bad.waitExit(startTimeout); code != 70 {
		t.Errorf("a conflicting listener: exit %d, want 70", code)
	}
	if gen, _ := good.get(); gen != "1" {
		t.Errorf("the serving tenant answers %q", gen)
	}
	good.stop()
}

// TestHoldTwoNewcomers: two rotinis start at once beside the serving one:
// the last one ready wins, the others are superseded and exit 0 saying by
// whom; the load loses nothing.
func TestHoldTwoNewcomers(t *testing.T) {
	t.Parallel()
	sock, _ := startHolder(t)
	port := freeLoopbackPort(t)
	cfg := holdConfig(sock, port)
	a := startRig(t, port, cfg)
	a.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
	l := startLoad(t, a.url, newConn, loadClients, 5*time.Minute)
	if !l.waitRequests(100, startTimeout) {
		t.Fatalf("no answers: %s", l.snapshot())
	}
	b, c := startRig(t, port, cfg), startRig(t, port, cfg)
	b.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
	c.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
	if code := a.waitExit(stopTimeout); code != 0 {
		t.Errorf("the first rotini exited %d, want 0", code)
	}
	// One of the newcomers superseded the other.
	var alive []*rig
	eventually(t, stopTimeout, "one newcomer left", func() (bool, string) {
		alive = nil
		for _, r := range []*rig{b, c} {
			if r.running() {
				alive = append(alive, r)
			}
		}
		return len(alive) == 1, fmt.Sprintf("%d running", len(alive))
	})
	for _, r := range []*rig{b, c} {
		if r != alive[0] {
			r.waitLog(`superseded by a newer rotini`, 1, time.Second)
			if code := r.exitCode(); code != 0 {
				t.Errorf("the superseded newcomer exited %d, want 0", code)
			}
		}
	}
	if !l.waitRequests(100, startTimeout) {
		t.Fatalf("no answers after: %s", l.snapshot())
	}
	requireNoFailures(t, l.stop())
	alive[0].stop()
}

// TestHoldHolderKilled: the holder dies (SIGKILL): the serving rotini keeps
// serving on the sockets it holds; a reload, which needs a new socket,
// fails and says why; status says the holder is unreachable.
func TestHoldHolderKilled(t *testing.T) {
	t.Parallel()
	sock, holder := startHolder(t)
	port := freeLoopbackPort(t)
	r := startRig(t, port, holdConfig(sock, port))
	r.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
	l := startLoad(t, r.url, newConn, loadClients, 5*time.Minute)
	if !l.waitRequests(100, startTimeout) {
		t.Fatalf("no answers: %s", l.snapshot())
	}
	holder.cmd.Process.Signal(syscall.SIGKILL)
	r.waitLog(`connection to the holder lost`, 1, startTimeout)
	if !l.waitRequests(500, startTimeout) {
		t.Fatalf("the tenant stopped serving without its holder: %s", l.snapshot())
	}
	res := rotiniCLI(t, nil, "reload", "--wait", "--control", r.ctlPath())
	if res.code == 0 || !regexp.MustCompile(`holder`).MatchString(res.stdout+res.stderr) {
		t.Errorf("a reload without the holder: %s", res)
	}
	if st := r.statusJSON(); len(st.Listeners) != 1 || !regexp.MustCompile(`holder unreachable`).MatchString(st.Listeners[0].Note) {
		t.Errorf("status without the holder: %+v", st.Listeners)
	}
	if !l.waitRequests(100, startTimeout) {
		t.Fatalf("no answers after the failed reload: %s", l.snapshot())
	}
	requireNoFailures(t, l.stop())
	r.stop()
}
