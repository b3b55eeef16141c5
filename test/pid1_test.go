package test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// Black-box tests of the zero-config CLI, `rotini [flags] -- cmd args…`: a
// drop-in for tini and dumb-init. Each property is checked as PID 1 of a PID
// namespace and, where it differs, as a child subreaper; each check has a
// negative control that shows it can fail.

// stormSize is the number of orphans of the reaping tests.
const stormSize = 2000

// stormDeadline bounds the start and the end of an orphan storm.
const stormDeadline = time.Minute

// marker is a signal sent after one that must not arrive: when the next
// line is the marker, the first did not arrive. Its number (28) is above
// URG (23), PIPE (13) and USR1 (10), and pending standard signals are
// delivered lowest number first, so a forwarded signal could not hide
// behind the marker.
const marker = unix.SIGWINCH

func sigName(s syscall.Signal) string { return strings.TrimPrefix(unix.SignalName(s), "SIG") }

func TestExitCodes(t *testing.T) {
	t.Parallel()
	all := make([]int, 256)
	for i := range all {
		all[i] = i
	}
	tests := []struct {
		mode  runMode
		codes []int
	}{
		{mode: asPID1, codes: all},
		{mode: subreaper, codes: []int{0, 1, 2, 42, 63, 64, 125, 126, 127, 128, 129, 143, 254, 255}},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			if tt.mode == asPID1 {
				requirePIDNamespace(t)
			}
			want := map[int]int{}
			got := map[int]int{}
			var mu sync.Mutex
			var wg sync.WaitGroup
			batch := make(chan struct{}, 4)
			for _, code := range tt.codes {
				want[code] = code
				wg.Go(func() {
					batch <- struct{}{}
					defer func() { <-batch }()
					argv := rotiniArgv(tt.mode, cmdline(nil, app("exit", strconv.Itoa(code))...)...)
					c, stderr, err := runToExit(argv...)
					mu.Lock()
					defer mu.Unlock()
					got[code] = c
					if err != nil || stderr != "" {
						t.Logf("exit %d: code %d, error %v, stderr %q", code, c, err, stderr)
					}
				})
			}
			wg.Wait()
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("rotini's exit code for `testapp exit N` (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExitKilledBySignal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		signal string
		want   int
	}{
		{"HUP", 129}, {"INT", 130}, {"QUIT", 131}, {"KILL", 137},
		{"USR1", 138}, {"USR2", 140}, {"ALRM", 142}, {"TERM", 143},
	}
	for _, mode := range bothModes {
		for _, tt := range tests {
			t.Run(mode.String()+"/"+tt.signal, func(t *testing.T) {
				t.Parallel()
				if mode == asPID1 {
					requirePIDNamespace(t)
				}
				code, stderr, err := runToExit(rotiniArgv(mode, cmdline(nil, app("kill", tt.signal)...)...)...)
				if err != nil {
					t.Fatal(err)
				}
				if code != tt.want {
					t.Errorf("child killed by SIG%s: rotini exited %d, want %d; stderr:\n%s", tt.signal, code, tt.want, stderr)
				}
			})
		}
	}
}

// startSignals starts rotini with args in mode m over `testapp signals`
// (with appArgs), waits for "ready" and returns it.
func startSignals(t *testing.T, m runMode, args []string, appArgs ...string) *proc {
	t.Helper()
	p := rotini(t, m, cmdline(args, app("signals", appArgs...)...)...)
	p.waitLine(t, "ready", waitDeadline)
	return p
}

func TestSignalForwarding(t *testing.T) {
	t.Parallel()
	// Each arrives at the child as itself. TTIN, TTOU and TSTP stop a
	// process by default; the test app catches them.
	forwarded := []syscall.Signal{
		unix.SIGHUP, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH, unix.SIGALRM,
		unix.SIGCONT, unix.SIGTTIN, unix.SIGTTOU, unix.SIGTSTP,
	}
	for _, mode := range bothModes {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			p := startSignals(t, mode, nil)
			for _, sig := range forwarded {
				t.Run(sigName(sig), func(t *testing.T) {
					p.signal(t, sig)
					if got, want := p.nextLine(t, waitDeadline), "signal "+sigName(sig); got != want {
						t.Errorf("after SIG%s to rotini, the child printed %q, want %q", sigName(sig), got, want)
					}
				})
			}
			p.signal(t, unix.SIGTERM)
			if code := p.wait(t, waitDeadline); code != 143 {
				t.Errorf("rotini exited %d after TERM, want 143", code)
			}
		})
	}
}

