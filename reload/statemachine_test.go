package reload

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/activation"
	"github.com/rotini-dev/rotini/control"
)

// The reload state machine, driven event by event on the fakes of
// fake_test.go. Each row is a sequence of events, as the app's goroutine
// sees them, and what must come of it: the result each reload caller gets,
// the generation that serves, every signal sent to every process, and the
// order of what rotini asked of the processes and sockets.
//
// Unless a row is cold, it starts from a serving generation 1 whose two
// workers (1/0, 1/1) said READY=1. Workers are ready on READY=1 alone;
// restart_backoff is 1s doubling to 4s; crash_limit is 5 in an hour;
// stop_timeout is 10s. Time moves only in `advance`.

// step is one event of a row, or one check in the middle of it.
type step struct {
	what string
	do   func(w *world)
}

// ready: each worker says READY=1, through the Manager's notify routing.
func sayReady(keys ...string) step {
	return step{"ready " + strings.Join(keys, " "), func(w *world) {
		for _, k := range keys {
			from := w.mark()
			p := w.procs.wait(w.t, k)
			w.m.notify.Deliver(w.a.name, []int{p.pid}, activation.Msg{Pid: p.pid, Ready: true})
			w.await(from, "notify "+k)
		}
	}}
}

// readyLate: a READY=1 from a worker that is gone already reaches nobody.
func readyLate(key string) step {
	return step{"late READY=1 from " + key, func(w *world) {
		p := w.procs.wait(w.t, key)
		w.m.notify.Deliver(w.a.name, []int{p.pid}, activation.Msg{Pid: p.pid, Ready: true})
		w.barrier()
	}}
}

// exit: the process exits with code (before_reload's exit ends the
// before_reload step of the rotation).
func exit(key string, code int) step {
	return step{fmt.Sprintf("%s exits %d", key, code), func(w *world) { w.end(key, exited(code)) }}
}

// dies: the process is killed by sig, which rotini did not send.
func dies(key string, sig syscall.Signal) step {
	return step{fmt.Sprintf("%s dies of %s", key, unix.SignalName(sig)), func(w *world) { w.end(key, killedBy(sig)) }}
}

func (w *world) end(key string, st unix.WaitStatus) {
	w.t.Helper()
	from := w.mark()
	w.procs.end(w.t, key, st)
	if strings.HasPrefix(key, "before_reload") {
		w.await(from, "before-reload")
		return
	}
	w.await(from, "exit "+key)
}

// reload: a reload request, as HUP or `rotini reload --wait` makes; the
// config (w.cfg) is read again.
func reload() step {
	return step{"reload", func(w *world) {
		reply := make(chan control.Result, 1)
		w.results = append(w.results, reply)
		from := w.mark()
		w.m.ReloadApps(nil, reply, make(chan control.Event, 64))
		// The request reaches the app through the Manager's reloader
		// (after the config is read), not at once: wait for it there, so
		// the steps that follow happen after it, as the row says.
		w.await(from, "reload")
		w.barrier()
	}}
}

// configure changes the config file, for the next reload.
func configure(what string, f func(*AppOptions)) step {
	return step{"config: " + what, func(w *world) { f(&w.cfg) }}
}

func advance(d time.Duration) step {
	return step{"advance " + d.String(), func(w *world) {
		w.clock.advance(d)
		w.barrier()
	}}
}

func stop() step {
	return step{"stop", func(w *world) {
		w.m.Stop(false)
		w.barrier()
	}}
}

func scale(delta int) step {
	return step{fmt.Sprintf("scale %+d", delta), func(w *world) {
		w.m.Scale(delta)
		w.barrier()
	}}
}

func scaleTo(n int) step {
	return step{fmt.Sprintf("scale to %d", n), func(w *world) {
		if err := w.m.ScaleApp("", n); err != nil {
			w.t.Fatal(err)
		}
		w.barrier()
	}}
}

// hold keeps generation gen's accept queue non-empty (or empties it):
// its handoff waits for the queue.
func holdQueue(gen int, held bool) step {
	return step{fmt.Sprintf("queue of generation %d held: %v", gen, held), func(w *world) { w.socks.hold(gen, held) }}
}

// failStart makes the next start of slot fail with err.
func failStart(slot string, err error) step {
	return step{fmt.Sprintf("the next start of %s fails: %v", slot, err), func(w *world) {
		w.procs.mu.Lock()
		w.procs.fail[slot] = err
		w.procs.mu.Unlock()
	}}
}

// await waits for something that happens off the test's goroutine (a
// handoff, a stop after a crash loop, a failed start) to be handled.
func await(d string) step {
	return step{"await " + d, func(w *world) { w.await(0, d) }}
}

