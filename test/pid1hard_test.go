package test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/control"
	"github.com/rotini-dev/rotini/procfs"
)

// Tests that rotini, as an init, cannot be wedged or killed by what happens
// around it: a log reader that stops, signals that crash other programs, a
// stopped child, the death of rotini itself.

// stalled is a rotini whose stderr is a pipe that nobody reads until the
// test calls drain: the stuck log shipper, or Docker's blocking log mode.
type stalled struct {
	*proc
	errR *os.File
}

// startStalled starts rotini with args in mode m, its stderr a pipe of the
// smallest size the kernel allows, left unread.
func startStalled(t *testing.T, m runMode, args ...string) *stalled {
	t.Helper()
	if m == asPID1 {
		requirePIDNamespace(t)
	}
	argv := rotiniArgv(m, args...)
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	// One page: the reader is "gone" after a few lines, not after 64 KiB.
	if _, err := unix.FcntlInt(errW.Fd(), unix.F_SETPIPE_SZ, os.Getpagesize()); err != nil {
		t.Fatalf("F_SETPIPE_SZ: %v", err)
	}
	p := &proc{
		name:   filepath.Base(argv[0]),
		cmd:    exec.Command(argv[0], argv[1:]...),
		inNS:   argv[0] == "unshare",
		exited: make(chan struct{}),
		stderr: newLineStream(strings.NewReader("")),
	}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = outW, errW
	err = p.cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		t.Fatalf("start %q: %v", argv, err)
	}
	p.stdout = newLineStream(outR)
	go func() {
		p.cmd.Wait() // the test's own child: nothing else waits for it
		p.state = p.cmd.ProcessState
		close(p.exited)
	}()
	s := &stalled{proc: p, errR: errR}
	t.Cleanup(func() {
		if !p.hasExited() {
			p.killTree()
			<-p.exited
		}
		errR.Close()
		if t.Failed() {
			t.Logf("%s: %s\n%s", p.name, p.cmd.Args, p.transcript())
		}
	})
	return s
}

// drain starts reading rotini's stderr, from the first line still in the
// pipe.
func (s *stalled) drain() { s.stderr = newLineStream(s.errR) }

// floodSignals are forwarded by rotini in both modes and printed by the
// test app; distinct, so a burst of them is not merged into one pending
// signal.
var floodSignals = []syscall.Signal{syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH, 35, 36, 37, 38, 39, 40}

// flood sends bursts of floodSignals and waits for perSignal "signal" lines
// of the workload for each, until rotini has logged well past the log
// buffer's bound: at debug level each forwarded signal costs at least one
// line of more than 60 bytes. On an init that blocks on its log, the
// bursts stop being forwarded once the pipe is full, and this fails.
func (s *stalled) flood(t *testing.T, perSignal int) {
	t.Helper()
	const bound = 256 << 10 // logsink.Bound
	rounds := 2 * (bound + os.Getpagesize()) / (60 * len(floodSignals))
	sig := regexp.MustCompile(`^signal `)
	for i := 0; i < rounds; i++ {
		for _, g := range floodSignals {
			s.signal(t, g)
		}
		for range len(floodSignals) * perSignal {
			s.waitLine(t, sig, waitDeadline)
		}
	}
}

