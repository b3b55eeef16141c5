package procfs

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tail is fields 7 to 22 of a stat line, field 22 (start time) last.
const tail = " 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 5555"

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       Process
		bad        bool
	}{
		{name: "plain", line: "123 (sleep) S 1 123 100" + tail,
			want: Process{PID: 123, Comm: "sleep", State: 'S', PPID: 1, PGRP: 123, Session: 100, StartTime: 5555}},
		{name: "parentheses and spaces", line: "42 (a) b (c) Z 7 42 40" + tail,
			want: Process{PID: 42, Comm: "a) b (c", State: 'Z', PPID: 7, PGRP: 42, Session: 40, StartTime: 5555}},
		// A name that imitates the fields after it: read from the first ')',
		// this process would be a zombie child of init in group 1.
		{name: "name imitating fields", line: "9 (x) Z 1 1 1) S 8 9 9" + tail,
			want: Process{PID: 9, Comm: "x) Z 1 1 1", State: 'S', PPID: 8, PGRP: 9, Session: 9, StartTime: 5555}},
		{name: "empty name", line: "5 () R 4 5 5" + tail,
			want: Process{PID: 5, Comm: "", State: 'R', PPID: 4, PGRP: 5, Session: 5, StartTime: 5555}},
		{name: "newline in name", line: "6 (a\nb) D 2 0 0" + tail + "\n",
			want: Process{PID: 6, Comm: "a\nb", State: 'D', PPID: 2, PGRP: 0, Session: 0, StartTime: 5555}},
		{name: "no parenthesis", line: "7 sleep S 1 7 7" + tail, bad: true},
		{name: "only an opening parenthesis", line: "7 (sleep S 1 7 7" + tail, bad: true},
		{name: "truncated", line: "7 (sleep) S 1 7 7 0", bad: true},
		{name: "bad parent", line: "7 (sleep) S x 7 7" + tail, bad: true},
		{name: "bad pid", line: "x (sleep) S 1 7 7" + tail, bad: true},
		{name: "empty", line: "", bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat([]byte(tc.line))
			if tc.bad {
				if err == nil {
					t.Fatalf("parseStat(%q) = %+v, want an error", tc.line, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseStat(%q) = %+v, %v; want %+v", tc.line, got, err, tc.want)
			}
		})
	}
}

// startNamed starts sleep under the command name comm (the kernel names a
// process after the file it execs) with env, and kills it at the end.
func startNamed(t *testing.T, comm string, env ...string) *exec.Cmd {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep(1)")
	}
	link := filepath.Join(t.TempDir(), comm)
	if err := os.Symlink(sleep, link); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(link, "60")
	cmd.Env = env
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

