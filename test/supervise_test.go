package test

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Supervision of config-mode workers: what counts as a crash, and what a
// generation leaves behind.

// TestBurstOfDeathsIsOneCrash: one event that kills every worker at once
// (an OOM kill, an operator's kill) is one crash toward crash_limit, not
// one per worker, and each worker slot restarts after the base backoff
// instead of a backoff that doubles across different workers.
func TestBurstOfDeathsIsOneCrash(t *testing.T) {
	t.Parallel()
	port := freeLoopbackPort(t)
	r := startRig(t, port, rigConfig(port, appSpec{
		Command: testappServe("--notify"),
		Workers: 4,
		Extra:   []string{`crash_limit = 3`, `crash_window = "60s"`, `restart_backoff = "500ms"`, `restart_backoff_max = "30s"`},
	}))
	r.waitLog(`generation ready: generation=1\b`, 1, startTimeout)
	pids := r.workerPids(1)
	if len(pids) != 4 {
		t.Fatalf("generation 1 has pids %v, want 4 workers", pids)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill -KILL %d: %v", pid, err)
		}
	}
	for i := 0; i < 4; i++ {
		r.waitLog(`worker ready: generation=1 worker=`+strconv.Itoa(i)+`\b`, 2, reloadTimeout)
	}
	if !r.running() {
		t.Fatalf("rotini exited with %d after one kill of every worker", r.exitCode())
	}
	if n := r.countLog(`crash loop`); n != 0 {
		t.Errorf("one kill of every worker was taken for a crash loop")
	}
	restarts := 0
	for _, l := range r.logLines() {
		if m := restartLineRE.FindString(l); m != "" {
			restarts++
			if in := logField(l, "in"); in != "500ms" {
				t.Errorf("restart after the burst %q: in=%s, want the base backoff 500ms", l, in)
			}
		}
	}
	if restarts != 4 {
		t.Errorf("%d restarts logged, want 4", restarts)
	}
	if gen, _ := r.get(); gen != "1" {
		t.Errorf("generation %s answers after the restarts, want 1", gen)
	}
	r.stop()
}

// TestOneWorkerCrashLoopAmongHealthy: a single worker slot that keeps
// dying still ends rotini with its exit code although its three siblings
// serve, and its own backoff doubles.
func TestOneWorkerCrashLoopAmongHealthy(t *testing.T) {
	t.Parallel()
	port := freeLoopbackPort(t)
	script := `[ "$ROTINI_WORKER" != 0 ] || exit 7; exec ` + testappBin + ` serve --notify`
	r := startRig(t, port, rigConfig(port, appSpec{
		Command: []string{"/bin/sh", "-c", script},
		Workers: 4,
		Extra:   []string{`crash_limit = 3`, `crash_window = "60s"`, `restart_backoff = "50ms"`, `restart_backoff_max = "30s"`},
		Ready:   []string{`min_uptime = "200ms"`},
	}))
	r.waitLog(`crash loop: stopping rotini`, 1, startTimeout)
	if code := r.waitExit(stopTimeout); code != 7 {
		t.Errorf("rotini exited with %d after worker 0's crash loop of exit 7, want 7", code)
	}
	var delays []string
	for _, l := range r.logLines() {
		if restartLineRE.MatchString(l) {
			if w := logField(l, "worker"); w != "0" {
				t.Errorf("worker %s restarted, but only worker 0 died: %s", w, l)
			}
			delays = append(delays, logField(l, "in"))
		}
	}
	if len(delays) != 2 || delays[0] != "50ms" || delays[1] != "100ms" {
		t.Errorf("worker 0 restarted after %v, want [50ms 100ms] before the third death", delays)
	}
}

// restartLineRE matches rotini's "restarting worker" log line.
var restartLineRE = regexp.MustCompile(`restarting worker: `)

// helperLineRE matches the line of testapp's detached helper.
var helperLineRE = regexp.MustCompile(`^helper pid=(\d+) gen=(\d+)$`)