// A log reader that stops reading never stalls rotini: with its stderr
// full, rotini still forwards signals, reaps, answers its control socket,
// and drains on TERM; lines that did not fit are dropped, and once the
// reader reads again, one line says how many.
func TestStalledLogReader(t *testing.T) {
	t.Run("zero-config", func(t *testing.T) {
		s := startStalled(t, asPID1, cmdline([]string{"--log-level", "debug"}, app("signals")...)...)
		s.waitLine(t, "ready", waitDeadline)
		s.flood(t, 1)
		// The child still gets TERM, and its exit is reaped and reported.
		s.signal(t, syscall.SIGTERM)
		s.waitLine(t, "signal TERM", waitDeadline)
		s.drain()
		if code := s.wait(t, waitDeadline); code != 128+int(syscall.SIGTERM) {
			t.Fatalf("rotini exited %d, want the child's %d", code, 128+int(syscall.SIGTERM))
		}
		checkDroppedLine(t, s)
	})
	t.Run("config", func(t *testing.T) {
		dir := t.TempDir()
		port := freeLoopbackPort(t)
		cfg := filepath.Join(dir, "rotini.hcl")
		if err := os.WriteFile(cfg, []byte(rigConfig(port, appSpec{Command: testappServe("--notify"), Workers: 1})), 0o644); err != nil {
			t.Fatal(err)
		}
		sock := filepath.Join(dir, "ctl.sock")
		s := startStalled(t, subreaper, "--log-level", "debug", "--control", sock, "-c", cfg)
		s.waitLine(t, "ready", startTimeout)
		s.flood(t, 1)
		if res := rotiniCLI(t, nil, "health", "--control", sock); res.code != 0 {
			t.Fatalf("health with a stalled log reader: %s", res)
		}
		// A worker that dies is reaped and replaced.
		old := workerPid(t, sock)
		if err := unix.Kill(old, unix.SIGKILL); err != nil {
			t.Fatal(err)
		}
		s.waitLine(t, "ready", startTimeout)
		eventually(t, waitDeadline, "a new worker serves", func() (bool, string) {
			pid := workerPid(t, sock)
			return pid != old && pid != 0, fmt.Sprintf("worker pid %d", pid)
		})
		s.signal(t, syscall.SIGTERM)
		s.waitLine(t, "draining", waitDeadline)
		s.drain()
		if code := s.wait(t, stopTimeout); code != 0 {
			t.Fatalf("rotini exited %d after TERM, want 0", code)
		}
		checkDroppedLine(t, s)
	})
}

// checkDroppedLine finds the line that stands for the dropped lines, with
// a count above zero.
func checkDroppedLine(t *testing.T, s *stalled) {
	t.Helper()
	line := s.waitStderrLine(t, regexp.MustCompile(`log lines dropped: .*\bdropped=[0-9]+`), waitDeadline)
	if n, _ := strconv.Atoi(logField(line, "dropped")); n <= 0 {
		t.Fatalf("dropped count: %q", line)
	}
}

// workerPid is the pid of the serving generation's first ready worker, as
// `rotini status --json` reports it (0 when there is none).
func workerPid(t *testing.T, sock string) int {
	t.Helper()
	for _, w := range servingWorkers(t, sock) {
		if w.State == "ready" {
			return w.Pid
		}
	}
	return 0
}

// servingWorkers are the workers of the serving generation, by index.
func servingWorkers(t *testing.T, sock string) map[int]control.WorkerStatus {
	t.Helper()
	res := rotiniCLI(t, nil, "status", "--json", "--control", sock)
	var st control.Status
	if err := json.Unmarshal([]byte(res.stdout), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, res)
	}
	ws := map[int]control.WorkerStatus{}
	for _, a := range st.Apps {
		for _, g := range a.Generations {
			if g.Number == a.Serving {
				for _, w := range g.Workers {
					ws[w.Index] = w
				}
			}
		}
	}
	return ws
}