// started waits for key's start; notStarted checks there was none (yet).
func started(key string) step {
	return step{"started " + key, func(w *world) { w.procs.wait(w.t, key) }}
}

func notStarted(key string) step {
	return step{"not started " + key, func(w *world) {
		w.barrier()
		w.procs.mu.Lock()
		defer w.procs.mu.Unlock()
		if w.procs.byKey[key] != nil {
			w.t.Errorf("%s started early; started: %v", key, w.procs.order)
		}
	}}
}

// noResult checks that reload i has not answered yet.
func noResult(i int) step {
	return step{fmt.Sprintf("reload %d has no result yet", i), func(w *world) {
		w.barrier()
		select {
		case r := <-w.results[i]:
			w.t.Errorf("reload %d answered early: %s", i, describe(r))
		default:
		}
	}}
}

// untraced checks that the trace does not hold entry (yet).
func untraced(entry string) step {
	return step{"not yet: " + entry, func(w *world) {
		w.barrier()
		if slices.Contains(w.tr.snapshot(), entry) {
			w.t.Errorf("%q happened early: %q", entry, w.tr.snapshot())
		}
	}}
}

// stopsWith ends every process still running once rotini stops (it may
// have decided so itself: a crash loop) and checks rotini's exit code.
func stopsWith(code int) step {
	return step{fmt.Sprintf("rotini exits %d", code), func(w *world) {
		w.await(0, "stop")
		w.procs.endAll(exited(0))
		select {
		case c := <-w.m.Done():
			w.code = &c
		case <-time.After(10 * time.Second):
			w.t.Fatalf("rotini did not stop; live: %v", w.procs.live())
		}
		if *w.code != code {
			w.t.Errorf("rotini exits %d, want %d", *w.code, code)
		}
	}}
}

// inject is one event of a `together`: it puts the event on the app's
// queue and says how to recognize it handled.
type inject struct {
	what string
	do   func(w *world) string
}

func exitNow(key string, code int) inject {
	return inject{fmt.Sprintf("%s exits %d", key, code), func(w *world) string {
		n := len(w.a.events)
		w.procs.end(w.t, key, exited(code))
		w.queued(n + 1)
		return "exit " + key
	}}
}

func readyNow(key string) inject {
	return inject{"READY=1 from " + key, func(w *world) string {
		n := len(w.a.events)
		p := w.procs.wait(w.t, key)
		w.m.notify.Deliver(w.a.name, []int{p.pid}, activation.Msg{Pid: p.pid, Ready: true})
		w.queued(n + 1)
		return "notify " + key
	}}
}

// timersNow: time passes, and the timers due fire.
func timersNow(d time.Duration) inject {
	return inject{"advance " + d.String(), func(w *world) string {
		n := len(w.a.events)
		w.clock.advance(d)
		w.queued(n + 1)
		return ""
	}}
}

// together queues the events in this order while the app's loop is held,
// then lets it handle them: the orders that real processes make rare (two
// exits in one instant, a READY=1 that was on its way when its worker died).
func together(evs ...inject) step {
	var names []string
	for _, e := range evs {
		names = append(names, e.what)
	}
	return step{"at once: " + strings.Join(names, ", "), func(w *world) {
		resume := make(chan struct{})
		w.pause <- resume
		w.barrier() // the loop is now held after handling it
		from := w.mark()
		var await []string
		for _, e := range evs {
			if d := e.do(w); d != "" {
				await = append(await, d)
			}
		}
		close(resume)
		for _, d := range await {
			w.await(from, d)
		}
		w.barrier()
	}}
}

// check is an assertion in the middle of a row.
func check(what string, f func(w *world) error) step {
	return step{what, func(w *world) {
		w.barrier()
		if err := f(w); err != nil {
			w.t.Errorf("%s: %v", what, err)
		}
	}}
}

// outcome is what a row must end with.
type outcome struct {
	// results: one per reload, in the order they were asked: "ok N" or
	// "failed N: reason" where N is the generation serving afterwards.
	// {2/0} stands for that process's pid, {sleep} for the command's
	// path; a trailing … matches any rest.
	results []string
	serving int // 0: rotini has stopped
	// signals: every process that got a signal, and what it got, in
	// order; any other process got none.
	signals map[string]string
	started []string // if set: every process started, in order
	// order: chains of trace entries, each in this order (the workers of
	// a generation are signalled in no particular order).
	order  [][]string
	absent []string // entries the trace must not hold
	logs   []string // regexps the log must match
	noLogs []string // regexps it must not match
}

