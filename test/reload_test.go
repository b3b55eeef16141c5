package test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// End-to-end tests of reloads in config mode (`rotini -c FILE`): the real
// binary owns a loopback listener, the test app serves on it, a load client
// keeps requests in flight while the test sends HUP, TTIN, TTOU and TERM
// and rewrites the config file, and waits on rotini's log lines and on HTTP
// answers — never on fixed sleeps.
//
// The zero-drop check has its negative control in TestNaiveRestartDrops: the
// same load client across a plain restart of a server that binds its own
// port sees failures.

// reloadOutcomeRE matches the one line that reports a reload's outcome
// ("reload failed: rolling back: …" comes before it on failure).
const reloadOutcomeRE = `rotini\.web: reload (done: generation=|failed: serving=)`

// reloadCount is how many HUPs the zero-drop test sends per mode.
const reloadCount = 50

// loadClients is how many goroutines keep requests in flight.
const loadClients = 8

// Bounds of the waits; generous, they only turn a hang into a failure.
const (
	startTimeout  = 30 * time.Second
	reloadTimeout = 30 * time.Second
	stopTimeout   = 30 * time.Second
)

// freeLoopbackPort returns a TCP port on 127.0.0.1 that was free a moment
// ago (bound to :0, then closed), so parallel tests do not share one.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pick a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// appSpec is the app "web" of a test config; zero fields take the defaults
// noted.
type appSpec struct {
	Command     []string // "${fd.http}" and friends are left to HCL
	Workers     int      // default 2
	StopTimeout string   // default "10s"
	Ready       []string // lines of the ready block; default notify + min_uptime 200ms + timeout 10s
	Extra       []string // more lines of the app block
	Listener    []string // more lines of the listen block
}

// hclString quotes s for HCL. HCL's escapes are a subset of Go's, and the
// strings of these tests are plain ASCII, so strconv.Quote fits; "${…}"
// stays an HCL template on purpose.
func hclString(s string) string { return strconv.Quote(s) }