// Signals that crash or kill other Go programs when sent with kill(2) —
// the synchronous fault signals, 32-34 (reserved by the C libraries and the
// Go runtime) and PROF — are ordinary signals for rotini: forwarded to the
// child like any other, and rotini lives on.
func TestFaultAndReservedSignalsForwarded(t *testing.T) {
	for _, m := range bothModes {
		t.Run(m.String(), func(t *testing.T) {
			t.Parallel()
			p := rotini(t, m, cmdline(nil, app("signals")...)...)
			p.waitLine(t, "ready", waitDeadline)
			for _, sig := range []syscall.Signal{unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE, unix.SIGILL, unix.SIGTRAP, unix.SIGSYS} {
				p.signal(t, sig)
				p.waitLine(t, "signal "+strings.TrimPrefix(unix.SignalName(sig), "SIG"), waitDeadline)
			}
			p.signal(t, syscall.SIGTERM)
			expectExited(t, p, 128+int(syscall.SIGTERM))
		})
		// The Go test app cannot see 32-34 (its runtime keeps them), so
		// the child is sleep, which dies of them: rotini, alive, reports
		// that as its own exit code.
		for _, sig := range []syscall.Signal{32, 33, 34, unix.SIGPROF} {
			t.Run(fmt.Sprintf("%s/%d", m, sig), func(t *testing.T) {
				t.Parallel()
				p := rotini(t, m, "--log-level", "info", "--", "sleep", "1000")
				p.waitStderrLine(t, regexp.MustCompile(`rotini\.child: started`), waitDeadline)
				// When rotini inherited ignored signals (a background job
				// of a shell ignores INT and QUIT), the child starts as
				// rotini's own binary, which restores them and execs sleep;
				// until then the Go runtime in it keeps 33 and PROF.
				eventually(t, waitDeadline, "the child is sleep", func() (bool, string) {
					for _, k := range children(p.target(t)) {
						if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", k)); strings.HasSuffix(exe, "/sleep") {
							return true, ""
						}
					}
					return false, "not yet"
				})
				p.signal(t, sig)
				expectExited(t, p, 128+int(sig))
			})
		}
	}
}

// expectExited waits for rotini to exit by itself (not killed by a signal)
// with code.
func expectExited(t *testing.T, p *proc, code int) {
	t.Helper()
	got := p.wait(t, waitDeadline)
	ws, _ := p.state.Sys().(syscall.WaitStatus)
	if got != code || !ws.Exited() {
		t.Fatalf("rotini: %v (code %d), want an exit with code %d", p.state, got, code)
	}
}

// With `stty tostop`, a write to the terminal from outside its foreground
// group raises SIGTTOU. rotini, whose child holds the foreground, must
// still be able to log (tini ignores TTOU for itself): here the warning
// that precedes the SIGKILL of a child that ignores TERM. rotini runs under
// a job-control shell, as from an interactive one: its process group is
// then not orphaned, so the kernel sends SIGTTOU rather than failing the
// write with EIO, and a rotini that catches SIGTTOU restarts the write
// forever and never sends the SIGKILL.
func TestLogToTerminalWithTostop(t *testing.T) {
	for _, m := range bothModes {
		t.Run(m.String(), func(t *testing.T) {
			t.Parallel()
			if m == asPID1 {
				requirePIDNamespace(t)
			}
			argv := rotiniArgv(m, cmdline([]string{"--stop-timeout", "1s"},
				"sh", "-c", `stty tostop && exec "$0" "$@"`, testappBin, "signals", "--ignore", "TERM")...)
			p := start(t, procOptions{pty: true}, append([]string{"sh", "-c", `set -m; "$@"; echo "rotini exited $?"`, "sh"}, argv...)...)
			p.waitLine(t, "ready", waitDeadline)
			var pid int
			eventually(t, waitDeadline, "rotini runs", func() (bool, string) {
				for _, d := range descendants(p.cmd.Process.Pid) {
					if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", d)); exe == rotiniBin {
						pid = d
						return true, ""
					}
				}
				return false, "no rotini among the shell's descendants"
			})
			if err := unix.Kill(pid, unix.SIGTERM); err != nil {
				t.Fatal(err)
			}
			p.waitLine(t, "signal TERM", waitDeadline)
			p.waitLine(t, regexp.MustCompile(`stop timeout: killing`), waitDeadline)
			p.waitLine(t, fmt.Sprintf("rotini exited %d", 128+int(syscall.SIGKILL)), waitDeadline)
		})
	}
}

// stopProcess SIGSTOPs pid and waits until the kernel shows it stopped.
func stopProcess(t *testing.T, pid int) {
	t.Helper()
	if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitDeadline, fmt.Sprintf("pid %d is stopped", pid), func() (bool, string) {
		st, err := readStat(pid)
		return err == nil && st.state == 'T', fmt.Sprintf("%+v %v", st, err)
	})
}