type row struct {
	name  string
	opts  func(*AppOptions)
	cold  bool // no READY=1 from generation 1 before the steps
	steps []step
	want  outcome
}

func TestStateMachine(t *testing.T) {
	withReadyTimeout := func(o *AppOptions) { o.Ready.Timeout = 30 * time.Second }
	neverGiveUp := func(o *AppOptions) { o.CrashLimit = 0 }
	crashLimit := func(n int) func(*AppOptions) { return func(o *AppOptions) { o.CrashLimit = n } }
	beforeReload := func(o *AppOptions) { o.BeforeReload = []string{"true"}; o.BeforeReloadTimeout = 5 * time.Second }
	bothStopped := map[string]string{"1/0": "TERM CONT", "1/1": "TERM CONT"}
	gen2Failed := "failed 1: worker 0 (pid {2/0}) of generation 2 exit status 3 before it was ready"

	rows := []row{
		// Rotation.
		{
			name: "rotation: the new generation serves, then the old one is stopped",
			steps: []step{reload(), sayReady("2/0", "2/1"), await("handed-off 1"), exit("1/0", 0), exit("1/1", 0),
				check("each worker of generation 2 gets its own socket as fd 3, and the notify socket", workerOf(2))},
			want: outcome{
				results: []string{"ok 2"}, serving: 2, signals: bothStopped,
				started: []string{"1/0", "1/1", "2/0", "2/1"},
				order: [][]string{
					{"serve http 1", "socket http 2", "start 2/0", "start 2/1", "serve http 2", "kill 1/0 TERM", "kill 1/0 CONT", "release http 1"},
					{"serve http 2", "kill 1/1 TERM", "kill 1/1 CONT", "release http 1"},
				},
			},
		},
		{
			name:  "rotation: a reload before the first generation is ready waits for it",
			cold:  true,
			steps: []step{reload(), untraced("socket http 2"), noResult(0), sayReady("1/0", "1/1"), sayReady("2/0", "2/1"), await("handed-off 1")},
			want:  outcome{results: []string{"ok 2"}, serving: 2, signals: bothStopped, order: [][]string{{"serve http 1", "socket http 2", "serve http 2"}}},
		},
		{
			name:  "rotation: reloads asked during a reload coalesce into one more",
			steps: []step{reload(), reload(), reload(), sayReady("2/0", "2/1"), sayReady("3/0", "3/1"), await("handed-off 1"), await("handed-off 2")},
			want: outcome{
				results: []string{"ok 2", "ok 3", "ok 3"}, serving: 3,
				signals: map[string]string{"1/0": "TERM CONT", "1/1": "TERM CONT", "2/0": "TERM CONT", "2/1": "TERM CONT"},
				started: []string{"1/0", "1/1", "2/0", "2/1", "3/0", "3/1"},
			},
		},
		{
			name:  "reload by signal: the serving workers get reload_signal",
			steps: []step{configure("reload = signal", func(o *AppOptions) { o.Reload = Signal }), reload()},
			want:  outcome{results: []string{"ok 1"}, serving: 1, signals: map[string]string{"1/0": "HUP", "1/1": "HUP"}, absent: []string{"socket http 2"}},
		},
		{
			name: "reload by restart: the old generation stops first, then the new one starts",
			steps: []step{configure("reload = restart", func(o *AppOptions) { o.Reload = Restart }), reload(),
				untraced("start 2/0"), exit("1/0", 0), exit("1/1", 0), sayReady("2/0", "2/1")},
			want: outcome{results: []string{"ok 2"}, serving: 2, signals: bothStopped, order: [][]string{{"kill 1/1 TERM", "release http 1", "start 2/0"}}},
		},

		// Rollback.
		{
			name:  "rollback: a new worker exits while booting; a READY=1 from it later counts for nothing",
			steps: []step{reload(), sayReady("2/1"), exit("2/0", 3), readyLate("2/0"), exit("2/1", 0)},
			want: outcome{
				results: []string{gen2Failed}, serving: 1, signals: map[string]string{"2/1": "TERM CONT"},
				order: [][]string{{"kill 2/1 TERM", "release http 2"}}, absent: []string{"serve http 2"},
			},
		},
		{
			name:  "rollback: a new worker is killed by a signal while booting",
			steps: []step{reload(), dies("2/0", syscall.SIGSEGV)},
			want: outcome{
				results: []string{"failed 1: worker 0 (pid {2/0}) of generation 2 killed by signal SIGSEGV before it was ready"},
				serving: 1, signals: map[string]string{"2/1": "TERM CONT"}, absent: []string{"serve http 2"},
			},
		},
		{
			name:  "rollback: the new generation is not ready within ready.timeout",
			opts:  withReadyTimeout,
			steps: []step{reload(), sayReady("2/0"), advance(30*time.Second - time.Nanosecond), noResult(0), advance(time.Nanosecond)},
			want: outcome{
				results: []string{"failed 1: generation 2 not ready after 30s (worker 1 pid {2/1} waiting for READY=1)"},
				serving: 1, signals: map[string]string{"2/0": "TERM CONT", "2/1": "TERM CONT"}, absent: []string{"serve http 2"},
			},
		},
		{
			name: "rollback: a new worker's command is not found, said as such",
			steps: []step{configure("command not found, one worker", func(o *AppOptions) {
				o.Workers = 1
				o.Spawn = func(SpawnVars) ([]string, []string, string, error) {
					return []string{"rotini-test-no-such-command"}, nil, "", nil
				}
			}), reload()},
			want: outcome{
				results: []string{"failed 1: worker 0 of generation 2 could not start: command rotini-test-no-such-command: executable file not found in $PATH"},
				serving: 1, order: [][]string{{"socket http 2", "release http 2"}}, absent: []string{"start 2/0", "serve http 2"},
				logs:   []string{`cannot start worker: .*error="command rotini-test-no-such-command: executable file not found`},
				noLogs: []string{`exit status 12[67]`, `code=12[67]`, `worker exited: generation=2`},
			},
		},
		{
			name:  "rollback: a new worker's exec is refused, said as such",
			steps: []step{failStart("2/0", syscall.EACCES), reload(), await("start-failed 2/0")},
			want: outcome{
				results: []string{"failed 1: worker 0 of generation 2 could not start: exec /proc/self/exe (shim for {sleep}): permission denied"},
				serving: 1, signals: map[string]string{"2/1": "TERM CONT"}, absent: []string{"serve http 2"},
				noLogs: []string{`exit status 12[67]`, `code=12[67]`},
			},
		},
		{
			name:  "rollback: a new worker cannot be forked for lack of processes",
			steps: []step{failStart("2/1", syscall.EAGAIN), reload(), await("evForkFailed")},
			want: outcome{
				results: []string{"failed 1: cannot start worker 1 of generation 2: exec /proc/self/exe (shim for {sleep}): resource temporarily unavailable: the process limit is reached…"},
				serving: 1, signals: map[string]string{"2/0": "TERM CONT"}, absent: []string{"serve http 2"},
				noLogs: []string{`crash`},
			},
		},

		// Crashes of serving workers.
		{
			name: "crash: a serving worker restarts after restart_backoff, doubling per slot up to the max",
			opts: neverGiveUp,
			steps: []step{
				exit("1/0", 1), advance(999 * time.Millisecond), notStarted("1/0#1"), advance(time.Millisecond), started("1/0#1"),
				exit("1/0#1", 1), advance(1999 * time.Millisecond), notStarted("1/0#2"), advance(time.Millisecond), started("1/0#2"),
				exit("1/0#2", 1), advance(4 * time.Second), started("1/0#3"),
				exit("1/0#3", 1), advance(4 * time.Second), started("1/0#4"),
				// Another slot's deaths do not lengthen its delay.
				exit("1/1", 1), advance(time.Second), started("1/1#1"),
			},
			want: outcome{serving: 1, started: []string{"1/0", "1/1", "1/0#1", "1/0#2", "1/0#3", "1/0#4", "1/1#1"}},
		},
		{
			name: "crash: a worker that ran longer than crash_window restarts after restart_backoff again",
			opts: func(o *AppOptions) { o.CrashLimit = 0; o.CrashWindow = time.Minute },
			steps: []step{
				exit("1/0", 1), advance(time.Second), exit("1/0#1", 1), advance(2 * time.Second), started("1/0#2"),
				advance(61 * time.Second), exit("1/0#2", 1), advance(time.Second), started("1/0#3"),
			},
			want: outcome{serving: 1},
		},
		{
			name: "crash loop: one worker dying crash_limit times ends rotini with its code, however healthy its sibling",
			opts: crashLimit(3),
			steps: []step{
				exit("1/0", 7), advance(time.Second), exit("1/0#1", 7), advance(2 * time.Second), exit("1/0#2", 7),
				stopsWith(7),
			},
			want: outcome{signals: map[string]string{"1/1": "TERM CONT"}, logs: []string{`crash loop: stopping rotini: .*crashes=3 .*exit_code=7`}},
		},
		{
			name:  "crash: workers that die in the same second are one crash",
			opts:  crashLimit(2),
			steps: []step{exit("1/0", 1), exit("1/1", 1), advance(time.Second), started("1/0#1"), started("1/1#1")},
			want:  outcome{serving: 1, noLogs: []string{`crash loop`}},
		},
		{
			name:  "crash loop: the same deaths a second apart are two crashes",
			opts:  crashLimit(2),
			steps: []step{exit("1/0", 1), advance(time.Second), exit("1/1", 1), stopsWith(1)},
			want:  outcome{signals: map[string]string{"1/0#1": "TERM CONT"}},
		},
		{
			name: "crash loop: ended by a worker that cannot start, rotini exits 127 as a shell would, and says what happened",
			opts: crashLimit(2),
			steps: []step{failStart("1/0", syscall.ENOENT), exit("1/0", 1), advance(time.Second), await("start-failed 1/0"),
				stopsWith(127)},
			want: outcome{
				signals: map[string]string{"1/1": "TERM CONT"},
				logs:    []string{`cannot start worker: generation=1 worker=0 error="exec /proc/self/exe \(shim for .*\): no such file or directory"`, `crash loop: stopping rotini: .*exit_code=127`},
				noLogs:  []string{`exit status 127`, `worker exited: generation=1 worker=0 pid=0`},
			},
		},

		// Scaling.
		{
			name:  "scale: TTIN adds a worker, TTOU stops the last one",
			steps: []step{scale(+1), sayReady("1/2"), scale(-1), exit("1/2", 0), check("two workers", workers(2))},
			want:  outcome{serving: 1, signals: map[string]string{"1/2": "TERM CONT"}, started: []string{"1/0", "1/1", "1/2"}},
		},
		{
			name:  "scale: a worker scaled down that does not stop is killed at stop_timeout",
			steps: []step{scaleTo(1), advance(10*time.Second - time.Nanosecond), check("not yet killed", signalsOf("1/1", "TERM CONT")), advance(time.Nanosecond)},
			want:  outcome{serving: 1, signals: map[string]string{"1/1": "TERM CONT KILL"}},
		},
		{
			name:  "scale: below one worker is refused",
			steps: []step{scale(-1), exit("1/1", 0), scale(-1), check("one worker", workers(1))},
			want:  outcome{serving: 1, signals: map[string]string{"1/1": "TERM CONT"}, logs: []string{`cannot scale below one worker: asked=0`}},
		},
		{
			name: "scale: during a rotation both generations grow, and the next reload keeps the count",
			steps: []step{reload(), scaleTo(3), sayReady("2/0", "2/1", "2/2"), reload(), sayReady("3/0", "3/1", "3/2"),
				await("handed-off 1"), await("handed-off 2"), check("three workers", workers(3))},
			want: outcome{
				results: []string{"ok 2", "ok 3"}, serving: 3,
				started: []string{"1/0", "1/1", "2/0", "2/1", "1/2", "2/2", "3/0", "3/1", "3/2"},
				signals: map[string]string{"1/0": "TERM CONT", "1/1": "TERM CONT", "1/2": "TERM CONT", "2/0": "TERM CONT", "2/1": "TERM CONT", "2/2": "TERM CONT"},
			},
		},

		// Stopping.
		{
			name:  "stop during a rotation: the reload fails and both generations stop",
			steps: []step{reload(), sayReady("2/0"), stop(), stopsWith(0)},
			want: outcome{
				results: []string{"failed 1: rotini is stopping"},
				signals: map[string]string{"1/0": "TERM CONT", "1/1": "TERM CONT", "2/0": "TERM CONT", "2/1": "TERM CONT"},
				absent:  []string{"serve http 2"},
			},
		},
		{
			name:  "stop during a handoff: the old generation is signalled once",
			steps: []step{holdQueue(1, true), reload(), sayReady("2/0", "2/1"), stop(), holdQueue(1, false), await("handed-off 1"), stopsWith(0)},
			want: outcome{
				results: []string{"ok 2"},
				signals: map[string]string{"1/0": "TERM CONT", "1/1": "TERM CONT", "2/0": "TERM CONT", "2/1": "TERM CONT"},
			},
		},
		{
			name:  "stop: workers still running at stop_timeout are killed",
			steps: []step{stop(), exit("1/0", 0), advance(10 * time.Second), stopsWith(0)},
			want:  outcome{signals: map[string]string{"1/0": "TERM CONT", "1/1": "TERM CONT KILL"}},
		},

		// before_reload.
		{
			name: "before_reload succeeds: the new generation starts after it, in its directory",
			opts: beforeReload,
			steps: []step{reload(), started("before_reload"), untraced("socket http 2"), exit("before_reload", 0), sayReady("2/0", "2/1"),
				await("handed-off 1"), check("before_reload's argv and environment", beforeReloadRan)},
			want: outcome{results: []string{"ok 2"}, serving: 2, signals: bothStopped, order: [][]string{{"start before_reload", "socket http 2", "serve http 2"}}},
		},
		{
			name:  "before_reload fails: no new generation",
			opts:  beforeReload,
			steps: []step{reload(), exit("before_reload", 1)},
			want:  outcome{results: []string{`failed 1: before_reload ["true"]: exit status 1`}, serving: 1, absent: []string{"socket http 2"}},
		},
		{
			name: "before_reload times out: it is killed and there is no new generation",
			opts: beforeReload,
			steps: []step{reload(), started("before_reload"), advance(5*time.Second - time.Nanosecond), noResult(0),
				advance(time.Nanosecond), await("before-reload")},
			want: outcome{
				results: []string{"failed 1: before_reload: true timed out after 5s"}, serving: 1,
				signals: map[string]string{"before_reload": "KILL"}, absent: []string{"socket http 2"},
			},
		},
		{
			name:  "stop while before_reload runs: it is killed, the reload fails, nothing new starts",
			opts:  beforeReload,
			steps: []step{reload(), started("before_reload"), stop(), await("before-reload"), stopsWith(0)},
			want: outcome{
				results: []string{"failed 1: rotini is stopping"},
				signals: map[string]string{"before_reload": "KILL", "1/0": "TERM CONT", "1/1": "TERM CONT"},
				absent:  []string{"socket http 2"},
			},
		},

		// Orders that real processes make rare.
		{
			name:  "an old worker exits during the handoff: only its live sibling is signalled",
			steps: []step{holdQueue(1, true), reload(), sayReady("2/0", "2/1"), exit("1/0", 0), holdQueue(1, false), await("handed-off 1"), exit("1/1", 0)},
			want: outcome{
				results: []string{"ok 2"}, serving: 2, signals: map[string]string{"1/1": "TERM CONT"},
				order: [][]string{{"serve http 2", "kill 1/1 TERM", "release http 1"}},
			},
		},
		{
			name:  "every old worker exits during the handoff: drained without a signal",
			steps: []step{holdQueue(1, true), reload(), sayReady("2/0", "2/1"), exit("1/0", 0), exit("1/1", 0), holdQueue(1, false), await("handed-off 1")},
			want:  outcome{results: []string{"ok 2"}, serving: 2, order: [][]string{{"serve http 2", "release http 1"}}},
		},
		{
			name:  "a READY=1 queued behind its worker's exit: the exit counts, nothing is promoted",
			steps: []step{reload(), sayReady("2/1"), together(exitNow("2/0", 3), readyNow("2/0"))},
			want:  outcome{results: []string{gen2Failed}, serving: 1, signals: map[string]string{"2/1": "TERM CONT"}, absent: []string{"serve http 2"}},
		},
		{
			name: "a READY=1 queued ahead of its worker's exit: promoted, then restarted as a crash",
			steps: []step{reload(), sayReady("2/1"), together(readyNow("2/0"), exitNow("2/0", 3)), await("handed-off 1"),
				advance(time.Second), started("2/0#1")},
			want: outcome{results: []string{"ok 2"}, serving: 2, signals: bothStopped, order: [][]string{{"serve http 2", "kill 1/0 TERM", "start 2/0#1"}}},
		},
		{
			name:  "an old and a new worker exit in the same instant, old first: rolled back, the old one restarted",
			steps: []step{reload(), sayReady("2/1"), together(exitNow("1/0", 1), exitNow("2/0", 3)), advance(time.Second), started("1/0#1")},
			want:  outcome{results: []string{gen2Failed}, serving: 1, signals: map[string]string{"2/1": "TERM CONT"}, absent: []string{"serve http 2"}},
		},
		{
			name:  "an old and a new worker exit in the same instant, new first: rolled back, the old one restarted",
			steps: []step{reload(), sayReady("2/1"), together(exitNow("2/0", 3), exitNow("1/0", 1)), advance(time.Second), started("1/0#1")},
			want:  outcome{results: []string{gen2Failed}, serving: 1, signals: map[string]string{"2/1": "TERM CONT"}, absent: []string{"serve http 2"}},
		},
		{
			name: "a draining worker and a serving one exit in the same instant",
			steps: []step{reload(), sayReady("2/0", "2/1"), await("handed-off 1"), together(exitNow("1/0", 0), exitNow("2/0", 1)),
				exit("1/1", 0), advance(time.Second), started("2/0#1")},
			want: outcome{results: []string{"ok 2"}, serving: 2, signals: bothStopped, order: [][]string{{"kill 1/1 TERM", "release http 1", "start 2/0#1"}}},
		},
		{
			name:  "the ready timeout and the last READY=1 in the same instant, timeout first: rolled back",
			opts:  withReadyTimeout,
			steps: []step{reload(), sayReady("2/0"), together(timersNow(30*time.Second), readyNow("2/1"))},
			want: outcome{
				results: []string{"failed 1: generation 2 not ready after 30s (worker 1 pid {2/1} waiting for READY=1)"},
				serving: 1, signals: map[string]string{"2/0": "TERM CONT", "2/1": "TERM CONT"}, absent: []string{"serve http 2"},
			},
		},
		{
			name:  "the ready timeout and the last READY=1 in the same instant, READY=1 first: promoted",
			opts:  withReadyTimeout,
			steps: []step{reload(), sayReady("2/0"), together(readyNow("2/1"), timersNow(30*time.Second)), await("handed-off 1")},
			want:  outcome{results: []string{"ok 2"}, serving: 2, signals: bothStopped},
		},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			o := fakeApp()
			if r.opts != nil {
				r.opts(&o)
			}
			w := newWorld(t, o)
			if !r.cold {
				sayReady("1/0", "1/1").do(w)
				w.await(0, "notify 1/1")
			}
			for i, s := range r.steps {
				if t.Failed() {
					t.Fatalf("stopped before step %d (%s)", i, s.what)
				}
				s.do(w)
			}
			w.checkOutcome(r.want)
			if t.Failed() {
				t.Logf("steps: %s", stepNames(r.steps))
				t.Logf("trace: %q", w.tr.snapshot())
				t.Logf("log:\n%s", w.log.String())
			}
		})
	}
}

