package pid1

import (
	"os"
	"os/signal"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/signame"
)

// Action is what rotini does with a signal it receives.
type Action int

const (
	// Forward sends the signal (after rewrite) to every worker's process group.
	Forward Action = iota
	// Drop does nothing.
	Drop
	// Stop drains: the stop signal to every group, SIGKILL after the stop timeout.
	Stop
	// FastStop sends SIGQUIT to every group and SIGKILL FastStopTimeout
	// after (or at the stop timeout, if shorter).
	FastStop
	// Reload rotates, restarts or signals each app according to its reload mode.
	Reload
	// ScaleUp adds one worker to every app.
	ScaleUp
	// ScaleDown removes one worker from every app.
	ScaleDown
)

// FastStopTimeout is how long a fast stop waits after SIGQUIT before
// SIGKILL, for every workload: the zero-config child and each app's
// generations.
const FastStopTimeout = 2 * time.Second

var actionNames = [...]string{"forward", "drop", "stop", "fast-stop", "reload", "scale-up", "scale-down"}

func (a Action) String() string { return actionNames[a] }

// Policy maps signals to actions; a signal that is not in it is forwarded.
type Policy map[unix.Signal]Action

// Action returns what to do with sig.
func (p Policy) Action(sig unix.Signal) Action {
	if a, ok := p[sig]; ok {
		return a
	}
	return Forward
}

// never holds the signals rotini must not forward in any mode: SIGCHLD is
// rotini's own business, SIGURG is sent by the Go runtime to itself for
// preemption, and a SIGPIPE means rotini wrote to a closed pipe.
var never = Policy{unix.SIGCHLD: Drop, unix.SIGURG: Drop, unix.SIGPIPE: Drop}

func with(base Policy, extra Policy) Policy {
	p := Policy{}
	for s, a := range base {
		p[s] = a
	}
	for s, a := range extra {
		p[s] = a
	}
	return p
}

// ZeroConfig is the policy of `rotini -- cmd`: tini's, plus a graceful and a
// fast stop. HUP is forwarded, since without owned sockets there is nothing
// to rotate; TTIN/TTOU are forwarded since there is no pool to scale.
var ZeroConfig = with(never, Policy{
	unix.SIGTERM: Stop,
	unix.SIGINT:  Stop,
	unix.SIGQUIT: FastStop,
})

// Managed is the policy when rotini runs apps from a config file.
var Managed = with(ZeroConfig, Policy{
	unix.SIGHUP:  Reload,
	unix.SIGTTIN: ScaleUp,
	unix.SIGTTOU: ScaleDown,
})

// notCaught are left alone: SIGURG is the Go runtime's preemption, SIGCHLD
// has a channel of its own, and SIGKILL/SIGSTOP cannot be caught. The
// synchronous fault signals (SEGV, BUS, FPE, ILL, TRAP, SYS) are caught:
// the runtime still crashes on a real fault in rotini's code, but one sent
// with kill(2) is an ordinary signal for the workload, as it is to tini.
// Signals 32-34 and SIGPROF, which the runtime never hands to os/signal,
// arrive through notifyUncaught.
var notCaught = map[unix.Signal]bool{
	unix.SIGURG: true, unix.SIGKILL: true, unix.SIGSTOP: true, unix.SIGCHLD: true,
}

// Notify registers a handler for every catchable signal. Call it first thing
// in main. SIGCHLD arrives on its own channel so that a burst of forwarded
// signals can never delay reaping, and reaping can never crowd out a TERM.
// signal.Ignore is never used: ignored dispositions survive exec and would be
// inherited by every worker.
func Notify() (sigs, chld chan os.Signal) {
	chld = make(chan os.Signal, 1)
	signal.Notify(chld, unix.SIGCHLD)
	sigs = make(chan os.Signal, 128)
	var all []os.Signal
	for s := unix.Signal(1); s <= 64; s++ {
		if !notCaught[s] && !slices.Contains(uncaughtByGo, s) {
			all = append(all, s)
		}
	}
	signal.Notify(sigs, all...)
	notifyUncaught(sigs)
	return sigs, chld
}

// sigName is sig's name for the log: "SIGTERM", or for the signals that
// have no name in the platform's table, kill(1)'s with the prefix
// ("SIGRTMIN+3", "SIG32").
func sigName(sig unix.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return "SIG" + signame.Name(sig)
}