// A stopped child or worker (SIGSTOP) still drains on a stop: rotini sends
// SIGCONT after the stop signal, so the stop signal is handled now rather
// than left pending until the SIGKILL of the stop timeout.
func TestStoppedChildDrains(t *testing.T) {
	for _, m := range bothModes {
		t.Run("zero-config/"+m.String(), func(t *testing.T) {
			t.Parallel()
			p := startSignals(t, m, nil)
			kids := children(p.target(t))
			if len(kids) != 1 {
				t.Fatalf("rotini has children %v, want one", kids)
			}
			stopProcess(t, kids[0])
			p.signal(t, syscall.SIGTERM)
			p.waitLine(t, "signal TERM", waitDeadline)
			// 143: the child's own exit on TERM; the SIGKILL of the stop
			// timeout (10 s) would make it 137.
			expectExited(t, p, 128+int(syscall.SIGTERM))
		})
	}
	t.Run("config", func(t *testing.T) {
		t.Parallel()
		r := startControlRig(t)
		r.waitLog(`rotini\.web: generation ready: generation=1\b`, 1, startTimeout)
		ws := servingWorkers(t, r.sock)
		if len(ws) != 2 {
			t.Fatalf("workers: %+v", ws)
		}
		for _, w := range ws {
			stopProcess(t, w.Pid)
		}
		// Scaling down stops worker 1, the stop of rotini worker 0: each
		// drains ("drained") instead of being killed at the stop timeout.
		if res := r.ctl("scale", "1"); res.code != 0 {
			t.Fatalf("scale 1: %s", res)
		}
		r.p.waitLine(t, "drained", stopTimeout)
		eventually(t, waitDeadline, "worker 1 is gone", func() (bool, string) {
			return !alive(ws[1].Pid), fmt.Sprintf("pid %d", ws[1].Pid)
		})
		r.signal(syscall.SIGTERM)
		r.p.waitLine(t, "drained", stopTimeout)
		if code := r.p.wait(t, stopTimeout); code != 0 {
			t.Fatalf("rotini exited %d after TERM, want 0", code)
		}
	})
}

// A SIGKILLed rotini that is not PID 1 (the OOM killer, a host supervisor,
// `docker run --init`) takes its workers with it, so the next rotini can
// bind the same port. The workers killed here were started by a reload,
// long after start-up: every fork must come from the thread that lives as
// long as rotini, since the kernel's parent-death signal follows the
// forking thread.
func TestWorkersDieWithKilledRotini(t *testing.T) {
	r := startControlRig(t)
	r.waitLog(`rotini\.web: generation ready: generation=1\b`, 1, startTimeout)
	if line, ok := r.hupAndWait(1); !ok {
		t.Fatalf("reload: %s", line)
	}
	ws := servingWorkers(t, r.sock)
	if len(ws) != 2 {
		t.Fatalf("workers: %+v", ws)
	}
	// Every process rotini started, not only the serving generation: the
	// replaced one may still be draining, and holds a socket of the same
	// reuseport group, so the next rotini could not bind while it lives.
	all := descendants(r.p.target(t))
	for _, w := range ws {
		if !slices.Contains(all, w.Pid) {
			t.Fatalf("serving worker %d (pid %d) is not among rotini's descendants %v", w.Index, w.Pid, all)
		}
	}
	t.Cleanup(func() {
		for _, pid := range all {
			unix.Kill(pid, unix.SIGKILL)
		}
	})
	r.signal(syscall.SIGKILL)
	r.p.wait(t, waitDeadline)
	for _, pid := range all {
		eventually(t, waitDeadline, fmt.Sprintf("process %d that rotini started is gone", pid), func() (bool, string) {
			st, err := readStat(pid)
			return !alive(pid), fmt.Sprintf("%+v %v", st, err)
		})
	}
	next := startRig(t, r.port, rigConfig(r.port, appSpec{Command: testappServe("--notify")}))
	next.waitLog(`rotini\.web: generation ready: generation=1\b`, 1, startTimeout)
}

