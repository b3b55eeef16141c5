package reload

import (
	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/activation"
	"github.com/rotini-dev/rotini/control"
	"github.com/rotini-dev/rotini/reaper"
)

// appEvent is everything an app's goroutine acts on: what other goroutines
// ask of it (reloads, signals, scaling, stop, status) and what happened to
// its processes and timers. The set is closed: only the types in this file
// have the method, and app.handle has
// a case for each; an event without one is a programming error, and handle
// panics naming its type rather than dropping it.
type appEvent interface{ appEvent() }

// Requests from other goroutines.
type (
	// reloadReq asks for a reload (HUP, `rotini reload`, a watcher).
	reloadReq struct {
		opts     *AppOptions // new options, or nil to keep
		reply    chan<- control.Result
		progress chan<- control.Event
		why      string
		fail     string // the reload cannot happen: answer with this reason
	}
	// evStop stops the app; handoff: its serving generation receives no
	// new connection already, and drains its queue before its stop signal.
	evStop   struct{ fast, handoff bool }
	evSignal struct{ sig unix.Signal }
	// evScale sets the worker count, or changes it by delta when workers
	// is 0 (TTIN/TTOU: relative to the count the app has when it handles
	// the event, not when the signal arrived).
	evScale struct{ workers, delta int }
	// statusReq asks for the app's status (`rotini status`, `reload --wait`).
	statusReq struct{ reply chan control.AppStatus }
)

// What happened to a worker.
type (
	// evExit: the reaper reaped the worker.
	evExit struct {
		w    *worker
		exit reaper.Exit
	}
	// evStartFailed: the worker could not be started at all (w.startErr
	// says why); it has no pid and no exit status.
	evStartFailed struct{ w *worker }
	// evForkFailed: the worker could not be forked for lack of processes
	// (EAGAIN); not a crash (see fork.go).
	evForkFailed struct {
		g        *generation
		index    int
		restarts int
		err      error
	}
	// evNotify: an sd_notify message attributed to the worker.
	evNotify struct {
		w   *worker
		msg activation.Msg
	}
	// evProbed: the worker's readiness checks passed.
	evProbed struct{ w *worker }
	// evBeforeReload: the rotation's before_reload finished; err is nil
	// when it succeeded.
	evBeforeReload struct {
		r   *rotation
		err error
	}
	// evHandedOff: a replaced generation's sockets are empty and the
	// grace has passed.
	evHandedOff struct {
		g   *generation
		why string
	}
)

// Timers (app.after).
type (
	// evAged: the worker has been alive for min_uptime.
	evAged struct{ w *worker }
	// evReadyTimeout: the generation's ready.timeout has passed.
	evReadyTimeout struct{ g *generation }
	// evRestart: a crashed worker's backoff has passed.
	evRestart struct {
		g     *generation
		index int
		prior int
	}
	// evForkRetry: the backoff after a failed fork has passed.
	evForkRetry struct {
		g        *generation
		index    int
		restarts int
	}
	// evKill: a draining generation's stop timeout has passed.
	evKill struct{ g *generation }
	// evKillWorker: a scaled-down worker's stop timeout has passed.
	evKillWorker struct{ w *worker }
	// evHelpers: time to look again for a draining generation's helpers.
	evHelpers struct{ g *generation }
)

func (reloadReq) appEvent()      {}
func (evStop) appEvent()         {}
func (evSignal) appEvent()       {}
func (evScale) appEvent()        {}
func (statusReq) appEvent()      {}
func (evExit) appEvent()         {}
func (evStartFailed) appEvent()  {}
func (evForkFailed) appEvent()   {}
func (evNotify) appEvent()       {}
func (evProbed) appEvent()       {}
func (evBeforeReload) appEvent() {}
func (evHandedOff) appEvent()    {}
func (evAged) appEvent()         {}
func (evReadyTimeout) appEvent() {}
func (evRestart) appEvent()      {}
func (evForkRetry) appEvent()    {}
func (evKill) appEvent()         {}
func (evKillWorker) appEvent()   {}
func (evHelpers) appEvent()      {}