// helpers maps each generation to the pids of the helpers that said so on
// stdout so far.
func (r *rig) helpers() map[int][]int {
	out := map[int][]int{}
	for _, l := range r.p.stdout.lines() {
		if m := helperLineRE.FindStringSubmatch(l); m != nil {
			pid, _ := strconv.Atoi(m[1])
			gen, _ := strconv.Atoi(m[2])
			out[gen] = append(out[gen], pid)
		}
	}
	return out
}

// TestDetachedHelpersStopWithTheirGeneration: each worker starts a helper
// in a session of its own (setsid) that holds the listening socket. When a
// generation drains, its helpers are stopped with it, and the generation is
// reported drained only once they are gone: after 5 reloads only the
// serving generation's helpers exist.
func TestDetachedHelpersStopWithTheirGeneration(t *testing.T) {
	t.Parallel()
	const reloads = 5
	port := freeLoopbackPort(t)
	r := startRig(t, port, rigConfig(port, appSpec{Command: testappServe("--notify", "--helper")}))
	r.waitLog(`generation ready: generation=1\b`, 1, startTimeout)
	r.waitOut(`^helper pid=\d+ gen=1$`, 2, startTimeout)
	for i := 1; i <= reloads; i++ {
		if line, ok := r.hupAndWait(i); !ok {
			t.Fatalf("reload %d: %s", i, line)
		}
		r.waitOut(`^helper pid=\d+ gen=`+strconv.Itoa(i+1)+`$`, 2, reloadTimeout)
		r.waitLog(`generation drained: generation=`+strconv.Itoa(i)+`\b`, 1, reloadTimeout)
		// Checked at once: "drained" must mean the helpers are gone.
		for _, pid := range r.helpers()[i] {
			if alive(pid) {
				t.Errorf("helper %d of generation %d still runs after its generation drained", pid, i)
			}
		}
	}
	hs := r.helpers()
	for gen := 1; gen <= reloads+1; gen++ {
		if len(hs[gen]) != 2 {
			t.Fatalf("generation %d has helpers %v, want 2", gen, hs[gen])
		}
		for _, pid := range hs[gen] {
			if want := gen == reloads+1; alive(pid) != want {
				t.Errorf("helper %d of generation %d: alive %t, want %t (serving generation %d)", pid, gen, alive(pid), want, reloads+1)
			}
		}
	}
	if gen, _ := r.get(); gen != strconv.Itoa(reloads+1) {
		t.Errorf("generation %s answers, want %d", gen, reloads+1)
	}
	r.stop()
	for _, pid := range hs[reloads+1] {
		if alive(pid) {
			t.Errorf("helper %d of the last generation outlived rotini", pid)
		}
	}
}

// TestDetachedHelperIgnoringTermIsKilled: a helper that ignores the stop
// signal is SIGKILLed at stop_timeout with its generation, which is
// reported drained only then.
func TestDetachedHelperIgnoringTermIsKilled(t *testing.T) {
	t.Parallel()
	port := freeLoopbackPort(t)
	r := startRig(t, port, rigConfig(port, appSpec{
		Command:     testappServe("--notify", "--helper", "--helper-ignore-term"),
		StopTimeout: "1s",
	}))
	r.waitLog(`generation ready: generation=1\b`, 1, startTimeout)
	r.waitOut(`^helper pid=\d+ gen=1$`, 2, startTimeout)
	if line, ok := r.hupAndWait(1); !ok {
		t.Fatalf("reload: %s", line)
	}
	r.waitLog(`generation drained: generation=1\b`, 1, reloadTimeout)
	for _, pid := range r.helpers()[1] {
		if alive(pid) {
			t.Errorf("helper %d of generation 1 still runs after its generation drained", pid)
		}
	}
	if n := r.countLog(`stop timeout: killed helpers of the generation: generation=1 helpers=2\b`); n != 1 {
		t.Errorf("%d log lines say generation 1's 2 helpers were killed at the stop timeout, want 1", n)
	}
	r.waitOut(`^signal TERM$`, 2, reloadTimeout) // the helpers got TERM first and ignored it
	r.stop()
}