// The notify directory of a rotini that was SIGKILLed stays in the shared
// runtime directory; the next rotini removes it at start, and leaves those
// of live rotinis alone.
func TestStaleNotifyDirRemoved(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: rotini keeps its sockets in /run/rotini only as root")
	}
	notifyDir := func(r *ctlRig) string {
		ws := servingWorkers(t, r.sock)
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", ws[0].Pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range strings.Split(string(env), "\x00") {
			if v, ok := strings.CutPrefix(kv, "NOTIFY_SOCKET="); ok {
				return filepath.Dir(v)
			}
		}
		t.Fatalf("worker %d has no NOTIFY_SOCKET", ws[0].Pid)
		return ""
	}
	live := startControlRig(t)
	live.waitLog(`rotini\.web: generation ready: generation=1\b`, 1, startTimeout)
	dead := startControlRig(t)
	dead.waitLog(`rotini\.web: generation ready: generation=1\b`, 1, startTimeout)
	liveDir, deadDir := notifyDir(live), notifyDir(dead)
	dead.signal(syscall.SIGKILL)
	dead.p.wait(t, waitDeadline)
	if _, err := os.Stat(deadDir); err != nil {
		t.Fatalf("the dead rotini's notify directory should still be there: %v", err)
	}
	next := startControlRig(t)
	next.waitLog(`rotini\.web: generation ready: generation=1\b`, 1, startTimeout)
	if _, err := os.Stat(deadDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s of the SIGKILLed rotini is still there: %v", deadDir, err)
	}
	if _, err := os.Stat(liveDir); err != nil {
		t.Errorf("%s of a running rotini was removed: %v", liveDir, err)
	}
}

// `nohup rotini -- app`: the app inherits rotini's ignored HUP, as under
// tini, so a HUP forwarded to it does not kill it.
func TestNohupChildIgnoresHUP(t *testing.T) {
	for _, m := range bothModes {
		t.Run(m.String(), func(t *testing.T) {
			t.Parallel()
			args := []string{rotiniBin, "--log-level", "debug", "--", "sh", "-c", "echo ready; exec sleep 1000"}
			var p *proc
			if m == asPID1 {
				requirePIDNamespace(t)
				p = start(t, procOptions{}, unshareArgv(append([]string{"nohup"}, args...)...)...)
			} else {
				p = start(t, procOptions{}, append([]string{"nohup"}, args...)...)
			}
			p.waitLine(t, "ready", waitDeadline)
			p.signal(t, syscall.SIGHUP)
			p.waitStderrLine(t, regexp.MustCompile(`forwarded signal: .*signal=SIGHUP`), waitDeadline)
			p.signal(t, syscall.SIGTERM)
			// 143: sleep lived through the HUP and died of the TERM.
			expectExited(t, p, 128+int(syscall.SIGTERM))
		})
	}
}