func TestStatOfRealProcesses(t *testing.T) {
	self, err := Stat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	sid, _ := unix.Getsid(0)
	// The state of a process is its main thread's, which may sleep while
	// this test runs on another: running or sleeping.
	if self.PID != os.Getpid() || self.PPID != os.Getppid() || self.PGRP != syscall.Getpgrp() || self.Session != sid ||
		(self.State != 'R' && self.State != 'S') || self.StartTime == 0 {
		t.Errorf("Stat(self) = %+v; want pid %d, parent %d, group %d, session %d, running or sleeping, a start time",
			self, os.Getpid(), os.Getppid(), syscall.Getpgrp(), sid)
	}
	for _, comm := range []string{"a) b (c", "x) Z 1 1 1"} {
		cmd := startNamed(t, comm)
		p, err := Stat(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if p.Comm != comm || p.PPID != os.Getpid() || p.State == 'Z' || p.StartTime < self.StartTime {
			t.Errorf("Stat(%d) = %+v; want name %q, parent %d, alive, started after this test", cmd.Process.Pid, p, comm, os.Getpid())
		}
		// A state that does not depend on the scheduler: stopped.
		cmd.Process.Signal(syscall.SIGSTOP)
		deadline := time.Now().Add(30 * time.Second)
		for {
			if p, err = Stat(cmd.Process.Pid); err == nil && p.State == 'T' {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Stat(%d) of a stopped process: %+v, %v; want state T", cmd.Process.Pid, p, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// gone returns the pid of a process that existed and has been reaped.
func gone(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("cannot run true(1):", err)
	}
	return cmd.Process.Pid
}

func TestVanishedProcess(t *testing.T) {
	pid := gone(t)
	if _, err := Stat(pid); !errors.Is(err, ErrGone) {
		t.Errorf("Stat of a reaped process: %v, want ErrGone", err)
	}
	if _, err := Children(pid); !errors.Is(err, ErrGone) {
		t.Errorf("Children of a reaped process: %v, want ErrGone", err)
	}
	if _, err := Environ(pid); !errors.Is(err, ErrGone) {
		t.Errorf("Environ of a reaped process: %v, want ErrGone", err)
	}
	if _, err := FDs(pid); !errors.Is(err, ErrGone) {
		t.Errorf("FDs of a reaped process: %v, want ErrGone", err)
	}
	if _, err := Status(pid); !errors.Is(err, ErrGone) {
		t.Errorf("Status of a reaped process: %v, want ErrGone", err)
	}
	if _, err := RSS(pid); !errors.Is(err, ErrGone) {
		t.Errorf("RSS of a reaped process: %v, want ErrGone", err)
	}
	if d := Descendants(pid); len(d) != 0 {
		t.Errorf("Descendants of a reaped process: %v, want none", d)
	}
}

func TestChildrenAndDescendants(t *testing.T) {
	// sh (a child) starts sleep (a grandchild) and waits for it.
	sh := exec.Command("sh", "-c", "sleep 60 & echo $!; wait")
	out, err := sh.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Process.Kill(); sh.Wait() })
	buf := make([]byte, 32)
	n, _ := out.Read(buf)
	grandchild, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil {
		t.Fatalf("sh printed %q, want the pid of its sleep", buf[:n])
	}
	t.Cleanup(func() { syscall.Kill(grandchild, syscall.SIGKILL) })

	// A zombie child: exited, not reaped until the end of the test.
	zombie := exec.Command("true")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { zombie.Wait() })
	for {
		p, err := Stat(zombie.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if p.State == 'Z' {
			break
		}
		syscall.Nanosleep(&syscall.Timespec{Nsec: 1e6}, nil)
	}

	kids, err := Children(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(kids, sh.Process.Pid) || !slices.Contains(kids, zombie.Process.Pid) || slices.Contains(kids, grandchild) {
		t.Errorf("Children(self) = %v; want sh %d and the zombie %d, not the grandchild %d", kids, sh.Process.Pid, zombie.Process.Pid, grandchild)
	}
	d := Descendants(os.Getpid())
	i, j := slices.Index(d, sh.Process.Pid), slices.Index(d, grandchild)
	if i < 0 || j < i || !slices.Contains(d, zombie.Process.Pid) {
		t.Errorf("Descendants(self) = %v; want sh %d before its child %d, and the zombie %d", d, sh.Process.Pid, grandchild, zombie.Process.Pid)
	}
	// The listing, used without children files, sees the same tree.
	byListing := descendants(os.Getpid(), childrenByListing())
	for _, pid := range []int{sh.Process.Pid, grandchild, zombie.Process.Pid} {
		if !slices.Contains(byListing, pid) {
			t.Errorf("descendants by listing = %v; %d is missing", byListing, pid)
		}
	}
}

// fakeProc makes a /proc tree from files (path relative to it → content)
// and points the package at it for the test.
func fakeProc(t *testing.T, files map[string]string) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if strings.HasSuffix(name, "/") { // a directory only
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := root
	root = dir
	t.Cleanup(func() { root = old })
}

// TestTreeWithVanishingEntries reads a tree in which a thread (13) exited
// between the listing of its process's tasks and the read of its children,
// and a process (99) between the listing of /proc and the read of its stat.
func TestTreeWithVanishingEntries(t *testing.T) {
	fakeProc(t, map[string]string{
		"10/stat":             "10 (a) b (c) S 1 10 10" + tail,
		"10/task/10/children": "11 12 ",
		"10/task/13/":         "", // a thread that has just exited
		"11/stat":             "11 (w) S 10 11 10" + tail,
		"11/task/11/children": "14 ",
		"12/stat":             "12 (w) Z 10 12 10" + tail,
		"12/task/12/children": "",
		"14/stat":             "14 (x) S 10 14 10) S 11 11 10" + tail,
		"14/task/14/children": "",
		"99/":                 "", // gone: no stat any more
		"self/":               "",
		"sys/":                "",
	})
	kids, err := Children(10)
	if err != nil || !slices.Equal(kids, []int{11, 12}) {
		t.Errorf("Children(10) = %v, %v; want [11 12]", kids, err)
	}
	if _, err := Children(99); !errors.Is(err, ErrGone) {
		t.Errorf("Children(99) = %v, want ErrGone", err)
	}
	want := []int{11, 12, 14}
	if got := Descendants(10); !slices.Equal(got, want) {
		t.Errorf("Descendants(10) = %v, want %v", got, want)
	}
	if got := descendants(10, childrenByListing()); !slices.Equal(got, want) {
		t.Errorf("descendants by listing (10) = %v, want %v", got, want)
	}
	ps, err := All()
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, p := range ps {
		pids = append(pids, p.PID)
	}
	slices.Sort(pids)
	if !slices.Equal(pids, []int{10, 11, 12, 14}) {
		t.Errorf("All() lists %v, want [10 11 12 14]: 99 vanished, self and sys are not processes", pids)
	}
}

func TestEnviron(t *testing.T) {
	cmd := startNamed(t, "sleeper", "A=1", "ROTINI_APP=web", "EMPTY=")
	// Start returns once the child is forked, maybe before its exec: until
	// then its environment is not the one it was started with.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if p, err := Stat(cmd.Process.Pid); err == nil && p.Comm == "sleeper" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the child did not exec within 30 s")
		}
		time.Sleep(time.Millisecond)
	}
	env, err := Environ(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"A=1", "ROTINI_APP=web", "EMPTY="}; !slices.Equal(env, want) {
		t.Errorf("Environ = %q, want %q", env, want)
	}
}

func TestFDs(t *testing.T) {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	fd := int(f.Fd())
	fds, err := FDs(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(fds, fd) {
		t.Errorf("FDs(self) = %v, want it to hold %d", fds, fd)
	}
	// The descriptor FDs reads the list through is closed by now: every
	// one listed is still open.
	for _, d := range fds {
		if _, err := unix.FcntlInt(uintptr(d), unix.F_GETFD, 0); err != nil {
			t.Errorf("FDs(self) lists %d, which is not open: %v", d, err)
		}
	}
	f.Close()
	if fds, _ := FDs(os.Getpid()); slices.Contains(fds, fd) {
		t.Errorf("FDs(self) = %v still holds %d after it was closed", fds, fd)
	}
}

func TestStatusAndRSS(t *testing.T) {
	st, err := Status(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if n, err := strconv.Atoi(st["Threads"]); err != nil || n < 1 {
		t.Errorf("Status(self)[Threads] = %q, want a count", st["Threads"])
	}
	if st["Pid"] != strconv.Itoa(os.Getpid()) {
		t.Errorf("Status(self)[Pid] = %q, want %d", st["Pid"], os.Getpid())
	}
	if rss, err := RSS(os.Getpid()); err != nil || rss <= 0 {
		t.Errorf("RSS(self) = %d, %v; want a size", rss, err)
	}
}
