// Package test holds rotini's black-box tests: they build the real binaries
// once (TestMain) and drive them as a user would, as PID 1 of a new PID
// namespace (unshare) or as a plain child subreaper. The fake worker is
// test/testapp; tests wait on the lines it prints, never on sleeps, and
// every deadline below only turns a hang into a failure.
package test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/procfs"
	"github.com/rotini-dev/rotini/reaper"
	"github.com/rotini-dev/rotini/sigstate"
)

// The binaries under test, built once by TestMain.
var (
	rotiniBin  string
	testappBin string
	// naiveBin is apps/naive: a Go app whose drain is http.Server.Shutdown
	// and nothing else.
	naiveBin string
)

// waitDeadline bounds every wait on a line, an exit or a condition. It is a
// deadline, never an expectation of speed.
const waitDeadline = 20 * time.Second

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	// Processes started by the tests inherit exactly what each test passes
	// (0, 1, 2 and ExtraFiles), not what the shell that ran `go test` left
	// open without close-on-exec.
	reaper.CloseInheritedOnExec()
	// Processes started by the tests get INT and QUIT at their defaults
	// whatever the test binary inherited (a shell's background job ignores
	// both): Go resets a handled signal to the default in its children.
	// Tests that need an inherited disposition set it themselves.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGINT, syscall.SIGQUIT)
	// GNU make runs its recipes with signals 32 and 33 ignored, and rotini
	// passes what it inherited on: under `make test` every child would
	// ignore them, and be started through rotini's signal-restoring shim.
	// The test binary does not use them: back to the default.
	resetIgnored(32, 33)
	// Zero-config mode unless a test asks otherwise.
	os.Unsetenv("ROTINI_CONFIG")
	os.Unsetenv("ROTINI_CONTROL")

	dir, err := os.MkdirTemp("", "rotini-test-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "test: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	rotiniBin = filepath.Join(dir, "rotini")
	testappBin = filepath.Join(dir, "testapp")
	naiveBin = filepath.Join(dir, "naive")
	builds := []struct{ out, pkg string }{
		{rotiniBin, "github.com/rotini-dev/rotini"},
		{testappBin, "./test/testapp"},
		{naiveBin, "./test/apps/naive"},
	}
	for _, b := range builds {
		args := []string{"build", "-o", b.out}
		if b.out == rotiniBin {
			// As the Makefile links it: with rotini's own entry point.
			args = append(args, "-ldflags="+sigstate.EntryFlag)
		}
		cmd := exec.Command("go", append(args, b.pkg)...)
		cmd.Dir = ".." // the repository root: go test runs in the package directory
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "test: cannot build %s, no test ran: %v\n%s", b.pkg, err, out)
			return 1
		}
	}
	return m.Run()
}

// runMode is how rotini runs in a test.
type runMode int

const (
	// subreaper: rotini is a plain child of the test, hence a child
	// subreaper rather than PID 1.
	subreaper runMode = iota
	// asPID1: rotini is PID 1 of a new PID namespace (see unshareArgv).
	asPID1
)

func (m runMode) String() string {
	if m == asPID1 {
		return "pid1"
	}
	return "subreaper"
}

var bothModes = []runMode{asPID1, subreaper}

// unshareArgv makes argv PID 1 of a new PID namespace, with its own /proc.
//
// How util-linux unshare (2.38) reports its child, as checked on this
// machine:
//   - it blocks SIGINT and SIGTERM while it waits, so signals meant for the
//     namespace's init must be sent to the child (proc.target), not to it;
//   - it exits with the child's exit code;
//   - when the child is killed by signal N, it resets N to its default
//     action and kills itself with N (a waiter sees "signaled N"), except
//     for SIGKILL, which cannot be unblocked: then it prints
//     "unshare: sigprocmask unblock failed: Invalid argument" and exits 1.
//     A namespace's init can only die by a signal that way anyway: the
//     kernel drops every other signal it has no handler for.
//
// --kill-child SIGKILLs the child (hence the whole namespace) when unshare
// dies, so a test's cleanup cannot leak a namespace.
func unshareArgv(argv ...string) []string {
	return append([]string{"unshare", "--pid", "--fork", "--mount-proc", "--kill-child"}, argv...)
}

// rotiniArgv is the command line that runs rotini with args in mode m.
func rotiniArgv(m runMode, args ...string) []string {
	argv := append([]string{rotiniBin}, args...)
	if m == asPID1 {
		return unshareArgv(argv...)
	}
	return argv
}

