package pid1

import (
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/procfs"
	"github.com/rotini-dev/rotini/reaper"
)

// Workload is what rotini supervises: one child in zero-config mode, a set of
// apps with a config file. Its methods are called from the signal loop only
// and must not block on the workload's processes.
type Workload interface {
	// Signal forwards sig to every process group of the workload.
	Signal(sig unix.Signal)
	// Stop begins a graceful (fast=false) or fast stop; calling it again
	// while stopping may only make the stop faster.
	Stop(fast bool)
	// Reload and Scale act on every app; a workload that cannot do them
	// forwards or ignores them and says so.
	Reload()
	Scale(delta int)
	// Done yields the exit code once, when everything has ended.
	Done() <-chan int
}

// Options configure Run.
type Options struct {
	Log    hclog.Logger
	Policy Policy
	// Rewrite maps a received signal to the one forwarded; 0 drops it.
	Rewrite map[unix.Signal]unix.Signal
	// Reaper is told about every SIGCHLD.
	Reaper *reaper.Reaper
	// Signals and Chld are the channels from Notify.
	Signals <-chan os.Signal
	Chld    <-chan os.Signal
}

// Run is the signal loop: it dispatches signals by policy until the workload
// is done, then kills and reaps whatever it left behind and returns the exit
// code. The reaper must already be running.
func Run(o Options, w Workload) int {
	log := o.Log
	for {
		select {
		case <-o.Chld:
			o.Reaper.Notify()
		case s := <-o.Signals:
			sig := s.(unix.Signal)
			dispatch(log, o, w, sig)
		case code := <-w.Done():
			Cleanup(log, o.Reaper)
			return code
		}
	}
}

func dispatch(log hclog.Logger, o Options, w Workload, sig unix.Signal) {
	a := o.Policy.Action(sig)
	log.Debug("signal received", "signal", sigName(sig), "action", a)
	switch a {
	case Drop:
	case Stop:
		w.Stop(false)
	case FastStop:
		w.Stop(true)
	case Reload:
		w.Reload()
	case ScaleUp:
		w.Scale(+1)
	case ScaleDown:
		w.Scale(-1)
	case Forward:
		to, ok := o.Rewrite[sig]
		if !ok {
			to = sig
		}
		if to == 0 {
			log.Debug("signal dropped by rewrite", "signal", sigName(sig))
			return
		}
		w.Signal(to)
	}
}

// cleanupGrace bounds how long Cleanup waits for killed leftovers to be
// reaped; SIGKILL cannot be refused, so this only covers the kernel's work.
const cleanupGrace = 5 * time.Second

// Cleanup SIGKILLs every remaining descendant of rotini (members of worker
// groups that outlived their leader, daemons that double-forked and were
// adopted) and waits until the reaper has collected them, so that nothing
// rotini started outlives it, whether or not it is PID 1.
func Cleanup(log hclog.Logger, r *reaper.Reaper) {
	deadline := time.Now().Add(cleanupGrace)
	for i := 0; ; i++ {
		left := live(os.Getpid())
		if len(left) == 0 {
			return
		}
		if i == 0 {
			log.Info("killing leftover processes", "count", len(left))
		}
		for _, pid := range left {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		r.Notify()
		if time.Now().After(deadline) {
			log.Warn("leftover processes still present at exit", "pids", left)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// live lists the live (non-zombie) descendants of pid, children first.
// A zombie is not killed, but its children are looked at: it is only
// waiting for its parent to reap it.
func live(pid int) []int {
	var out []int
	for _, d := range procfs.Descendants(pid) {
		if p, err := procfs.Stat(d); err == nil && p.State != 'Z' {
			out = append(out, d)
		}
	}
	return out
}
