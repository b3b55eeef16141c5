package reload

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/control"
)

// requestReload queues a reload; requests that arrive while one runs
// coalesce into a single further reload.
func (a *app) requestReload(r reloadReq) {
	if a.stopping && r.fail == "" {
		r.fail = "rotini is stopping"
	}
	if r.fail != "" {
		res := control.Result{App: a.name, Generation: a.serving.num, Reason: r.fail, Message: failedMessage(r.fail, a.serving.num)}
		if a.stopping {
			res.Message = "failed: " + r.fail // nothing goes on serving
		}
		if r.progress != nil {
			a.emitTo([]chan<- control.Event{r.progress}, control.Event{Kind: control.KindFailed, Generation: res.Generation, Message: res.Message})
		}
		if r.reply != nil {
			r.reply <- res
		}
		return
	}
	if r.opts != nil && (r.opts.Proxy == nil) != (a.relays == nil) {
		reason := "adding or removing a proxy block needs a restart of rotini"
		a.log.Error("reload refused", "reason", reason)
		if r.reply != nil {
			r.reply <- control.Result{App: a.name, Reason: reason, Generation: a.serving.num, Message: failedMessage(reason, a.serving.num)}
		}
		return
	}
	if r.opts != nil {
		a.pendOpts = r.opts
	}
	if r.reply != nil {
		a.pending = append(a.pending, r.reply)
	}
	if r.progress != nil {
		a.pendProg = append(a.pendProg, r.progress)
		if a.rot != nil || !a.serving.ready {
			a.emitTo([]chan<- control.Event{r.progress}, control.Event{Kind: control.KindQueued, Message: "queued behind the reload in progress or the first generation's start"})
		}
	}
	if r.why != "" {
		a.log.Info("reload requested", "by", r.why)
	}
	a.wantMore = true
	a.maybeStartReload()
}

// maybeStartReload starts the queued reload when none is running and the
// serving generation is ready (or gave up being so): a HUP during start-up
// waits for the first generation instead of racing it.
func (a *app) maybeStartReload() {
	if !a.wantMore || a.rot != nil || a.stopping {
		return
	}
	if !a.serving.ready && !a.serving.timedOut {
		return
	}
	a.wantMore = false
	if a.pendOpts != nil {
		o := *a.pendOpts
		if a.scaled != nil && o.Workers == a.scaled.from {
			// `rotini scale` outlives reloads until the config's own
			// worker count changes.
			o.Workers = a.scaled.to
		} else {
			a.scaled = nil
		}
		a.o = o
		a.pendOpts = nil
	}
	rot := &rotation{old: a.serving, started: time.Now(), waiters: a.pending, progress: a.pendProg, cancel: make(chan struct{})}
	a.pending, a.pendProg = nil, nil
	a.rot = rot
	mode := a.o.Reload
	a.log.Info("reload starting", "mode", mode, "serving", a.serving.num)
	a.emit(control.Event{Kind: control.KindStarting, Generation: a.serving.num, Message: fmt.Sprintf("reload (%s) of %s, serving generation %d", mode, a.name, a.serving.num)})
	switch mode {
	case Signal:
		sig := a.o.ReloadSignal
		for _, w := range a.serving.workers {
			w.kill(sig)
		}
		a.log.Info("reload signal sent", "signal", unix.SignalName(sig), "generation", a.serving.num, "workers", len(a.serving.workers))
		a.finish(true, "")
		return
	}
	if len(a.o.BeforeReload) > 0 {
		o, num := a.o, a.gens+1
		go func() {
			_, _, dir, err := o.Spawn(SpawnVars{FDs: listenFDs(o), Ports: listenPorts(o), Generation: num})
			if err == nil {
				err = a.runBeforeReload(o, dir, rot.cancel)
			}
			a.send(evBeforeReload{rot, err})
		}()
		return
	}
	a.beforeReloadDone(rot, nil)
}

func (a *app) runBeforeReload(o AppOptions, dir string, cancel <-chan struct{}) error {
	timeout := o.BeforeReloadTimeout
	if timeout <= 0 {
		timeout = DefaultBeforeReloadTimeout
	}
	env := setEnv(a.m.o.Env, "ROTINI_APP", o.Name)
	e, err := a.runOnce(o.BeforeReload, dir, env, timeout, cancel)
	if err != nil {
		return fmt.Errorf("before_reload: %w", err)
	}
	if e.Code() != 0 {
		return fmt.Errorf("before_reload %q: %s", o.BeforeReload, e.String())
	}
	return nil
}

func (a *app) beforeReloadDone(rot *rotation, err error) {
	if a.rot != rot {
		return
	}
	if err != nil {
		a.finish(false, err.Error())
		return
	}
	if a.o.Reload == Restart {
		a.stopGeneration(a.serving, "restart")
		return // drained() starts the new generation
	}
	rot.next = a.newGeneration(a.o)
	if err := rot.next.err; err != nil {
		a.log.Error("generation cannot start", "generation", rot.next.num, "error", err)
		a.finish(false, fmt.Sprintf("generation %d: %v", rot.next.num, err))
		return
	}
	msg := fmt.Sprintf("starting generation %d (%d workers)", rot.next.num, rot.next.o.Workers)
	if b := rot.next.o.Batch; b > 0 && b < rot.next.o.Workers {
		msg = fmt.Sprintf("starting generation %d (%d workers, %d at a time)", rot.next.num, rot.next.o.Workers, b)
	}
	a.emit(control.Event{Kind: control.KindGeneration, Generation: rot.next.num, Total: rot.next.o.Workers, Message: msg})
	a.startWorkers(rot.next)
}