// TestSignalNotForwarded sends a signal, then the marker; the child must
// print the marker only. The direct cases are the negative control: the
// same two signals sent straight to the child show both lines.
func TestSignalNotForwarded(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		sig      syscall.Signal
		toChild  bool // send to the child directly instead of to rotini
		wantNext []string
	}{
		{name: "URG", sig: unix.SIGURG, wantNext: []string{"signal WINCH"}},
		{name: "PIPE", sig: unix.SIGPIPE, wantNext: []string{"signal WINCH"}},
		{name: "URG straight to the child (control)", sig: unix.SIGURG, toChild: true, wantNext: []string{"signal URG", "signal WINCH"}},
		{name: "PIPE straight to the child (control)", sig: unix.SIGPIPE, toChild: true, wantNext: []string{"signal PIPE", "signal WINCH"}},
	}
	for _, mode := range bothModes {
		for _, tt := range tests {
			t.Run(mode.String()+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				p := startSignals(t, mode, nil)
				to := p.target(t)
				if tt.toChild {
					kids := children(to)
					if len(kids) != 1 {
						t.Fatalf("rotini (pid %d) has children %v, want one", to, kids)
					}
					to = kids[0]
				}
				for _, sig := range []syscall.Signal{tt.sig, marker} {
					if err := unix.Kill(to, sig); err != nil {
						t.Fatal(err)
					}
				}
				var got []string
				for range tt.wantNext {
					got = append(got, p.nextLine(t, waitDeadline))
				}
				// A second marker, once the first was printed: anything
				// that rotini did forward has arrived before it.
				if err := unix.Kill(to, marker); err != nil {
					t.Fatal(err)
				}
				got = append(got, p.nextLine(t, waitDeadline))
				want := append(slices.Clone(tt.wantNext), "signal "+sigName(marker))
				// Two signals pending at once reach a Go program in either
				// order, so the lines are compared as a set.
				slices.Sort(got)
				slices.Sort(want)
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("child's lines after SIG%s and SIG%s (-want +got):\n%s", sigName(tt.sig), sigName(marker), diff)
				}
			})
		}
	}
}