func hclList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = hclString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// rigConfig renders a config with one listener "http" on port and one app
// "web".
func rigConfig(port int, a appSpec) string {
	if a.Workers == 0 {
		a.Workers = 2
	}
	if a.StopTimeout == "" {
		a.StopTimeout = "10s"
	}
	if a.Ready == nil {
		a.Ready = []string{`notify = true`, `min_uptime = "200ms"`, `timeout = "10s"`}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "listen \"http\" {\n  address = \"tcp://127.0.0.1:%d\"\n", port)
	for _, l := range a.Listener {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	fmt.Fprintf(&b, "}\n\n")
	fmt.Fprintf(&b, "app \"web\" {\n")
	fmt.Fprintf(&b, "  command      = %s\n", hclList(a.Command))
	fmt.Fprintf(&b, "  workers      = %d\n", a.Workers)
	fmt.Fprintf(&b, "  listen       = [\"http\"]\n")
	fmt.Fprintf(&b, "  stop_timeout = %s\n", hclString(a.StopTimeout))
	for _, l := range a.Extra {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	fmt.Fprintf(&b, "  ready {\n")
	for _, l := range a.Ready {
		fmt.Fprintf(&b, "    %s\n", l)
	}
	fmt.Fprintf(&b, "  }\n}\n")
	return b.String()
}

// rig is one `rotini -c FILE` under test, built on the harness's proc: a
// plain child of the test (a child subreaper, not PID 1), its log on
// stderr, its workers' lines on stdout, its config file and control socket
// in a temporary directory of its own (tests run in parallel).
type rig struct {
	t       *testing.T
	p       *proc
	cfgPath string
	port    int
	url     string
}

// startRig writes config and starts rotini on it. The test's cleanup stops
// rotini with TERM first (so the workers drain), and the harness's kills
// whatever is left and shows the output when the test failed.
func startRig(t *testing.T, port int, config string) *rig {
	t.Helper()
	return startRigWith(t, port, config, nil)
}

// startRigWith is startRig with rotini's command line after prefix (such
// as nsenter into a network namespace, which execs and keeps the pid).
func startRigWith(t *testing.T, port int, config string, prefix []string) *rig {
	t.Helper()
	dir := t.TempDir()
	r := &rig{
		t: t, cfgPath: filepath.Join(dir, "rotini.hcl"), port: port,
		url: fmt.Sprintf("http://127.0.0.1:%d/", port),
	}
	r.writeConfig(config)
	r.p = start(t, procOptions{}, append(prefix, rotiniArgv(subreaper, "--control", filepath.Join(dir, "ctl.sock"), "-c", r.cfgPath)...)...)
	t.Cleanup(r.cleanup) // runs before the harness's cleanup of r.p
	return r
}

func (r *rig) writeConfig(config string) {
	r.t.Helper()
	// Write and rename, so rotini never reads half a file.
	tmp := r.cfgPath + ".tmp"
	if err := os.WriteFile(tmp, []byte(config), 0o644); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Rename(tmp, r.cfgPath); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) signal(sig syscall.Signal) {
	r.t.Helper()
	r.p.signal(r.t, sig)
}

func (r *rig) running() bool { return !r.p.hasExited() }

// exitCode is rotini's exit code once it has exited (128+N when signal N
// killed it).
func (r *rig) exitCode() int { return exitCode(r.p.state) }

// nthMatch waits until n lines of s match rx and returns the n-th and its
// index. Unlike the harness's waits it consumes nothing: it counts from the
// first line, which is what counting reloads needs.
func nthMatch(s *lineStream, rx *regexp.Regexp, n int, timeout time.Duration) (string, int, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		seen := 0
		for i, l := range s.all {
			if rx.MatchString(l) {
				if seen++; seen == n {
					s.mu.Unlock()
					return l, i, nil
				}
			}
		}
		changed, eof := s.changed, s.eof
		s.mu.Unlock()
		if eof != nil {
			return "", -1, fmt.Errorf("only %d such lines: %w", seen, eof)
		}
		select {
		case <-changed:
		case <-timer.C:
			return "", -1, fmt.Errorf("only %d such lines after %v", seen, timeout)
		}
	}
}

// waitLog waits until n lines of rotini's log match re and returns the n-th
// and its index. It fails the test on timeout, or when the log ends first
// (rotini exited).
func (r *rig) waitLog(re string, n int, timeout time.Duration) (string, int) {
	r.t.Helper()
	line, i, err := nthMatch(r.p.stderr, regexp.MustCompile(re), n, timeout)
	if err != nil {
		r.t.Fatalf("waiting for log line #%d matching %q: %v (rotini running: %t)", n, re, err, r.running())
	}
	return line, i
}

// waitOut is waitLog on the workers' output (stdout).
func (r *rig) waitOut(re string, n int, timeout time.Duration) string {
	r.t.Helper()
	line, _, err := nthMatch(r.p.stdout, regexp.MustCompile(re), n, timeout)
	if err != nil {
		r.t.Fatalf("waiting for worker output line #%d matching %q: %v", n, re, err)
	}
	return line
}

// logLines is rotini's log so far.
func (r *rig) logLines() []string { return r.p.stderr.lines() }

// countLog is the number of log lines so far that match re.
func (r *rig) countLog(re string) int {
	rx := regexp.MustCompile(re)
	n := 0
	for _, l := range r.logLines() {
		if rx.MatchString(l) {
			n++
		}
	}
	return n
}

// logField returns the value of key=value in an hclog text line.
func logField(line, key string) string {
	m := regexp.MustCompile(`\b` + regexp.QuoteMeta(key) + `=("(?:[^"\\]|\\.)*"|\S*)`).FindStringSubmatch(line)
	if m == nil {
		return ""
	}
	if v, err := strconv.Unquote(m[1]); err == nil {
		return v
	}
	return m[1]
}

// waitExit waits for rotini to exit and returns its exit code, or -2 on
// timeout.
func (r *rig) waitExit(timeout time.Duration) int {
	select {
	case <-r.p.exited:
		return r.exitCode()
	case <-time.After(timeout):
		return -2
	}
}

// stop sends TERM and requires a clean exit 0.
func (r *rig) stop() {
	r.t.Helper()
	r.signal(syscall.SIGTERM)
	if code := r.waitExit(stopTimeout); code != 0 {
		r.t.Errorf("rotini exited with %d after TERM, want 0", code)
	}
}

// workerPids returns the pids of the "worker started" lines of generation
// gen so far.
func (r *rig) workerPids(gen int) []int {
	rx := regexp.MustCompile(`worker started: .*\bgeneration=` + strconv.Itoa(gen) + `\b`)
	var pids []int
	for _, l := range r.logLines() {
		if rx.MatchString(l) {
			if p, err := strconv.Atoi(logField(l, "pid")); err == nil {
				pids = append(pids, p)
			}
		}
	}
	return pids
}

func (r *rig) cleanup() {
	if r.running() {
		r.p.cmd.Process.Signal(syscall.SIGTERM)
		if r.waitExit(stopTimeout) == -2 {
			r.t.Errorf("rotini still running %s after TERM at cleanup", stopTimeout)
		}
	}
	if r.t.Failed() {
		if b, err := os.ReadFile(r.cfgPath); err == nil {
			r.t.Logf("config at the end:\n%s", b)
		}
	}
}

// get fetches the root page on a fresh connection and returns the answer's
// generation; it fails the test on any error.
func (r *rig) get() (gen, worker string) {
	r.t.Helper()
	gen, worker, err := getBody(r.url)
	if err != nil {
		r.t.Fatalf("GET %s: %v", r.url, err)
	}
	return gen, worker
}

// testappServe is the command of the testapp's serve role with flags.
func testappServe(flags ...string) []string {
	return append([]string{testappBin, "serve"}, flags...)
}

// hupAndWait sends HUP and waits for the reload's outcome: the n-th "reload
// done" or "reload failed" line. It returns the line and whether it is a
// success.
func (r *rig) hupAndWait(n int) (string, bool) {
	r.t.Helper()
	r.signal(syscall.SIGHUP)
	return r.waitReload(n)
}

// waitReload waits for the n-th reload outcome ("reload done" or "reload
// failed") and returns the line and whether it is a success.
func (r *rig) waitReload(n int) (string, bool) {
	r.t.Helper()
	line, _ := r.waitLog(reloadOutcomeRE, n, reloadTimeout)
	return line, strings.Contains(line, "reload done")
}

// TestReloadZeroDrop rotates the workers reloadCount times while a load
// client keeps requests in flight, in both connection modes: not one
// request may fail, and every generation must have answered.
func TestReloadZeroDrop(t *testing.T) {
	for _, mode := range []loadMode{newConn, keepAlive} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			port := freeLoopbackPort(t)
			r := startRig(t, port, rigConfig(port, appSpec{Command: testappServe("--notify")}))
			r.waitLog(`generation ready: generation=1\b`, 1, startTimeout)

			l := startLoad(t, r.url, mode, loadClients, 10*time.Minute)
			if !l.waitGeneration(1, startTimeout) {
				t.Fatalf("generation 1 never answered the load: %s", l.snapshot())
			}
			for i := 1; i <= reloadCount; i++ {
				line, ok := r.hupAndWait(i)
				if !ok {
					t.Fatalf("reload %d failed: %s", i, line)
				}
				gen, _ := strconv.Atoi(logField(line, "generation"))
				if gen != i+1 {
					t.Fatalf("reload %d: %q, want generation=%d", i, line, i+1)
				}
				// Wait until the load has met the new generation, so that
				// every generation serves before the next HUP replaces it.
				if !l.waitGeneration(gen, reloadTimeout) {
					t.Fatalf("generation %d never answered the load: %s", gen, l.snapshot())
				}
			}
			s := l.stop()
			requireNoFailures(t, s)
			if s.DistinctGenerations() < reloadCount {
				t.Errorf("the load met %d distinct generations, want at least %d", s.DistinctGenerations(), reloadCount)
			}
			r.stop()
		})
	}
}