func stepNames(steps []step) string {
	var s []string
	for _, st := range steps {
		s = append(s, st.what)
	}
	return strings.Join(s, "; ")
}

// expand replaces {2/0} by that process's pid and {sleep} by the command.
func (w *world) expand(s string) string {
	return regexp.MustCompile(`\{[^}]+\}`).ReplaceAllStringFunc(s, func(m string) string {
		key := m[1 : len(m)-1]
		if key == "sleep" {
			return sleepPath
		}
		return fmt.Sprint(w.procs.wait(w.t, key).pid)
	})
}

func (w *world) checkOutcome(want outcome) {
	t := w.t
	t.Helper()
	for i, r := range want.results {
		if i >= len(w.results) {
			t.Errorf("reload %d: never asked for", i)
			continue
		}
		select {
		case got := <-w.results[i]:
			exp := w.expand(r)
			g := describe(got)
			if p, ok := strings.CutSuffix(exp, "…"); ok && strings.HasPrefix(g, p) || g == exp {
				continue
			}
			t.Errorf("reload %d: %s\n                want %s", i, g, exp)
		case <-time.After(10 * time.Second):
			t.Errorf("reload %d: no result", i)
		}
	}
	if len(w.results) > len(want.results) {
		t.Errorf("%d reloads asked, %d results stated", len(w.results), len(want.results))
	}
	if want.serving > 0 {
		st := w.status()
		if st.Serving != want.serving || !st.Ready {
			t.Errorf("generation %d serves (ready: %v), want %d", st.Serving, st.Ready, want.serving)
		}
	} else if w.code == nil {
		t.Errorf("a row that ends with rotini stopped must say with which code (stopsWith)")
	}
	if want.signals == nil {
		want.signals = map[string]string{}
	}
	got := w.procs.signalled()
	for _, k := range union(got, want.signals) {
		if got[k] != want.signals[k] {
			t.Errorf("signals to %s: %q, want %q", k, got[k], want.signals[k])
		}
	}
	if want.started != nil {
		w.procs.mu.Lock()
		order := slices.Clone(w.procs.order)
		w.procs.mu.Unlock()
		if !slices.Equal(order, want.started) {
			t.Errorf("started %v, want %v", order, want.started)
		}
	}
	tr := w.tr.snapshot()
	for _, chain := range want.order {
		if !subsequence(tr, chain) {
			t.Errorf("the trace does not hold, in this order, %q", chain)
		}
	}
	for _, e := range want.absent {
		if slices.Contains(tr, e) {
			t.Errorf("the trace holds %q", e)
		}
	}
	log := w.log.String()
	for _, re := range want.logs {
		if !regexp.MustCompile(re).MatchString(log) {
			t.Errorf("the log does not match %q", re)
		}
	}
	for _, re := range want.noLogs {
		if m := regexp.MustCompile(re).FindString(log); m != "" {
			t.Errorf("the log matches %q: %q", re, m)
		}
	}
}

