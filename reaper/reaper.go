package reaper

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/signame"
	"github.com/rotini-dev/rotini/sigstate"
)

// SignalBase is added to a signal number to form the exit code of a process
// killed by that signal, as shells, tini and dumb-init do.
const SignalBase = 128

// Exit is how one process ended.
type Exit struct {
	Pid    int
	Status unix.WaitStatus
}

// Code is the exit code a shell would report: the process's own status, or
// SignalBase+N when signal N killed it.
func (e Exit) Code() int {
	switch {
	case e.Status.Exited():
		return e.Status.ExitStatus()
	case e.Status.Signaled():
		return SignalBase + int(e.Status.Signal())
	}
	return SignalBase
}

func (e Exit) String() string {
	if e.Status.Signaled() {
		sig := e.Status.Signal()
		name := unix.SignalName(sig)
		if name == "" {
			name = "SIG" + signame.Name(sig) // SIGRTMIN+3, SIG32
		}
		return fmt.Sprintf("killed by signal %s", name)
	}
	return fmt.Sprintf("exit status %d", e.Status.ExitStatus())
}

// Reaper owns wait4. Create it with New, run Run in one goroutine, and call
// Notify on every SIGCHLD.
type Reaper struct {
	log     hclog.Logger
	kick    chan struct{}
	orphans atomic.Uint64

	mu      sync.Mutex
	tracked map[int]chan Exit
}

// New returns a Reaper that logs orphans to log.
func New(log hclog.Logger) *Reaper {
	if log.IsDebug() {
		in := sigstate.Inherited()
		// whole=false: a build without sigstate.EntryFlag, which sees only
		// what the Go runtime left of the inheritance.
		log.Debug("children get the signal state rotini inherited",
			"ignored", fmt.Sprintf("%#x", in.Ignored), "blocked", fmt.Sprintf("%#x", in.Blocked), "whole", sigstate.Whole())
	}
	return &Reaper{
		log:     log,
		kick:    make(chan struct{}, 1),
		tracked: make(map[int]chan Exit),
	}
}

// SetSubreaper makes the calling process a child subreaper, so orphans of its
// descendants are re-parented to it instead of to the namespace's PID 1.
func SetSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", err)
	}
	return nil
}

// Start starts path with syscall.ForkExec and registers the pid before the
// drain loop can see it exit. The returned channel receives the process's exit
// exactly once.
//
// The process gets PR_SET_PDEATHSIG = SIGKILL (unless attr asks for another
// signal), so that it dies with rotini even when rotini is SIGKILLed and is
// not PID 1. The kernel sends it when the thread that forked exits, not the
// process, so every fork happens on one OS thread that lives as long as
// rotini (see forkThread).
func (r *Reaper) Start(path string, argv []string, attr *syscall.ProcAttr) (int, <-chan Exit, error) {
	a := *attr
	// The signal state rotini inherited (ignored HUP under nohup, …),
	// through a shim when there is some to restore.
	path, argv, a.Env = sigstate.Wrap(path, argv, a.Env)
	sys := syscall.SysProcAttr{}
	if a.Sys != nil {
		sys = *a.Sys
	}
	if sys.Pdeathsig == 0 {
		sys.Pdeathsig = syscall.SIGKILL
	}
	a.Sys = &sys
	var (
		pid int
		ch  chan Exit
		err error
	)
	onForkThread(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		pid, err = syscall.ForkExec(path, argv, &a)
		if err != nil {
			return
		}
		ch = make(chan Exit, 1)
		r.tracked[pid] = ch
	})
	if err != nil {
		return 0, nil, err
	}
	return pid, ch, nil
}

// Kill sends sig to pid as kill(2) does: a negative pid names a process
// group. It is here, beside Start, so that whoever starts processes through
// a Reaper holds one value that both starts and signals them, and a test can
// stand in for both at once.
func (r *Reaper) Kill(pid int, sig syscall.Signal) error { return syscall.Kill(pid, sig) }

var (
	forkOnce  sync.Once
	forkCalls chan func()
)

// onForkThread runs f on the fork thread and returns when f has returned.
func onForkThread(f func()) {
	forkOnce.Do(func() {
		forkCalls = make(chan func())
		go forkThread()
	})
	done := make(chan struct{})
	forkCalls <- func() { f(); close(done) }
	<-done
}

// forkThread runs every fork of the process on one OS thread, locked and
// never released: the goroutine never returns, so the thread (the parent
// that PR_SET_PDEATHSIG watches) lives exactly as long as rotini.
func forkThread() {
	runtime.LockOSThread()
	for f := range forkCalls {
		f()
	}
}

// Notify asks Run to drain exited children. It never blocks: SIGCHLDs that
// arrive while a drain is pending coalesce into it, and the drain collects
// every exited child, not one per signal.
func (r *Reaper) Notify() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Orphans is how many untracked processes have been reaped so far.
func (r *Reaper) Orphans() uint64 { return r.orphans.Load() }

// Run drains exited children each time Notify is called, until ctx is done.
func (r *Reaper) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
			r.drain()
		}
	}
}

// drain reaps every child that has exited, until wait4 reports none left.
func (r *Reaper) drain() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			// ECHILD: no children at all; 0: children, none exited.
			return
		}
		if ws.Stopped() || ws.Continued() {
			continue
		}
		e := Exit{Pid: pid, Status: ws}
		if ch, ok := r.tracked[pid]; ok {
			delete(r.tracked, pid)
			ch <- e // capacity 1, sent to exactly once
			continue
		}
		n := r.orphans.Add(1)
		if r.log.IsDebug() {
			r.log.Debug("reaped orphan", "pid", pid, "status", e.String(), "orphans", n)
		}
	}
}