// TestNaiveRestartDrops is the negative control of TestReloadZeroDrop: the
// testapp binds its own port (no rotini) and is stopped gracefully and
// started again a few times under the same load. The load client must see
// failures, or it could not have seen any in the zero-drop test either.
func TestNaiveRestartDrops(t *testing.T) {
	const restarts = 5
	for _, mode := range []loadMode{newConn, keepAlive} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			port := freeLoopbackPort(t)
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			srv := startNaiveServer(t, addr)
			l := startLoad(t, "http://"+addr+"/", mode, loadClients, 5*time.Minute)
			for i := 0; i < restarts; i++ {
				if !l.waitRequests(20, startTimeout) {
					t.Fatalf("restart %d: the load got no answers: %s", i, l.snapshot())
				}
				stopNaiveServer(t, srv)
				srv = startNaiveServer(t, addr)
			}
			if !l.waitRequests(20, startTimeout) {
				t.Fatalf("the load got no answers after the last restart: %s", l.snapshot())
			}
			s := l.stop()
			stopNaiveServer(t, srv)
			t.Logf("load across %d naive restarts: %s", restarts, s)
			for _, f := range s.Samples[:min(3, len(s.Samples))] {
				t.Logf("  e.g. %s", f)
			}
			if s.Failures == 0 {
				t.Errorf("no request failed across %d naive restarts: the load client cannot see drops", restarts)
			}
		})
	}
}

