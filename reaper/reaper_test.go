package reaper

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/sigstate"
)

// TestMain lets this test binary act as the signal shim: processes are
// started through /proc/self/exe, the test binary, when the test inherited
// ignored or blocked signals (see package sigstate).
func TestMain(m *testing.M) {
	sigstate.ExecShimIfAsked()
	os.Exit(m.Run())
}

// A started process gets PR_SET_PDEATHSIG, which the kernel fires when the
// thread that forked it exits. Start is called here from a goroutine that
// locks its thread and returns, which terminates that thread: the child
// must not notice, since the fork happened on the thread that lives as long
// as the process. The proof is a round trip through `cat` after the
// caller's thread is gone: a SIGKILL sent at that thread's exit would have
// been queued already, and cat could not answer.
func TestChildOutlivesCallingThread(t *testing.T) {
	r := New(hclog.NewNullLogger())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)

	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	type started struct {
		pid, tid int
		exit     <-chan Exit
		err      error
	}
	res := make(chan started, 1)
	var call func()
	call = func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if unix.Gettid() == unix.Getpid() {
			// The main thread is never terminated: keep it, try another.
			go call()
			select {}
		}
		pid, exit, err := r.Start("/bin/cat", []string{"cat"}, &syscall.ProcAttr{
			Files: []uintptr{inR.Fd(), outW.Fd(), 2},
		})
		res <- started{pid, unix.Gettid(), exit, err}
	}
	go call()
	s := <-res
	if s.err != nil {
		t.Fatal(s.err)
	}
	inR.Close()
	outW.Close()
	defer reap(r, s.pid, s.exit)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", s.tid)); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d that called Start still exists", s.tid)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := inW.WriteString("alive\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(outR).ReadString('\n')
	if err != nil || line != "alive\n" {
		t.Fatalf("cat died with the thread that called Start: read %q, %v", line, err)
	}
}

// reap kills pid and waits for its exit, standing in for the SIGCHLDs that
// call Notify in rotini.
func reap(r *Reaper, pid int, exit <-chan Exit) Exit {
	unix.Kill(pid, unix.SIGKILL)
	for {
		r.Notify()
		select {
		case e := <-exit:
			return e
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Kill with a negative pid reaches the process group of a process started
// in a group of its own, as reload stops a worker, and the exit says so.
func TestKillSignalsTheGroup(t *testing.T) {
	r := New(hclog.NewNullLogger())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	pid, exit, err := r.Start("/bin/sleep", []string{"sleep", "1000"}, &syscall.ProcAttr{
		Files: []uintptr{0, 1, 2}, Sys: &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Kill(-pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for {
		r.Notify() // standing in for SIGCHLD
		select {
		case e := <-exit:
			if !e.Status.Signaled() || e.Status.Signal() != syscall.SIGTERM {
				t.Errorf("exit %s, want killed by SIGTERM", e)
			}
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}