func union(a, b map[string]string) []string {
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

func subsequence(all, sub []string) bool {
	i := 0
	for _, e := range all {
		if i < len(sub) && e == sub[i] {
			i++
		}
	}
	return i == len(sub)
}

func workers(n int) func(w *world) error {
	return func(w *world) error {
		st := w.status()
		live := 0
		for _, g := range st.Generations {
			if g.Number == st.Serving {
				live = len(g.Workers)
			}
		}
		if st.Workers != n || live != n {
			return fmt.Errorf("%d workers configured, %d live, want %d", st.Workers, live, n)
		}
		return nil
	}
}

func signalsOf(key, want string) func(w *world) error {
	return func(w *world) error {
		if got := w.procs.signalled()[key]; got != want {
			return fmt.Errorf("%s got %q, want %q", key, got, want)
		}
		return nil
	}
}

// workerOf checks how generation gen's workers were started: through the
// LISTEN_PID shim, the generation's own socket at fd 3, and the app's
// environment.
func workerOf(gen int) func(w *world) error {
	return func(w *world) error {
		for i := range 2 {
			p := w.procs.wait(w.t, fmt.Sprintf("%d/%d", gen, i))
			var errs []error
			if !p.shim || p.path != sleepPath || !slices.Equal(p.argv, []string{sleepPath, "1000"}) {
				errs = append(errs, fmt.Errorf("%s runs %s %q (shim %v)", p.key, p.path, p.argv, p.shim))
			}
			if len(p.files) != 4 || p.files[3] != w.socks.fd(gen) {
				errs = append(errs, fmt.Errorf("%s has files %v, want 0 1 2 and generation %d's socket %d", p.key, p.files, gen, w.socks.fd(gen)))
			}
			for k, v := range map[string]string{"LISTEN_FDS": "1", "LISTEN_FDNAMES": "http", "ROTINI_APP": "fake", "ROTINI_GENERATION": fmt.Sprint(gen), "ROTINI_WORKER": fmt.Sprint(i), "NOTIFY_SOCKET": w.m.notify.Path("fake")} {
				if got := p.getenv(k); got != v {
					errs = append(errs, fmt.Errorf("%s has %s=%q, want %q", p.key, k, got, v))
				}
			}
			if err := errors.Join(errs...); err != nil {
				return err
			}
		}
		return nil
	}
}

func beforeReloadRan(w *world) error {
	p := w.procs.wait(w.t, "before_reload")
	if !slices.Equal(p.argv, []string{"true"}) || p.shim || p.getenv("ROTINI_APP") != "fake" || len(p.files) != 3 {
		return fmt.Errorf("before_reload ran %s %q (shim %v) with ROTINI_APP=%q and files %v", p.path, p.argv, p.shim, p.getenv("ROTINI_APP"), p.files)
	}
	return nil
}

// TestEveryEventIsHandled: the app's dispatch has a case for every event
// type (events.go), so its panic on an unknown event cannot be reached.
// It reads the source: a type that is an event but has no case fails here,
// not in production.
func TestEveryEventIsHandled(t *testing.T) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, ".", func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, 0)
	if err != nil {
		t.Fatal(err)
	}
	events, cases := map[string]bool{}, map[string]bool{}
	for _, f := range pkgs["reload"].Files {
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv == nil {
				continue
			}
			recv := fn.Recv.List[0].Type
			if fn.Name.Name == "appEvent" {
				events[fmt.Sprint(recv)] = true
			}
			if star, ok := recv.(*ast.StarExpr); ok && fmt.Sprint(star.X) == "app" && fn.Name.Name == "handle" {
				ast.Inspect(fn.Body, func(n ast.Node) bool {
					if c, ok := n.(*ast.CaseClause); ok {
						for _, e := range c.List {
							cases[fmt.Sprint(e)] = true
						}
					}
					return true
				})
			}
		}
	}
	if len(events) < 10 {
		t.Fatalf("found %d event types; is appEvent still the marker method?", len(events))
	}
	for e := range events {
		if !cases[e] {
			t.Errorf("event %s has no case in app.handle", e)
		}
	}
}

// TestUnknownEventPanics: an event the dispatch does not know is a
// programming error, not something to drop.
func TestUnknownEventPanics(t *testing.T) {
	a := &app{name: "x"}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "reload.unknownEvent") {
			t.Errorf("recovered %v, want a panic naming the type", r)
		}
	}()
	a.handle(unknownEvent{})
}

type unknownEvent struct{}

func (unknownEvent) appEvent() {}