// TestForkEAGAINIsNotACrash: when the process limit is reached, a worker
// cannot be started (fork or exec fails with EAGAIN). That is resource
// exhaustion, not a crash loop: rotini keeps retrying with backoff, logs
// it once at error rather than once per try, and the workers start as soon
// as the limit allows.
//
// The limit is a soft RLIMIT_NPROC of 0, set with prlimit(1) on rotini, for
// workers that run as nobody: rotini itself is root and exempt, and a
// process that becomes nobody under it fails its execve with EAGAIN. (A
// pids cgroup is the other way to reach the limit, but rotini's own Go
// runtime threads count in the same cgroup, and a runtime that cannot
// create a thread aborts: a test could not tell rotini's fault from the
// limit's.)
func TestForkEAGAINIsNotACrash(t *testing.T) {
	t.Parallel()
	if os.Getuid() != 0 {
		t.Skip("needs root to run workers as nobody")
	}
	if _, err := user.Lookup("nobody"); err != nil {
		t.Skip("needs the user nobody")
	}
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("needs prlimit (util-linux)")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "rotini.hcl")
	src := `
app "bg" {
  command             = ["/bin/sleep", "1000"]
  user                = "nobody"
  workers             = 2
  crash_limit         = 2
  restart_backoff     = "50ms"
  restart_backoff_max = "200ms"
  ready {
    min_uptime = "100ms"
  }
}
log {
  level = "debug"
}
`
	if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, procOptions{}, "prlimit", "--nproc=0:", rotiniBin, "--control", filepath.Join(dir, "ctl.sock"), "-c", cfg)
	r := &rig{t: t, p: p, cfgPath: cfg}
	t.Cleanup(r.cleanup)

	r.waitLog(`\[ERROR\] .*resource exhaustion: cannot fork a worker`, 1, startTimeout)
	// More failed tries than crash_limit. (RLIMIT_NPROC = 0 still lets the
	// user's first process in: the kernel compares the count before the
	// new one is added. So worker 0 may start; worker 1 cannot.)
	r.waitLog(`fork failed again: `, 5, startTimeout)
	if !r.running() {
		t.Fatalf("rotini exited with %d while it could not fork", r.exitCode())
	}
	if n := r.countLog(`\[ERROR\]`); n != 1 {
		t.Errorf("%d error lines while the process limit was reached, want 1", n)
	}
	if n := r.countLog(`crash loop|restarting worker`); n != 0 {
		t.Errorf("failed forks were counted as crashes")
	}

	// Raise the soft limit to the hard one, which --nproc=0: kept (raising
	// a hard limit may be refused even to root in a user namespace).
	var lim unix.Rlimit
	if err := unix.Prlimit(p.cmd.Process.Pid, unix.RLIMIT_NPROC, nil, &lim); err != nil {
		t.Fatalf("prlimit: %v", err)
	}
	lim.Cur = lim.Max
	if err := unix.Prlimit(p.cmd.Process.Pid, unix.RLIMIT_NPROC, &lim, nil); err != nil {
		t.Fatalf("prlimit: %v", err)
	}
	r.waitLog(`workers start again after resource exhaustion`, 1, startTimeout)
	r.waitLog(`generation ready: generation=1\b`, 1, startTimeout)
	r.stop()
}

// notifyRig starts rotini with the app "web" serving on a listener (its
// command webCmd, readiness by READY=1) and a second app, "other", whose
// worker runs otherCmd and says READY=1 itself.
func notifyRig(t *testing.T, port int, webCmd, otherCmd []string) (*rig, func(webCmd []string) string) {
	t.Helper()
	config := func(webCmd []string) string {
		return fmt.Sprintf(`
listen "http" {
  address = "tcp://127.0.0.1:%d"
}
app "web" {
  command = %s
  workers = 2
  listen  = ["http"]
  ready {
    notify     = true
    min_uptime = "200ms"
    timeout    = "5s"
  }
}
app "other" {
  command = %s
  ready {
    notify     = true
    min_uptime = "0s"
  }
}
`, port, hclList(webCmd), hclList(otherCmd))
	}
	return startRig(t, port, config(webCmd)), config
}