func TestRewrite(t *testing.T) {
	t.Parallel()
	requirePIDNamespace(t)
	// step is a signal sent to rotini and the child's next line ("": none,
	// the next step's line must come next).
	type step struct {
		send syscall.Signal
		want string
	}
	tests := []struct {
		name  string
		args  []string
		steps []step
	}{
		{name: "none (control)", steps: []step{{unix.SIGUSR1, "signal USR1"}, {marker, "signal WINCH"}}},
		{name: "USR1:USR2", args: []string{"--rewrite", "USR1:USR2"}, steps: []step{{unix.SIGUSR1, "signal USR2"}, {marker, "signal WINCH"}}},
		{name: "numeric 10:12", args: []string{"--rewrite", "10:12"}, steps: []step{{unix.SIGUSR1, "signal USR2"}, {marker, "signal WINCH"}}},
		{name: "USR1:0 drops", args: []string{"--rewrite", "USR1:0"}, steps: []step{{unix.SIGUSR1, ""}, {marker, "signal WINCH"}}},
		{name: "two rewrites", args: []string{"--rewrite", "USR1:USR2", "--rewrite", "HUP:ALRM"}, steps: []step{{unix.SIGHUP, "signal ALRM"}, {unix.SIGUSR1, "signal USR2"}, {unix.SIGUSR2, "signal USR2"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := startSignals(t, asPID1, tt.args)
			for _, st := range tt.steps {
				p.signal(t, st.send)
				if st.want == "" {
					continue
				}
				if got := p.nextLine(t, waitDeadline); got != st.want {
					t.Errorf("after SIG%s to rotini, the child printed %q, want %q", sigName(st.send), got, st.want)
				}
			}
		})
	}
}

func TestSignalStop(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string // rotini's
		appArgs  []string // of `testapp signals`
		send     syscall.Signal
		wantLine string // the child's last words
		wantCode int
	}{
		{name: "TERM", send: unix.SIGTERM, wantLine: "signal TERM", wantCode: 143},
		{name: "INT", send: unix.SIGINT, wantLine: "signal TERM", wantCode: 143},
		{name: "stop-signal USR1", args: []string{"--stop-signal", "USR1"}, appArgs: []string{"--exit-on", "USR1"}, send: unix.SIGTERM, wantLine: "signal USR1", wantCode: 138},
		{name: "TERM ignored: SIGKILL after stop-timeout", args: []string{"--stop-timeout", "1s"}, appArgs: []string{"--ignore", "TERM"}, send: unix.SIGTERM, wantLine: "signal TERM", wantCode: 137},
		{name: "QUIT", send: unix.SIGQUIT, appArgs: []string{"--exit-on", "QUIT"}, wantLine: "signal QUIT", wantCode: 131},
		{name: "QUIT ignored: SIGKILL", send: unix.SIGQUIT, appArgs: []string{"--ignore", "QUIT"}, wantLine: "signal QUIT", wantCode: 137},
	}
	for _, mode := range bothModes {
		for _, tt := range tests {
			t.Run(mode.String()+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				p := startSignals(t, mode, tt.args, tt.appArgs...)
				p.signal(t, tt.send)
				p.waitLine(t, tt.wantLine, waitDeadline)
				if code := p.wait(t, waitDeadline); code != tt.wantCode {
					t.Errorf("rotini exited %d after SIG%s, want %d", code, sigName(tt.send), tt.wantCode)
				}
			})
		}
	}
}

// TestSignalStopKillsGroup checks that a stop reaches the child's whole
// process group: `testapp group` has a grandchild (sleep) in its group.
// rotini runs as a subreaper: as PID 1 the end of the namespace would kill
// the grandchild anyway. The direct case is the negative control: TERM to
// the test app alone leaves the grandchild running.
func TestSignalStopKillsGroup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		argv      []string
		wantLine  string // the child's line after TERM
		wantCode  int
		wantAlive bool // the grandchild after the exit
	}{
		{name: "TERM", argv: rotiniArgv(subreaper, cmdline(nil, app("group")...)...), wantLine: "signal TERM", wantCode: 143},
		{name: "SIGKILL after stop-timeout", argv: rotiniArgv(subreaper, cmdline([]string{"--stop-signal", "WINCH", "--stop-timeout", "1s"}, app("group")...)...), wantLine: "signal WINCH", wantCode: 137},
		{name: "no rotini (control)", argv: app("group"), wantLine: "signal TERM", wantCode: 143, wantAlive: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := start(t, procOptions{}, tt.argv...)
			gc, err := strconv.Atoi(strings.TrimPrefix(p.waitLine(t, "grandchild ", waitDeadline), "grandchild "))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { unix.Kill(gc, unix.SIGKILL) })
			p.waitLine(t, "ready", waitDeadline)
			p.signal(t, unix.SIGTERM)
			p.waitLine(t, tt.wantLine, waitDeadline)
			if code := p.wait(t, waitDeadline); code != tt.wantCode {
				t.Errorf("exit code %d, want %d", code, tt.wantCode)
			}
			if tt.wantAlive {
				if !alive(gc) {
					t.Errorf("grandchild %d is not running: the control cannot tell a killed group", gc)
				}
				return
			}
			eventually(t, waitDeadline, fmt.Sprintf("grandchild %d is dead", gc), func() (bool, string) {
				st, err := readStat(gc)
				return !alive(gc), fmt.Sprintf("%+v %v", st, err)
			})
		})
	}
}