// requirePIDNamespace skips t when this machine cannot create PID
// namespaces (the tests run as root on the project's machines).
func requirePIDNamespace(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for unshare --pid")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare (util-linux)")
	}
}

// app is the argv of a testapp role.
func app(role string, args ...string) []string {
	return append([]string{testappBin, role}, args...)
}

// cmdline joins rotini's args, "--" and the command.
func cmdline(rotiniArgs []string, command ...string) []string {
	return append(append(append([]string{}, rotiniArgs...), "--"), command...)
}

// procOptions are the optional parts of a started process.
type procOptions struct {
	stdin      bool       // stdin is a pipe the test writes to (p.stdin); else /dev/null
	pty        bool       // run on a new pseudo-terminal: stdin, stdout and stderr are it, and it is the controlling terminal; output arrives as stdout lines
	extraFiles []*os.File // passed as fd 3, 4, …
}

// proc is a started process and what it printed.
type proc struct {
	name    string
	cmd     *exec.Cmd
	inNS    bool           // cmd is unshare; the program under test is its child
	stdin   io.WriteCloser // with procOptions.stdin or pty
	stdout  *lineStream
	stderr  *lineStream // with a pty, stays empty: everything is on stdout
	exited  chan struct{}
	state   *os.ProcessState // set before exited is closed
	targetO sync.Once
	tpid    int
}

// start starts argv with opts; the process (and, if it still runs at the
// end of the test, its whole tree) is killed by t.Cleanup.
func start(t testing.TB, opts procOptions, argv ...string) *proc {
	t.Helper()
	p := &proc{
		name:   filepath.Base(argv[0]),
		cmd:    exec.Command(argv[0], argv[1:]...),
		inNS:   argv[0] == "unshare",
		exited: make(chan struct{}),
	}
	if p.inNS {
		for _, a := range argv[1:] {
			if !strings.HasPrefix(a, "-") {
				p.name = "unshare " + filepath.Base(a)
				break
			}
		}
	}
	p.cmd.ExtraFiles = opts.extraFiles
	if opts.pty {
		// pty.Start gives the process a new session (Setsid) with the
		// terminal as controlling terminal (Setctty) on fds 0, 1, 2.
		tty, err := pty.Start(p.cmd)
		if err != nil {
			t.Fatalf("start %q on a pty: %v", argv, err)
		}
		p.stdin = tty
		p.stdout = newLineStream(tty) // EIO once every holder of the terminal is gone: the end
		p.stderr = newLineStream(strings.NewReader(""))
	} else {
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its own group, for the cleanup
		outR, outW, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		errR, errW, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		p.cmd.Stdout, p.cmd.Stderr = outW, errW
		if opts.stdin {
			if p.stdin, err = p.cmd.StdinPipe(); err != nil {
				t.Fatal(err)
			}
		}
		err = p.cmd.Start()
		outW.Close()
		errW.Close()
		if err != nil {
			outR.Close()
			errR.Close()
			t.Fatalf("start %q: %v", argv, err)
		}
		p.stdout = newLineStream(outR)
		p.stderr = newLineStream(errR)
	}
	go func() {
		p.cmd.Wait() // the test's own child: nothing else waits for it
		p.state = p.cmd.ProcessState
		// What it wrote before it exited is read before anyone is told
		// it exited; a leftover descendant holding the pipes open gets
		// a second.
		end := time.Now().Add(time.Second)
		p.stdout.waitEOF(end)
		p.stderr.waitEOF(end)
		close(p.exited)
	}()
	t.Cleanup(func() {
		if !p.hasExited() {
			p.killTree()
			select {
			case <-p.exited:
			case <-time.After(waitDeadline):
				t.Errorf("%s (pid %d) still running after SIGKILL", p.name, p.cmd.Process.Pid)
			}
		}
		if t.Failed() {
			t.Logf("%s: %s\n%s", p.name, p.cmd.Args, p.transcript())
		}
	})
	return p
}

// rotini starts rotini with args in mode m and no extra options.
func rotini(t testing.TB, m runMode, args ...string) *proc {
	t.Helper()
	return startRotini(t, m, procOptions{}, args...)
}

// pid1 starts rotini with args as PID 1 of a new PID namespace.
func pid1(t testing.TB, args ...string) *proc {
	t.Helper()
	return startRotini(t, asPID1, procOptions{}, args...)
}

func startRotini(t testing.TB, m runMode, opts procOptions, args ...string) *proc {
	t.Helper()
	if m == asPID1 {
		requirePIDNamespace(t)
	}
	return start(t, opts, rotiniArgv(m, args...)...)
}

