package reload

import (
	"fmt"
	"sync"
	"time"

	"github.com/rotini-dev/rotini/control"
)

// reloads is the queue of reload requests between the goroutines that ask
// (the PID-1 signal loop for a HUP, a watcher, the control socket) and the
// Manager's reloader goroutine, which reads the config for them: a config
// that takes long to read delays no signal.
type reloads struct {
	mu     sync.Mutex
	queue  []reloadCall
	closed bool          // the reloader has ended: a new request is answered at once
	wake   chan struct{} // cap 1: something was queued
	quit   chan struct{} // closed once every app has stopped
}

// reloadCall is one request: the named apps (all when none), where their
// results and progress go (either may be nil), and why, for the log.
type reloadCall struct {
	names    []string
	reply    chan<- control.Result
	progress chan<- control.Event
	why      string
}

// reload queues a reload for the reloader goroutine and returns at once.
func (m *Manager) reload(names []string, reply chan<- control.Result, progress chan<- control.Event, why string) {
	q := &m.requests
	c := reloadCall{names: names, reply: reply, progress: progress, why: why}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		m.refuseStopped(c)
		return
	}
	q.queue = append(q.queue, c)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// reloader is the Manager's goroutine that reads the config: for every
// request queued while it read the last one, it calls Options.Reconfigure
// once (each of them arrived before that read began, so it sees the file
// as new as each asked for) and sends each target app its reloadReq. It
// ends once every app has stopped.
func (m *Manager) reloader() {
	q := &m.requests
	for {
		select {
		case <-q.wake:
		case <-q.quit:
			// Every app has stopped: what is still queued is answered
			// here, or its caller would wait for a reply that never comes.
			q.mu.Lock()
			calls := q.queue
			q.queue, q.closed = nil, true
			q.mu.Unlock()
			for _, c := range calls {
				m.refuseStopped(c)
			}
			return
		}
		q.mu.Lock()
		calls := q.queue
		q.queue = nil
		q.mu.Unlock()
		if len(calls) == 0 {
			continue
		}
		opts, notes, err := m.reconfigure()
		for _, c := range calls {
			m.apply(c, opts, notes, err)
		}
	}
}

// reconfigure reads the config once through Options.Reconfigure: the new
// options by app name (nil without a Reconfigure: options never change),
// notes on what could not be applied, or why the config is refused.
func (m *Manager) reconfigure() (map[string]*AppOptions, []string, error) {
	if m.o.Reconfigure == nil {
		return nil, nil, nil
	}
	apps, notes, err := m.o.Reconfigure()
	if err != nil {
		m.o.Log.Error("reload refused, keeping the running config", "error", err)
		return nil, nil, err
	}
	opts := map[string]*AppOptions{}
	for i := range apps {
		opts[apps[i].Name] = &apps[i]
		if m.byName[apps[i].Name] == nil {
			m.o.Log.Warn("reload: new app in config; adding apps needs a restart of rotini", "app", apps[i].Name)
		}
	}
	return opts, notes, nil
}

// apply sends each app that r targets its reloadReq, with its options
// from opts, or the refusal err; r's unknown app names are answered here.
func (m *Manager) apply(r reloadCall, opts map[string]*AppOptions, notes []string, err error) {
	reply, progress, why := r.reply, r.progress, r.why
	m.refuseUnknown(r)
	targets := m.targets(r)
	if err != nil {
		// Through each app's loop, which knows the generation that goes
		// on serving.
		for _, a := range targets {
			sendReload(a, reloadReq{reply: reply, progress: progress, fail: err.Error()})
		}
		return
	}
	if progress != nil {
		for _, n := range notes {
			select {
			case progress <- control.Event{Time: time.Now(), App: "rotini", Kind: control.KindNote, Message: n}:
			default:
			}
		}
	}
	for _, a := range targets {
		var o *AppOptions
		if opts != nil {
			o = opts[a.name]
			if o == nil {
				m.o.Log.Warn("reload: app removed from config; removing apps needs a restart of rotini", "app", a.name)
			}
		}
		sendReload(a, reloadReq{opts: o, reply: reply, progress: progress, why: why})
	}
}

// refuseStopped answers r once every app has stopped: "no app named" for
// the names that are none, "rotini is stopping" for the others.
func (m *Manager) refuseStopped(r reloadCall) {
	m.refuseUnknown(r)
	for _, a := range m.targets(r) {
		stoppedReply(a, r.reply)
	}
}

// refuseUnknown answers "no app named" for each name in r that is no app.
func (m *Manager) refuseUnknown(r reloadCall) {
	if r.reply == nil {
		return
	}
	for _, n := range r.names {
		if m.byName[n] == nil {
			reason := fmt.Sprintf("no app named %q", n)
			r.reply <- control.Result{App: n, Reason: reason, Message: "failed: " + reason}
		}
	}
}

// targets are the apps r names that exist, or every app when it names none.
func (m *Manager) targets(r reloadCall) []*app {
	if len(r.names) == 0 {
		return m.apps
	}
	var ts []*app
	for _, n := range r.names {
		if a := m.byName[n]; a != nil {
			ts = append(ts, a)
		}
	}
	return ts
}

// sendReload hands req to a's loop, or, when that loop has ended (rotini
// is stopping), answers req's caller itself: every target app answers
// exactly once.
func sendReload(a *app, req reloadReq) {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	if a.ended {
		stoppedReply(a, req.reply)
		return
	}
	select {
	case a.events <- req:
	case <-a.quit:
		stoppedReply(a, req.reply)
	}
}

// refuseQueuedReloads is the app loop's last act, after quit is closed:
// the reload requests still queued, which the loop will never handle, are
// answered as refused, and any later one by sendReload itself.
func (a *app) refuseQueuedReloads() {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	a.ended = true
	for {
		select {
		case ev := <-a.events:
			if r, ok := ev.(reloadReq); ok {
				stoppedReply(a, r.reply)
			}
		default:
			return
		}
	}
}

// stoppedReply answers a reload of a, which has stopped, on reply.
func stoppedReply(a *app, reply chan<- control.Result) {
	if reply != nil {
		reply <- control.Result{App: a.name, Reason: "rotini is stopping", Message: "failed: rotini is stopping"}
	}
}