// Every process rotini starts — the zero-config child, workers with and
// without sockets, exec probes, before_reload — gets the ignored signals
// rotini inherited (here HUP and TTOU, as a shell's `trap "" HUP TTOU` leaves them),
// and the blocked ones (here USR1 and WINCH; these passed before too, since
// the forking thread's mask carries them, but now the shim sets the mask
// explicitly and must not lose them).
func TestChildrenInheritSignalState(t *testing.T) {
	const (
		wantIgn = 1<<(syscall.SIGHUP-1) | 1<<(syscall.SIGTTOU-1)
		wantBlk = 1<<(syscall.SIGUSR1-1) | 1<<(syscall.SIGWINCH-1)
	)
	// launch runs argv with HUP and TTOU ignored and USR1 and WINCH
	// blocked.
	launch := func(argv ...string) []string {
		return withSignalState([]syscall.Signal{syscall.SIGHUP, syscall.SIGTTOU}, []syscall.Signal{syscall.SIGUSR1, syscall.SIGWINCH}, argv...)
	}
	// report prints "WHO ign=X blk=Y" from /proc/self/status.
	report := func(who string) string {
		return fmt.Sprintf(`echo "%s $(grep -E '^Sig(Ign|Blk)' /proc/self/status | tr -d '\t' | tr '\n' ' ')"`, who)
	}
	check := func(t *testing.T, p *proc, who string) {
		t.Helper()
		line, _, err := nthMatch(p.stdout, regexp.MustCompile("^"+who+" "), 1, startTimeout)
		if err != nil {
			t.Fatalf("no line from the %s: %v\n%s", who, err, p.transcript())
		}
		var blk, ign uint64
		if _, err := fmt.Sscanf(line, who+" SigBlk:%x SigIgn:%x", &blk, &ign); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		// At least these: the test itself may run with more ignored
		// (a background job of a shell ignores INT and QUIT).
		if blk&wantBlk != wantBlk || ign&wantIgn != wantIgn {
			t.Errorf("%s: blocked %x ignored %x, want at least blocked %x ignored %x", who, blk, ign, uint64(wantBlk), uint64(wantIgn))
		}
	}
	t.Run("zero-config", func(t *testing.T) {
		t.Parallel()
		p := start(t, procOptions{}, launch(rotiniBin, "--", "sh", "-c", report("child"))...)
		check(t, p, "child")
		p.wait(t, waitDeadline)
	})
	t.Run("config", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		port := freeLoopbackPort(t)
		cfg := filepath.Join(dir, "rotini.hcl")
		serve := []string{"sh", "-c", report("worker") + `; exec "$0" serve --notify`, testappBin}
		config := rigConfig(port, appSpec{
			Command: serve, Workers: 1,
			Extra: []string{`before_reload = ["sh", "-c", ` + hclString(report("before_reload")) + `]`},
			Ready: []string{`notify = true`, `exec = ["sh", "-c", ` + hclString(report("probe")) + `]`, `timeout = "10s"`},
		}) + `
app "plain" {
  command = ["sh", "-c", ` + hclString(report("plain")+"; exec sleep 1000") + `]
}
`
		if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
		p := start(t, procOptions{}, launch(rotiniBin, "--control", filepath.Join(dir, "ctl.sock"), "-c", cfg)...)
		for _, who := range []string{"worker", "probe", "plain"} {
			check(t, p, who)
		}
		p.waitStderrLine(t, regexp.MustCompile(`rotini\.web: generation ready: generation=1\b`), startTimeout)
		p.signal(t, syscall.SIGHUP)
		check(t, p, "before_reload")
		p.waitStderrLine(t, regexp.MustCompile(`rotini\.web: reload done`), reloadTimeout)
		p.signal(t, syscall.SIGTERM)
		if code := p.wait(t, stopTimeout); code != 0 {
			t.Errorf("rotini exited %d after TERM, want 0", code)
		}
	})
}

// The signals the Go runtime takes over before any code of rotini's runs
// (here TERM, USR2 and QUIT ignored, TERM blocked) reach the child
// exactly as rotini was handed them, because rotini's own entry point
// (sigstate.EntryFlag) records them first. The same source linked without
// that entry point is the negative control: it cannot see them, and its
// child gets them at their defaults.
func TestChildrenInheritWhatTheRuntimeTakesOver(t *testing.T) {
	const (
		wantIgn = 1<<(syscall.SIGTERM-1) | 1<<(syscall.SIGUSR2-1) | 1<<(syscall.SIGQUIT-1)
		wantBlk = 1 << (syscall.SIGTERM - 1)
	)
	noEntry := filepath.Join(t.TempDir(), "rotini-noentry")
	build := exec.Command("go", "build", "-o", noEntry, "github.com/rotini-dev/rotini")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build without the entry point: %v\n%s", err, out)
	}
	launch := func(argv ...string) []string {
		return withSignalState([]syscall.Signal{syscall.SIGTERM, syscall.SIGUSR2, syscall.SIGQUIT}, []syscall.Signal{syscall.SIGTERM}, argv...)
	}
	// state runs bin as the zero-config init of grep, which prints its
	// own SigBlk and SigIgn.
	state := func(t *testing.T, bin string) (ign, blk uint64) {
		p := start(t, procOptions{}, launch(bin, "--", "grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status")...)
		expectExited(t, p, 0)
		for _, want := range []struct {
			name string
			v    *uint64
		}{{"SigBlk", &blk}, {"SigIgn", &ign}} {
			line, _, err := nthMatch(p.stdout, regexp.MustCompile("^"+want.name+":"), 1, startTimeout)
			if err != nil {
				t.Fatalf("no %s line: %v\n%s", want.name, err, p.transcript())
			}
			if _, err := fmt.Sscanf(strings.Join(strings.Fields(line), " "), want.name+": %x", want.v); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
		}
		return ign, blk
	}
	if ign, blk := state(t, rotiniBin); ign&wantIgn != wantIgn || blk&wantBlk != wantBlk {
		t.Errorf("child of rotini: ignored %x blocked %x, want at least ignored %x blocked %x", ign, blk, uint64(wantIgn), uint64(wantBlk))
	}
	if ign, blk := state(t, noEntry); ign&wantIgn != 0 || blk&wantBlk != 0 {
		t.Errorf("negative control: the child of rotini linked without its entry point got ignored %x blocked %x of %x and %x; the entry point is not what this test checks", ign, blk, uint64(wantIgn), uint64(wantBlk))
	}
}