// TestNotifyForgeryFromAnotherApp: a worker of app "other" starts children
// that join the process groups of app web's workers (setpgid) and send
// READY=1, to its own NOTIFY_SOCKET and to web's. When web's new release
// never says READY=1 itself, the forgeries must not make it ready: the
// reload times out and rolls back, and generation 1 keeps serving.
func TestNotifyForgeryFromAnotherApp(t *testing.T) {
	t.Parallel()
	port := freeLoopbackPort(t)
	r, config := notifyRig(t, port, testappServe("--notify"), []string{testappBin, "forge", "--app", "web"})
	r.waitLog(`rotini\.web: generation ready: generation=1\b`, 1, startTimeout)

	r.writeConfig(config(testappServe("--notify", "--hang")))
	r.signal(syscall.SIGHUP)
	r.waitOut(`^forged pid=\d+ gen=2$`, 2, reloadTimeout) // both new workers
	line, ok := r.waitReload(1)
	if ok {
		t.Fatalf("a release that never says READY=1 was made ready by another app's forged READY=1: %s", line)
	}
	if !strings.Contains(line, "not ready") {
		t.Errorf("reload failed line %q, want the readiness timeout", line)
	}
	if gen, _ := r.get(); gen != "1" {
		t.Errorf("generation %s answers after the refused release, want 1", gen)
	}
	r.stop()
}

// TestNotifyFloodDoesNotBlockReload: the worker of app "other" floods its
// notify socket from 4 goroutines. rotini drops what exceeds the per-sender
// rate and pauses reading that socket past its own rate, says each once,
// and app web's reload completes meanwhile. Each app's socket is its own,
// mode 0600.
func TestNotifyFloodDoesNotBlockReload(t *testing.T) {
	t.Parallel()
	port := freeLoopbackPort(t)
	r, _ := notifyRig(t, port, testappServe("--notify"), []string{testappBin, "flood"})
	r.waitLog(`rotini\.web: generation ready: generation=1\b`, 1, startTimeout)
	r.waitOut(`^flooding$`, 1, startTimeout)
	r.waitLog(`notify socket flooded`, 1, startTimeout)

	socks := map[string]bool{}
	for _, pid := range r.workerPids(1) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil {
			continue // the flood's worker or a web worker that is gone
		}
		for _, kv := range strings.Split(string(b), "\x00") {
			if v, ok := strings.CutPrefix(kv, "NOTIFY_SOCKET="); ok {
				socks[v] = true
			}
		}
	}
	if len(socks) != 2 {
		t.Errorf("the workers of web and other have notify sockets %v, want one per app", socks)
	}
	for s := range socks {
		if fi, err := os.Stat(s); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("notify socket %s: %v, %v; want mode 0600", s, fi.Mode(), err)
		}
	}

	for i := 1; i <= 3; i++ {
		line, ok := r.hupAndWait(i)
		if !ok || logField(line, "generation") != strconv.Itoa(i+1) {
			t.Fatalf("reload %d under a notify flood: %q, want reload done: generation=%d", i, line, i+1)
		}
	}
	if n := r.countLog(`notify socket flooded: dropping`); n != 1 {
		t.Errorf("%d log lines about the flooding sender, want 1 (once per sender)", n)
	}
	if n := r.countLog(`notify socket flooded: reading paused`); n != 1 {
		t.Errorf("%d log lines about pausing the flooded socket, want 1", n)
	}
	r.stop()
}

// TestNotifySocketOwnedByAppUser: with `user = "nobody"`, the app's notify
// socket (mode 0600) belongs to nobody, so its workers' READY=1 gets
// through; the contrast is TestNotifyFloodDoesNotBlockReload's check that
// the socket is 0600, which would refuse them if it were rotini's.
func TestNotifySocketOwnedByAppUser(t *testing.T) {
	t.Parallel()
	if os.Getuid() != 0 {
		t.Skip("needs root to run workers as nobody")
	}
	if _, err := user.Lookup("nobody"); err != nil {
		t.Skip("needs the user nobody")
	}
	// Debian's, not one under root's home that nobody cannot run.
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skip("needs /usr/bin/python3")
	}
	send := `import os, socket, time; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.sendto(b"READY=1", os.environ["NOTIFY_SOCKET"]); print("sent as uid %d" % os.getuid(), flush=True); time.sleep(1000)`
	dir := t.TempDir()
	cfg := filepath.Join(dir, "rotini.hcl")
	src := fmt.Sprintf(`
app "py" {
  command = [%q, "-c", %q]
  user    = "nobody"
  ready {
    notify     = true
    min_uptime = "0s"
    timeout    = "20s"
  }
}
`, py, send)
	if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	p := rotini(t, subreaper, "--control", filepath.Join(dir, "ctl.sock"), "-c", cfg)
	p.waitLine(t, "sent as uid 65534", waitDeadline)
	p.waitStderrLine(t, regexp.MustCompile(`generation ready: generation=1\b`), waitDeadline)
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, waitDeadline); code != 0 {
		t.Errorf("rotini exited %d after TERM, want 0", code)
	}
}

