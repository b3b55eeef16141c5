// Command orphanstorm measures how fast the init above it reaps a burst of
// orphans.
//
//	orphanstorm [-timeout 60s] N
//
// Run it under an init that is PID 1 (or a child subreaper):
//
//	unshare --pid --fork --mount-proc tini -- orphanstorm 10000
//
// It starts an intermediate process (itself, re-executed) that forks N
// children and exits, so the N children are re-parented to the init. Each
// child blocks reading a pipe. orphanstorm then closes the pipe's write end,
// which releases them all at once; each exits and becomes a zombie of the
// init. orphanstorm polls kill(pid, 0) — which a zombie still answers — until
// every pid is gone (ESRCH), that is until the init has reaped them all, and
// prints
//
//	reaped N in X ms
//
// The time includes the kernel's teardown of N exiting processes, which is
// the same for every init; the difference between inits is their reaping.
// When nobody reaps (orphanstorm itself as PID 1, say) it gives up after
// -timeout and exits 1: the negative control.
//
// The children are raw forks of the intermediate (clone without exec), not
// new programs: they cost a few pages each, so 10,000 fit on a small machine.
// After the fork a child runs only raw system calls with every signal
// blocked: it must not touch the Go runtime, of which it has one thread.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/rotini-dev/rotini/procfs"
)

// roleEnv set to roleIntermediate makes the re-executed program the
// intermediate; the release pipe's read end is then its fd 3.
const (
	roleEnv          = "ORPHANSTORM_ROLE"
	roleIntermediate = "intermediate"
	releaseFd        = 3
)

func main() {
	if os.Getenv(roleEnv) == roleIntermediate {
		os.Exit(intermediate())
	}
	timeout := flag.Duration("timeout", 60*time.Second, "give up when the orphans are not all reaped after this long")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: %s [-timeout D] N\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	n, err := strconv.Atoi(flag.Arg(0))
	if err != nil || n <= 0 {
		fmt.Fprintf(os.Stderr, "orphanstorm: N must be a positive integer, not %q\n", flag.Arg(0))
		os.Exit(2)
	}
	if err := storm(n, *timeout); err != nil {
		fmt.Fprintf(os.Stderr, "orphanstorm: %v\n", err)
		os.Exit(1)
	}
}

func storm(n int, timeout time.Duration) error {
	release, hold, err := os.Pipe() // both close-on-exec; ExtraFiles clears it on release only
	if err != nil {
		return fmt.Errorf("pipe: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	cmd := exec.Command(self, strconv.Itoa(n))
	cmd.Env = append(os.Environ(), roleEnv+"="+roleIntermediate)
	cmd.ExtraFiles = []*os.File{release}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start intermediate: %w", err)
	}
	release.Close()

	// The intermediate prints N pids, one a line, then exits. Read exactly N
	// lines: the orphans hold the pipe open too, so EOF would never come.
	pids := make([]int, 0, n)
	sc := bufio.NewScanner(out)
	for len(pids) < n && sc.Scan() {
		pid, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
		if err != nil {
			return fmt.Errorf("intermediate printed %q, not a pid", sc.Text())
		}
		pids = append(pids, pid)
	}
	if err := cmd.Wait(); err != nil { // orphanstorm is a benchmark, not rotini: it waits for its own child
		return fmt.Errorf("intermediate: %w", err)
	}
	if len(pids) != n {
		return fmt.Errorf("intermediate forked %d of %d orphans", len(pids), n)
	}
	if who := parentOf(pids[0]); who != "" {
		fmt.Fprintf(os.Stderr, "orphanstorm: %d orphans, re-parented to %s\n", n, who)
	}

	start := time.Now()
	hold.Close() // EOF for every orphan at once
	left := pids
	for len(left) > 0 {
		alive := left[:0]
		for _, pid := range left {
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				alive = append(alive, pid)
			}
		}
		left = alive
		if len(left) == 0 {
			break
		}
		if time.Since(start) > timeout {
			return fmt.Errorf("%d of %d orphans still exist after %v (zombies nobody reaps?)", len(left), n, timeout)
		}
		time.Sleep(200 * time.Microsecond)
	}
	elapsed := time.Since(start)
	fmt.Printf("reaped %d in %.1f ms\n", n, float64(elapsed.Microseconds())/1000)
	return nil
}

// parentOf names the parent of pid as "pid P (comm)", or "" when /proc does
// not tell.
func parentOf(pid int) string {
	p, err := procfs.Stat(pid)
	if err != nil {
		return ""
	}
	parent, err := procfs.Stat(p.PPID)
	if err != nil {
		return fmt.Sprintf("pid %d ()", p.PPID)
	}
	return fmt.Sprintf("pid %d (%s)", p.PPID, parent.Comm)
}

// intermediate forks N orphans that block on fd 3, prints their pids and
// exits, which hands them to the init.
func intermediate() int {
	n, err := strconv.Atoi(os.Args[len(os.Args)-1])
	if err != nil || n <= 0 {
		fmt.Fprintln(os.Stderr, "orphanstorm intermediate: bad N")
		return 2
	}
	pids := make([]int, 0, n)

	// Fork from one locked thread with every signal blocked, so a child
	// never runs a Go signal handler; the child keeps the blocked mask.
	runtime.LockOSThread()
	all, old := ^uint64(0), uint64(0)
	sigprocmask(&all, &old)
	var ferr error
	for range n {
		pid, _, errno := syscall.RawSyscall(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0)
		if errno != 0 {
			ferr = errno
			break
		}
		if pid == 0 {
			orphan() // never returns
		}
		pids = append(pids, int(pid))
	}
	sigprocmask(&old, nil)
	runtime.UnlockOSThread()

	w := bufio.NewWriter(os.Stdout)
	for _, pid := range pids {
		fmt.Fprintln(w, pid)
	}
	w.Flush()
	if ferr != nil {
		fmt.Fprintf(os.Stderr, "orphanstorm intermediate: fork %d: %v\n", len(pids)+1, ferr)
		return 1
	}
	return 0
}

func sigprocmask(set, old *uint64) {
	syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, 2 /* SIG_SETMASK */, uintptr(unsafe.Pointer(set)),
		uintptr(unsafe.Pointer(old)), 8, 0, 0)
}

// buf is where an orphan reads into; a global, so the child touches no stack
// it would have to grow.
var buf [1]byte

// orphan is the whole life of a forked child: let go of stdin/out/err (so no
// one waits on a pipe for it), block until the release pipe closes, exit.
// Only raw system calls: the child has one thread and no working runtime.
//
//go:nosplit
//go:norace
func orphan() {
	syscall.RawSyscall(syscall.SYS_CLOSE, 0, 0, 0)
	syscall.RawSyscall(syscall.SYS_CLOSE, 1, 0, 0)
	syscall.RawSyscall(syscall.SYS_CLOSE, 2, 0, 0)
	syscall.RawSyscall(syscall.SYS_READ, releaseFd, uintptr(unsafe.Pointer(&buf[0])), 1)
	syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
}