// withSignalState is the command line that runs argv with the signals
// ignored ignored and blocked blocked, as a parent (a shell's trap, nohup, a
// supervisor) hands them over: python3 sets them and execs argv, keeping
// the pid.
func withSignalState(ignored, blocked []syscall.Signal, argv ...string) []string {
	list := func(sigs []syscall.Signal) string {
		var s []string
		for _, sig := range sigs {
			s = append(s, strconv.Itoa(int(sig)))
		}
		return strings.Join(s, ",")
	}
	return append([]string{"python3", "-c", `import os, signal, sys
num = lambda arg: [int(s) for s in arg.split(",") if s]
for s in num(sys.argv[1]):
    signal.signal(s, signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_BLOCK, num(sys.argv[2]))
os.execv(sys.argv[3], sys.argv[3:])`, list(ignored), list(blocked)}, argv...)
}

// A TERM that rotini inherited both ignored and blocked still stops it (the
// README: rotini itself still receives what it hands its children as it
// was handed over). The child inherits TERM ignored and blocked, so the
// stop signal does nothing to it: it is SIGKILLed at the stop timeout, and
// rotini exits with the child's 128+SIGKILL.
func TestInheritedIgnoredBlockedTERMStillStops(t *testing.T) {
	const term = 1 << (syscall.SIGTERM - 1)
	for _, m := range bothModes {
		t.Run(m.String(), func(t *testing.T) {
			t.Parallel()
			argv := withSignalState([]syscall.Signal{syscall.SIGTERM}, []syscall.Signal{syscall.SIGTERM},
				cmdline([]string{rotiniBin, "--log-level", "debug", "--stop-timeout", "1s"}, "sh", "-c", "echo ready; exec sleep 1000")...)
			if m == asPID1 {
				requirePIDNamespace(t)
				argv = unshareArgv(argv...)
			}
			p := start(t, procOptions{}, argv...)
			p.waitLine(t, "ready", waitDeadline)
			// The premise: rotini's child got TERM as rotini was handed it.
			kids := children(p.target(t))
			if len(kids) != 1 {
				t.Fatalf("rotini has children %v, want one", kids)
			}
			st, err := procfs.Status(kids[0])
			if err != nil {
				t.Fatal(err)
			}
			ign, _ := strconv.ParseUint(st["SigIgn"], 16, 64)
			blk, _ := strconv.ParseUint(st["SigBlk"], 16, 64)
			if ign&term == 0 || blk&term == 0 {
				t.Fatalf("rotini's child has SigIgn %x SigBlk %x: TERM is not both ignored and blocked", ign, blk)
			}

			p.signal(t, syscall.SIGTERM)
			p.waitStderrLine(t, regexp.MustCompile(`signal received: signal=SIGTERM action=stop$`), waitDeadline)
			p.waitStderrLine(t, regexp.MustCompile(`stop timeout: killing`), waitDeadline)
			p.waitStderrLine(t, regexp.MustCompile(`exited: .*status="killed by signal SIGKILL" code=137$`), waitDeadline)
			expectExited(t, p, 128+int(syscall.SIGKILL))
		})
	}
}