// TestDetachedHelpersStopAsPID1: the same as
// TestDetachedHelpersStopWithTheirGeneration with rotini as PID 1 of a PID
// namespace, where every orphan is adopted by it by nature: after 5
// reloads, only the serving generation's 2 helpers exist.
func TestDetachedHelpersStopAsPID1(t *testing.T) {
	t.Parallel()
	requirePIDNamespace(t)
	const reloads = 5
	port := freeLoopbackPort(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "rotini.hcl")
	ctl := filepath.Join(dir, "ctl.sock")
	if err := os.WriteFile(cfg, []byte(rigConfig(port, appSpec{Command: testappServe("--notify", "--helper")})), 0o644); err != nil {
		t.Fatal(err)
	}
	p := pid1(t, "--control", ctl, "-c", cfg)
	p.waitStderrLine(t, regexp.MustCompile(`generation ready: generation=1\b`), waitDeadline)
	for i := 1; i <= reloads; i++ {
		if code, stderr, err := runToExit(rotiniBin, "reload", "--wait", "--control", ctl); err != nil || code != 0 {
			t.Fatalf("reload %d: exit %d (%v) %s", i, code, err, stderr)
		}
		p.waitStderrLine(t, regexp.MustCompile(`generation drained: generation=`+strconv.Itoa(i)+`\b`), waitDeadline)
	}
	var helpers []string
	for _, pid := range descendants(p.target(t)) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if args := strings.Split(string(b), "\x00"); len(args) > 1 && args[1] == "helper" && alive(pid) {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
			gen := ""
			for _, kv := range strings.Split(string(b), "\x00") {
				if v, ok := strings.CutPrefix(kv, "ROTINI_GENERATION="); ok {
					gen = v
				}
			}
			helpers = append(helpers, fmt.Sprintf("pid %d gen %s", pid, gen))
		}
	}
	want := strconv.Itoa(reloads + 1)
	if len(helpers) != 2 || !strings.HasSuffix(helpers[0], " gen "+want) || !strings.HasSuffix(helpers[1], " gen "+want) {
		t.Errorf("helpers after %d reloads: %v, want the 2 of generation %s", reloads, helpers, want)
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, waitDeadline); code != 0 {
		t.Errorf("rotini exited %d after TERM, want 0", code)
	}
}

// TestCheckBoundsWorkers: `rotini check` refuses more than 1000 workers,
// pointing at the value's file:line, and accepts 1000.
func TestCheckBoundsWorkers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		workers int
		code    int
	}{{100000, 78}, {1000, 0}} {
		cfg := filepath.Join(dir, fmt.Sprintf("w%d.hcl", tc.workers))
		src := fmt.Sprintf("app \"web\" {\n  command = [\"true\"]\n  workers = %d\n}\n", tc.workers)
		if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		code, stderr, err := runToExit(rotiniBin, "check", cfg)
		if err != nil {
			t.Fatal(err)
		}
		if code != tc.code {
			t.Errorf("check of workers = %d: exit %d, want %d\n%s", tc.workers, code, tc.code, stderr)
		}
		if tc.code != 0 {
			for _, want := range []string{cfg + ":3,", "Too many workers", "at most 1000"} {
				if !strings.Contains(stderr, want) {
					t.Errorf("check of workers = %d: diagnostics lack %q:\n%s", tc.workers, want, stderr)
				}
			}
		}
	}
}