func (p *proc) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// target is the host pid of the program under test: the child of unshare
// once it has exec'd (found through /proc/UNSHARE/task/*/children), or the
// started process itself.
func (p *proc) target(t testing.TB) int {
	t.Helper()
	if !p.inNS {
		return p.cmd.Process.Pid
	}
	p.targetO.Do(func() {
		u := p.cmd.Process.Pid
		uexe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", u))
		eventually(t, waitDeadline, "unshare's child has exec'd", func() (bool, string) {
			kids := children(u)
			if len(kids) != 1 {
				return false, fmt.Sprintf("children of unshare %d: %v", u, kids)
			}
			exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", kids[0]))
			if err != nil || exe == uexe {
				return false, fmt.Sprintf("child %d runs %q (%v)", kids[0], exe, err)
			}
			p.tpid = kids[0]
			return true, ""
		})
	})
	if p.tpid == 0 {
		t.Fatalf("%s: no program under test", p.name)
	}
	return p.tpid
}

// signal sends sig to the program under test (rotini, not unshare).
func (p *proc) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	pid := p.target(t)
	if err := unix.Kill(pid, sig); err != nil {
		t.Fatalf("kill -%s %d (%s): %v", unix.SignalName(sig), pid, p.name, err)
	}
}

// waitLine waits for a stdout line that matches want — a *regexp.Regexp,
// or a string the line starts with — skipping the lines before it, and
// returns it. It fails t with the output so far after timeout or at the end
// of the output.
func (p *proc) waitLine(t testing.TB, want any, timeout time.Duration) string {
	t.Helper()
	return p.waitOn(t, p.stdout, "stdout", want, timeout)
}

// waitStderrLine is waitLine on stderr (rotini's log).
func (p *proc) waitStderrLine(t testing.TB, want any, timeout time.Duration) string {
	t.Helper()
	return p.waitOn(t, p.stderr, "stderr", want, timeout)
}

// nextLine returns the stdout line after the last one a wait returned.
func (p *proc) nextLine(t testing.TB, timeout time.Duration) string {
	t.Helper()
	return p.waitOn(t, p.stdout, "stdout", regexp.MustCompile(``), timeout)
}

func (p *proc) waitOn(t testing.TB, s *lineStream, name string, want any, timeout time.Duration) string {
	t.Helper()
	var match func(string) bool
	switch w := want.(type) {
	case string:
		match = func(l string) bool { return strings.HasPrefix(l, w) }
	case *regexp.Regexp:
		match = w.MatchString
	default:
		panic(fmt.Sprintf("waitLine: want a string prefix or a *regexp.Regexp, not %T", want))
	}
	line, err := s.take(match, timeout)
	if err != nil {
		t.Fatalf("%s: waiting for a %s line matching %q: %v\n%s", p.name, name, want, err, p.transcript())
	}
	return line
}

// wait waits for the process to exit and returns its exit code, 128+N when
// signal N killed it (as a shell reports it).
func (p *proc) wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		t.Fatalf("%s: still running after %v\n%s", p.name, timeout, p.transcript())
	}
	return exitCode(p.state)
}

// stderrText is everything the process wrote on stderr so far.
func (p *proc) stderrText() string { return strings.Join(p.stderr.lines(), "\n") }

func (p *proc) transcript() string {
	return fmt.Sprintf("--- stdout:\n%s\n--- stderr:\n%s\n---",
		strings.Join(p.stdout.lines(), "\n"), p.stderrText())
}

// killTree SIGKILLs the process, its group and every descendant it has now
// (rotini's workers live in groups of their own).
func (p *proc) killTree() {
	pid := p.cmd.Process.Pid
	for _, d := range descendants(pid) {
		unix.Kill(d, unix.SIGKILL)
	}
	unix.Kill(-pid, unix.SIGKILL)
	unix.Kill(pid, unix.SIGKILL)
}