// TestReapOrphanStorm hands rotini 2000 orphans that exit at once; every
// one must be reaped. The last case is the negative control: the test app
// as PID 1 never reaps orphans, and the same count sees all of them as
// zombies. The cases run one at a time: each starts 2000 Go processes
// (~4 thread ids each, of the host's 32768) on two cores.
func TestReapOrphanStorm(t *testing.T) {
	t.Parallel()
	requirePIDNamespace(t)
	n := strconv.Itoa(stormSize)
	tests := []struct {
		name string
		run  func(t *testing.T) *proc // starts the storm, returns after "released"
		// reaped: every orphan reaped (rotini); else every orphan a zombie.
		reaped bool
	}{
		{name: "pid1", reaped: true, run: func(t *testing.T) *proc {
			// In a PID namespace every orphan goes to its init: rotini.
			p := pid1(t, cmdline(nil, app("orphans", n, "--now")...)...)
			p.waitLine(t, "spawned "+n, stormDeadline)
			p.waitLine(t, "released", waitDeadline)
			return p
		}},
		{name: "subreaper", reaped: true, run: func(t *testing.T) *proc {
			// Check first that the orphans came to rotini, rather than to
			// the host's init (which would reap them and pass the test),
			// then release them.
			p := startRotini(t, subreaper, procOptions{stdin: true}, cmdline(nil, app("orphans", n)...)...)
			p.waitLine(t, "spawned "+n, stormDeadline)
			if kids := childrenOf(p.target(t)); len(kids) != stormSize+1 {
				t.Fatalf("rotini has %d children, want the test app and %d orphans", len(kids), stormSize)
			}
			fmt.Fprintln(p.stdin, "go")
			p.waitLine(t, "released", waitDeadline)
			return p
		}},
		{name: "testapp as PID 1 (control)", reaped: false, run: func(t *testing.T) *proc {
			p := start(t, procOptions{}, unshareArgv(app("orphans", n, "--now")...)...)
			p.waitLine(t, "spawned "+n, stormDeadline)
			p.waitLine(t, "released", waitDeadline)
			return p
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.run(t)
			r := p.target(t)
			what := "every orphan reaped"
			if !tt.reaped {
				what = "every orphan a zombie"
			}
			eventually(t, stormDeadline, what, func() (bool, string) {
				kids, z := len(childrenOf(r)), zombies(r)
				status := fmt.Sprintf("pid %d has %d children, %d zombies", r, kids, z)
				if tt.reaped {
					return kids == 1 && z == 0, status
				}
				return z == stormSize, status
			})
			p.signal(t, unix.SIGTERM)
			if code := p.wait(t, waitDeadline); code != 143 {
				t.Errorf("exit code %d after TERM, want 143", code)
			}
		})
	}
}

// TestFds checks the child gets fds 0, 1, 2 only when rotini got only
// those. The control shows the test app reports an extra fd it inherits.
func TestFds(t *testing.T) {
	t.Parallel()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { devnull.Close() })
	tests := []struct {
		name string
		argv []string
		opts procOptions
		want string
	}{
		{name: "pid1", argv: rotiniArgv(asPID1, cmdline(nil, app("fds")...)...), want: "fds 0,1,2"},
		{name: "subreaper", argv: rotiniArgv(subreaper, cmdline(nil, app("fds")...)...), want: "fds 0,1,2"},
		{name: "no rotini, fd 3 passed (control)", argv: app("fds"), opts: procOptions{extraFiles: []*os.File{devnull}}, want: "fds 0,1,2,3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.argv[0] == "unshare" {
				requirePIDNamespace(t)
			}
			p := start(t, tt.opts, tt.argv...)
			if got := p.waitLine(t, "fds ", waitDeadline); got != tt.want {
				t.Errorf("child's open fds: %q, want %q", got, tt.want)
			}
		})
	}
}