// startNaiveServer starts the testapp's serve role on its own port, no
// rotini, and waits until it serves.
func startNaiveServer(t *testing.T, addr string) *proc {
	t.Helper()
	p := start(t, procOptions{}, testappServe("--addr", addr)...)
	p.waitLine(t, "ready", startTimeout)
	return p
}

// stopNaiveServer stops it gracefully (TERM: it drains) and waits.
func stopNaiveServer(t *testing.T, p *proc) {
	t.Helper()
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, stopTimeout); code != 0 {
		t.Errorf("testapp serve exited with %d after TERM, want 0", code)
	}
}

// TestReloadBrokenRelease rewrites the config so that the new release
// cannot become ready — it exits at once, or never gets ready — and checks
// that the reload is refused while the old generation keeps serving without
// a failed request; then a good release goes through.
func TestReloadBrokenRelease(t *testing.T) {
	cases := []struct {
		name   string
		broken appSpec
		reason string // in the "reload failed" line
	}{
		{
			name:   "exits",
			broken: appSpec{Command: testappServe("--notify", "--fail-start", "3")},
			reason: `exit`,
		},
		{
			name: "hangs",
			broken: appSpec{
				Command: testappServe("--notify", "--hang"),
				Ready:   []string{`notify = true`, `min_uptime = "200ms"`, `timeout = "2s"`},
			},
			reason: `not ready`,
		},
	}
	for _, tc := range cases {
		for _, mode := range []loadMode{newConn, keepAlive} {
			t.Run(tc.name+"/"+string(mode), func(t *testing.T) {
				t.Parallel()
				port := freeLoopbackPort(t)
				good := rigConfig(port, appSpec{Command: testappServe("--notify")})
				r := startRig(t, port, good)
				r.waitLog(`generation ready: generation=1\b`, 1, startTimeout)
				l := startLoad(t, r.url, mode, loadClients, 5*time.Minute)
				if !l.waitGeneration(1, startTimeout) {
					t.Fatalf("generation 1 never answered: %s", l.snapshot())
				}

				r.writeConfig(rigConfig(port, tc.broken))
				line, ok := r.hupAndWait(1)
				if ok {
					t.Fatalf("the broken release was accepted: %s", line)
				}
				if got := logField(line, "serving"); got != "1" {
					t.Errorf("reload failed line %q: serving=%q, want 1", line, got)
				}
				if !strings.Contains(line, tc.reason) {
					t.Errorf("reload failed line %q does not give the reason (%q)", line, tc.reason)
				}
				r.waitLog(`generation drained: generation=2\b`, 1, reloadTimeout)
				if gen, _ := r.get(); gen != "1" {
					t.Errorf("after the refused release, generation %s answers, want 1", gen)
				}
				if !l.waitRequests(100, startTimeout) {
					t.Fatalf("the load got no answers after the refused release: %s", l.snapshot())
				}

				r.writeConfig(good)
				line, ok = r.hupAndWait(2)
				if !ok || logField(line, "generation") != "3" {
					t.Fatalf("the good release after the broken one: %q, want reload done: generation=3", line)
				}
				if !l.waitGeneration(3, reloadTimeout) {
					t.Fatalf("generation 3 never answered: %s", l.snapshot())
				}
				s := l.stop()
				requireNoFailures(t, s)
				if n := s.Generations["2"]; n > 0 {
					t.Errorf("the broken generation 2 answered %d requests", n)
				}
				r.stop()
			})
		}
	}
}

