package reaper

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
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
		return fmt.Sprintf("killed by signal %s", unix.SignalName(e.Status.Signal()))
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
func (r *Reaper) Start(path string, argv []string, attr *syscall.ProcAttr) (int, <-chan Exit, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := syscall.ForkExec(path, argv, attr)
	if err != nil {
		return 0, nil, err
	}
	ch := make(chan Exit, 1)
	r.tracked[pid] = ch
	return pid, ch, nil
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