// TestTTYForeground checks that on a terminal the child gets the
// foreground process group. The control runs without a terminal.
func TestTTYForeground(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode runMode
		pty  bool
		want string
	}{
		{mode: asPID1, pty: true, want: "foreground=true"},
		{mode: subreaper, pty: true, want: "foreground=true"},
		{mode: asPID1, pty: false, want: "foreground=false"},
		{mode: subreaper, pty: false, want: "foreground=false"},
	}
	for _, tt := range tests {
		name := tt.mode.String() + "/pipes (control)"
		if tt.pty {
			name = tt.mode.String() + "/pty"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := startRotini(t, tt.mode, procOptions{pty: tt.pty}, cmdline(nil, app("tty")...)...)
			line := p.waitLine(t, "tty ", waitDeadline)
			if !strings.HasSuffix(line, " "+tt.want) {
				t.Errorf("child reports %q, want %s", line, tt.want)
			}
			if code := p.wait(t, waitDeadline); code != 0 {
				t.Errorf("rotini exited %d, want 0", code)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ok := app("exit", "0")
	tests := []struct {
		name       string
		mode       runMode
		args       []string
		wantCode   int
		wantStderr string // a substring naming the cause
	}{
		{name: "valid (control)", args: cmdline(nil, ok...), wantCode: 0},
		{name: "unknown flag", args: cmdline([]string{"--bogus-flag"}, ok...), wantCode: 64, wantStderr: "bogus-flag"},
		{name: "unknown stop signal", args: cmdline([]string{"--stop-signal", "BOGUS"}, ok...), wantCode: 64, wantStderr: "BOGUS"},
		{name: "rewrite without colon", args: cmdline([]string{"--rewrite", "USR1"}, ok...), wantCode: 64, wantStderr: "rewrite"},
		{name: "rewrite to unknown signal", args: cmdline([]string{"--rewrite", "USR1:NOPE"}, ok...), wantCode: 64, wantStderr: "NOPE"},
		{name: "rewrite of a stop signal", args: cmdline([]string{"--rewrite", "TERM:QUIT"}, ok...), wantCode: 64, wantStderr: "--stop-signal"},
		{name: "bad stop timeout", args: cmdline([]string{"--stop-timeout", "soon"}, ok...), wantCode: 64, wantStderr: "stop-timeout"},
		{name: "no command", args: nil, wantCode: 64, wantStderr: "command"},
		{name: "no command after --", args: []string{"--"}, wantCode: 64, wantStderr: "command"},
		{name: "absolute path not found", args: cmdline(nil, "/nonexistent/cmd"), wantCode: 127, wantStderr: "/nonexistent/cmd"},
		{name: "not found in PATH", args: cmdline(nil, "rotini-no-such-command"), wantCode: 127, wantStderr: "rotini-no-such-command"},
		{name: "not executable", args: cmdline(nil, notExec), wantCode: 126, wantStderr: notExec},
		{name: "directory", args: cmdline(nil, dir), wantCode: 126, wantStderr: dir},
		{name: "pid1 not found", mode: asPID1, args: cmdline(nil, "/nonexistent/cmd"), wantCode: 127, wantStderr: "/nonexistent/cmd"},
		{name: "pid1 not executable", mode: asPID1, args: cmdline(nil, notExec), wantCode: 126, wantStderr: notExec},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.mode == asPID1 {
				requirePIDNamespace(t)
			}
			code, stderr, err := runToExit(rotiniArgv(tt.mode, tt.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			if code != tt.wantCode {
				t.Errorf("rotini %q exited %d, want %d; stderr:\n%s", tt.args, code, tt.wantCode, stderr)
			}
			if tt.wantStderr != "" && !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("rotini %q: stderr does not mention %q:\n%s", tt.args, tt.wantStderr, stderr)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	p := start(t, procOptions{}, rotiniBin, "version")
	if line := p.nextLine(t, waitDeadline); !strings.HasPrefix(line, "rotini ") {
		t.Errorf("rotini version printed %q, want \"rotini VERSION\"", line)
	}
	if code := p.wait(t, waitDeadline); code != 0 {
		t.Errorf("rotini version exited %d, want 0", code)
	}
}