// TestReloadSlowRequestsComplete starts slow requests, reloads while they
// are in flight in generation 1, and requires each to complete with 200
// from generation 1: the old generation drains, it is not cut off.
func TestReloadSlowRequestsComplete(t *testing.T) {
	t.Parallel()
	const slow = 8
	port := freeLoopbackPort(t)
	r := startRig(t, port, rigConfig(port, appSpec{Command: testappServe("--notify"), StopTimeout: "20s"}))
	r.waitLog(`generation ready: generation=1\b`, 1, startTimeout)

	type result struct {
		gen string
		err error
	}
	results := make(chan result, slow)
	var written sync.WaitGroup
	var done atomic.Int32
	written.Add(slow)
	for range slow {
		go func() {
			var once sync.Once
			trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { once.Do(written.Done) }}
			ctx := httptrace.WithClientTrace(context.Background(), trace)
			l := &load{url: r.url + "slow?ms=1500"}
			gen, _, err := l.once(ctx, newLoadClient(newConn))
			once.Do(written.Done) // a request that failed before it was written
			done.Add(1)
			results <- result{gen, err}
		}()
	}
	written.Wait()
	// Each request now sits in generation 1 (the only one accepting) or in
	// the shared accept queue, which only generation 1 drains so far.
	r.signal(syscall.SIGHUP)
	r.waitLog(`generation draining: generation=1\b`, 1, reloadTimeout)
	inFlight := slow - int(done.Load())
	if line, ok := r.waitReload(1); !ok {
		t.Fatalf("reload: %s", line)
	}
	for range slow {
		res := <-results
		if res.err != nil {
			t.Errorf("slow request in flight during the reload failed: %v", describeErr(res.err))
		} else if res.gen != "1" {
			t.Errorf("slow request sent before the reload was answered by generation %s, want 1", res.gen)
		}
	}
	if inFlight == 0 {
		t.Fatalf("every slow request had completed before generation 1 began draining: the test proved nothing")
	}
	t.Logf("%d of %d slow requests were in flight when generation 1 began draining", inFlight, slow)
	r.waitLog(`generation drained: generation=1\b`, 1, reloadTimeout)
	if gen, _ := r.get(); gen != "2" {
		t.Errorf("after the reload generation %s answers, want 2", gen)
	}
	r.stop()
}

// TestReloadKillsWorkerIgnoringTerm: a worker that ignores TERM is killed
// stop_timeout after the reload, and its generation is reported drained.
func TestReloadKillsWorkerIgnoringTerm(t *testing.T) {
	t.Parallel()
	port := freeLoopbackPort(t)
	r := startRig(t, port, rigConfig(port, appSpec{
		Command:     testappServe("--notify", "--ignore-term"),
		StopTimeout: "1s",
	}))
	r.waitLog(`generation ready: generation=1\b`, 1, startTimeout)
	old := r.workerPids(1)
	if len(old) != 2 {
		t.Fatalf("generation 1 has pids %v, want 2 workers", old)
	}
	if line, ok := r.hupAndWait(1); !ok {
		t.Fatalf("reload: %s", line)
	}
	r.waitOut(`^signal TERM$`, 2, reloadTimeout) // both old workers got TERM and ignored it
	r.waitLog(`stop timeout: killing workers: .*generation=1\b`, 1, reloadTimeout)
	r.waitLog(`generation drained: generation=1\b`, 1, reloadTimeout)
	for _, pid := range old {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("worker pid %d of generation 1 still exists after the generation drained (kill 0: %v)", pid, err)
		}
	}
	if gen, _ := r.get(); gen != "2" {
		t.Errorf("after the reload generation %s answers, want 2", gen)
	}
	// Generation 2 ignores TERM too: rotini's own stop kills it after 1s.
	r.stop()
}

// TestCrashLoopExitsWithWorkerCode: a worker that keeps exiting 7 ends
// rotini with code 7 after crash_limit deaths, so Docker's restart policy
// applies.
func TestCrashLoopExitsWithWorkerCode(t *testing.T) {
	t.Parallel()
	port := freeLoopbackPort(t)
	r := startRig(t, port, rigConfig(port, appSpec{
		Command: []string{testappBin, "exit", "7"},
		Workers: 1,
		Extra:   []string{`crash_limit = 3`, `crash_window = "60s"`, `restart_backoff = "50ms"`},
		Ready:   []string{`min_uptime = "200ms"`},
	}))
	r.waitLog(`crash loop: stopping rotini`, 1, startTimeout)
	if code := r.waitExit(stopTimeout); code != 7 {
		t.Errorf("rotini exited with %d after a crash loop of exit 7, want 7", code)
	}
	if n := r.countLog(`worker started: `); n != 3 {
		t.Errorf("%d workers started before the crash loop ended rotini, want crash_limit = 3", n)
	}
}