func exitCode(st *os.ProcessState) int {
	if st == nil {
		return -1
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}

// runToExit runs argv to its end with nothing on stdin and returns its exit
// code (128+N when killed by signal N) and stderr. For batches run from
// plain goroutines, it reports errors instead of failing a test.
func runToExit(argv ...string) (code int, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitDeadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var errBuf strings.Builder
	cmd.Stderr = &errBuf
	cmd.WaitDelay = time.Second // a leftover holding stderr open cannot hold the test
	err = cmd.Run()
	if ctx.Err() != nil {
		return -1, errBuf.String(), fmt.Errorf("%q still running after %v", argv, waitDeadline)
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		return -1, errBuf.String(), err
	}
	return exitCode(cmd.ProcessState), errBuf.String(), nil
}

// lineStream collects the lines of one output stream. Waits consume lines:
// each starts after the line the previous one returned.
type lineStream struct {
	mu      sync.Mutex
	all     []string
	next    int           // index of the first line no wait has passed
	eof     error         // set at the end of the stream
	changed chan struct{} // closed (and replaced) when a line arrives or the stream ends
}

func newLineStream(r io.Reader) *lineStream {
	s := &lineStream{changed: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			s.add(strings.TrimSuffix(sc.Text(), "\r"))
		}
		s.mu.Lock()
		s.eof = errors.New("end of output")
		close(s.changed)
		s.mu.Unlock()
		if c, ok := r.(io.Closer); ok {
			c.Close()
		}
	}()
	return s
}

func (s *lineStream) add(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all = append(s.all, line)
	close(s.changed)
	s.changed = make(chan struct{})
}

// waitEOF returns once the stream has ended, or at deadline.
func (s *lineStream) waitEOF(deadline time.Time) {
	for {
		s.mu.Lock()
		eof, changed := s.eof != nil, s.changed
		s.mu.Unlock()
		if eof {
			return
		}
		select {
		case <-changed:
		case <-time.After(time.Until(deadline)):
			return
		}
	}
}

func (s *lineStream) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.all...)
}

// take returns the first line from the current position that matches, and
// moves the position past it.
func (s *lineStream) take(match func(string) bool, timeout time.Duration) (string, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		for i := s.next; i < len(s.all); i++ {
			if line := s.all[i]; match(line) {
				s.next = i + 1
				s.mu.Unlock()
				return line, nil
			}
		}
		if s.eof != nil {
			s.mu.Unlock()
			return "", s.eof
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-timer.C:
			return "", fmt.Errorf("no such line after %v", timeout)
		}
	}
}

// procStat is what the tests need of /proc/PID/stat.
type procStat struct {
	pid, ppid int
	state     byte // R, S, D, Z, T, …
}

// readStat reads /proc/PID/stat.
func readStat(pid int) (procStat, error) {
	p, err := procfs.Stat(pid)
	return procStat{pid: p.PID, ppid: p.PPID, state: p.State}, err
}

// allProcs is a snapshot of every process on the host (processes that
// vanish while it is taken are left out).
func allProcs() []procStat {
	all, _ := procfs.All()
	ps := make([]procStat, 0, len(all))
	for _, p := range all {
		ps = append(ps, procStat{pid: p.PID, ppid: p.PPID, state: p.State})
	}
	return ps
}

// childrenOf is the snapshot of parent's children, zombies included.
func childrenOf(parent int) []procStat {
	var kids []procStat
	for _, st := range allProcs() {
		if st.ppid == parent {
			kids = append(kids, st)
		}
	}
	return kids
}

// children lists pid's children from /proc/PID/task/*/children: cheaper
// than a scan of /proc, for a process with few children.
func children(pid int) []int {
	kids, _ := procfs.Children(pid)
	return kids
}

// zombies counts the zombie children of parent: the orphans it was handed
// and has not reaped. For rotini as PID 1, parent is its host pid
// (proc.target), to which every orphan of the namespace is re-parented.
func zombies(parent int) int {
	n := 0
	for _, st := range childrenOf(parent) {
		if st.state == 'Z' {
			n++
		}
	}
	return n
}

// descendants lists root's descendants, zombies included, deepest last.
func descendants(root int) []int { return procfs.Descendants(root) }

// alive reports whether pid runs: it exists and is neither a zombie nor
// dead.
func alive(pid int) bool {
	st, err := readStat(pid)
	return err == nil && st.state != 'Z' && st.state != 'X'
}

// eventually polls cond until it holds, and fails t with cond's last status
// if it does not within timeout.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() (ok bool, status string)) {
	t.Helper()
	end := time.Now().Add(timeout)
	for {
		ok, status := cond()
		if ok {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%s: not so after %v: %s", what, timeout, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// resetIgnored sets each of sigs that is ignored back to the default, with
// the raw system call: Go's os/signal cannot touch 32 and 33.
func resetIgnored(sigs ...int) {
	const sigIgn = 1
	for _, sig := range sigs {
		// struct sigaction of the kernel on amd64: handler, flags,
		// restorer, mask.
		var old [4]uint64
		if _, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(unsafe.Pointer(&old)), 8, 0, 0); e != 0 || old[0] != sigIgn {
			continue
		}
		var dfl [4]uint64
		syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0)
	}
}