// promote makes the ready new generation the serving one and drains the old.
func (a *app) promote() {
	rot := a.rot
	old := rot.old
	a.serving = rot.next
	a.serving.state = serving
	// From here on the old generation receives no new connection.
	a.steer(a.serving)
	a.emit(control.Event{Kind: control.KindReady, Generation: a.serving.num, Total: a.serving.o.Workers,
		Message: fmt.Sprintf("generation %d ready (%d/%d) in %s", a.serving.num, len(a.serving.workers), a.serving.o.Workers, time.Since(a.serving.started).Round(time.Millisecond))})
	if old != nil && old.state != draining {
		a.emit(control.Event{Kind: control.KindDraining, Generation: old.num, Message: fmt.Sprintf("draining generation %d", old.num)})
		a.handoff(old, fmt.Sprintf("replaced by generation %d", a.serving.num))
	}
	a.finish(true, "")
}

// rollback stops a failed new generation; the serving one keeps serving.
func (a *app) rollback(reason string) {
	rot := a.rot
	a.log.Error("reload failed: rolling back", "failed_generation", rot.next.num, "serving", a.serving.num, "reason", reason)
	a.stopGeneration(rot.next, "rolled back")
	a.finish(false, reason)
}

// finish reports the reload's result and starts a coalesced one if queued.
func (a *app) finish(ok bool, reason string) {
	rot := a.rot
	if rot == nil {
		return
	}
	res := control.Result{App: a.name, OK: ok, Generation: a.serving.num, Reason: reason, Duration: time.Since(rot.started)}
	if ok {
		res.Message = fmt.Sprintf("done: generation %d serving, in %s", res.Generation, res.Duration.Round(time.Millisecond))
		a.log.Info("reload done", "generation", a.serving.num, "duration", res.Duration.Round(time.Millisecond))
		a.emit(control.Event{Kind: control.KindDone, Generation: res.Generation, Message: res.Message})
	} else {
		res.Message = failedMessage(reason, res.Generation)
		a.log.Error("reload failed", "serving", a.serving.num, "reason", reason, "duration", res.Duration.Round(time.Millisecond))
		a.emit(control.Event{Kind: control.KindFailed, Generation: res.Generation, Message: res.Message})
	}
	a.last = &res
	a.rot = nil
	for _, w := range rot.waiters {
		w <- res
	}
	a.maybeStartReload()
}

// stop drains every generation; a fast stop makes a graceful one faster.
func (a *app) stop(fast, handoff bool) {
	if a.stopping && (!fast || a.fast) {
		return
	}
	a.stopping = true
	a.fast = a.fast || fast
	gens := a.allGens() // before finish forgets the generation being started
	if a.rot != nil {
		close(a.rot.cancel)
		a.finish(false, "rotini is stopping")
	}
	for _, p := range a.pending {
		p <- control.Result{App: a.name, Reason: "rotini is stopping", Message: "failed: rotini is stopping"}
	}
	a.pending, a.pendProg = nil, nil
	for _, g := range gens {
		if handoff && !a.fast && g == a.serving && g.state == serving {
			a.handoff(g, "rotini is stopping")
			continue
		}
		a.stopGeneration(g, "rotini is stopping")
	}
}

// scale sets the worker count of the serving generation (and of one being
// started), and of future generations.
func (a *app) scale(n int) {
	if a.stopping {
		return
	}
	if n < 1 {
		a.log.Warn("cannot scale below one worker", "asked", n)
		return
	}
	if n > MaxWorkers {
		a.log.Warn("cannot scale above the worker limit", "asked", n, "limit", MaxWorkers)
		return
	}
	if n == a.o.Workers {
		return
	}
	a.log.Info("scaling", "workers", n, "from", a.o.Workers)
	if a.scaled == nil {
		a.scaled = &scaling{from: a.o.Workers}
	}
	a.scaled.to = n
	a.o.Workers = n
	for _, g := range []*generation{a.serving, a.next()} {
		if g == nil || g.state == draining {
			continue
		}
		if g.launched >= g.o.Workers {
			g.launched = n // fully started: the new slots start now
		}
		g.o.Workers = n
		for i := 0; i < min(n, g.launched); i++ {
			if _, ok := g.workers[i]; !ok {
				a.spawn(g, i, 0)
			}
		}
		for i, w := range g.workers {
			if i >= n && w.state != stopping {
				if w.state == starting {
					close(w.cancel)
				}
				w.state = stopping
				w.stop(g.o.StopSignal)
				a.after(g.o.StopTimeout, evKillWorker{w})
			}
		}
		a.nextBatch(g)
		a.checkGeneration(g)
	}
}

// MaxWorkers bounds an app's worker count however it is set (config, TTIN,
// `rotini scale`): each worker is a process, and the container's process
// limit is shared with everything else in it.
const MaxWorkers = 1000

// emit sends a progress event to everyone waiting on the current reload,
// never blocking the app's goroutine: a slow reader loses events, not the
// result, which comes on its own channel.
func (a *app) emit(e control.Event) {
	if a.rot != nil {
		a.emitTo(a.rot.progress, e)
	}
}

func (a *app) emitTo(to []chan<- control.Event, e control.Event) {
	e.Time, e.App = time.Now(), a.name
	for _, c := range to {
		select {
		case c <- e:
		default:
		}
	}
}

// scaling remembers a worker count set by `rotini scale` or TTIN/TTOU, and
// the config's count it replaced.
type scaling struct{ from, to int }