// TestScaleTTINTTOU: TTIN adds a third worker that answers; TTOU removes it
// again; no request fails meanwhile.
func TestScaleTTINTTOU(t *testing.T) {
	t.Parallel()
	port := freeLoopbackPort(t)
	r := startRig(t, port, rigConfig(port, appSpec{Command: testappServe("--notify")}))
	r.waitLog(`generation ready: generation=1\b`, 1, startTimeout)
	l := startLoad(t, r.url, newConn, loadClients, 5*time.Minute)

	r.signal(syscall.SIGTTIN)
	r.waitLog(`worker ready: generation=1 worker=2\b`, 1, startTimeout)
	all3 := func(s loadStats) bool { return s.Workers["1/0"] > 0 && s.Workers["1/1"] > 0 && s.Workers["1/2"] > 0 }
	if !l.waitFor(startTimeout, all3) {
		t.Fatalf("after TTIN, not all of workers 0, 1, 2 answered: %v", l.snapshot().Workers)
	}

	r.signal(syscall.SIGTTOU)
	r.waitLog(`worker exited: generation=1 worker=2\b`, 1, reloadTimeout)
	s := l.stop()
	requireNoFailures(t, s)

	after := startLoad(t, r.url, newConn, loadClients, 5*time.Minute)
	if !after.waitRequests(500, startTimeout) {
		t.Fatalf("no answers after TTOU: %s", after.snapshot())
	}
	s = after.stop()
	requireNoFailures(t, s)
	if n := s.Workers["1/2"]; n > 0 {
		t.Errorf("worker 2 answered %d requests after TTOU", n)
	}
	if s.Workers["1/0"] == 0 || s.Workers["1/1"] == 0 {
		t.Errorf("after TTOU workers 0 and 1 should both answer: %v", s.Workers)
	}
	r.stop()
}

// TestReloadInvalidConfigKeepsServing: a syntax error in the config makes a
// HUP fail with the diagnostics logged; the old generation keeps serving,
// and a later HUP with a valid config works.
func TestReloadInvalidConfigKeepsServing(t *testing.T) {
	t.Parallel()
	port := freeLoopbackPort(t)
	good := rigConfig(port, appSpec{Command: testappServe("--notify")})
	r := startRig(t, port, good)
	r.waitLog(`generation ready: generation=1\b`, 1, startTimeout)
	l := startLoad(t, r.url, newConn, loadClients, 5*time.Minute)

	r.writeConfig(good + "\napp \"broken\" {\n  command = [\n")
	r.signal(syscall.SIGHUP)
	r.waitLog(`config invalid`, 1, reloadTimeout)
	if gen, _ := r.get(); gen != "1" {
		t.Errorf("after the invalid config, generation %s answers, want 1", gen)
	}
	if n := r.countLog(`generation starting: generation=2\b`); n > 0 {
		t.Errorf("an invalid config started generation 2")
	}
	if !l.waitRequests(100, startTimeout) {
		t.Fatalf("no answers after the invalid config: %s", l.snapshot())
	}

	r.writeConfig(good)
	line, ok := r.hupAndWait(1)
	if !ok || logField(line, "generation") != "2" {
		t.Fatalf("the valid config after the invalid one: %q, want reload done: generation=2", line)
	}
	if !l.waitGeneration(2, reloadTimeout) {
		t.Fatalf("generation 2 never answered: %s", l.snapshot())
	}
	requireNoFailures(t, l.stop())
	r.stop()
}

// TestReloadDuringBoot: a HUP that arrives before the first generation is
// ready is queued, not lost nor racing it: generation 1 gets ready, then
// generation 2 replaces it, and rotini keeps running.
func TestReloadDuringBoot(t *testing.T) {
	t.Parallel()
	port := freeLoopbackPort(t)
	r := startRig(t, port, rigConfig(port, appSpec{Command: testappServe("--notify", "--boot-delay", "2s")}))
	r.waitLog(`worker started: generation=1\b`, 2, startTimeout)
	hupAt := len(r.logLines())
	r.signal(syscall.SIGHUP)

	_, readyAt := r.waitLog(`generation ready: generation=1\b`, 1, startTimeout)
	if readyAt < hupAt {
		t.Fatalf("generation 1 was ready before the HUP; the test proved nothing")
	}
	line, ok := r.waitReload(1)
	if !ok || logField(line, "generation") != "2" {
		t.Fatalf("the queued reload: %q, want reload done: generation=2", line)
	}
	_, startAt := r.waitLog(`reload starting`, 1, reloadTimeout)
	if startAt < readyAt {
		t.Errorf("the reload started (log line %d) before generation 1 was ready (line %d)", startAt, readyAt)
	}
	if gen, _ := r.get(); gen != "2" {
		t.Errorf("after the queued reload generation %s answers, want 2", gen)
	}
	if n := r.countLog(reloadOutcomeRE); n != 1 {
		t.Errorf("%d reloads reported, want exactly 1", n)
	}
	if !r.running() {
		t.Fatalf("rotini exited with %d", r.exitCode())
	}
	r.stop()
}
