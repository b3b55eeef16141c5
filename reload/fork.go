package reload

import (
	"fmt"
	"time"

	"github.com/rotini-dev/rotini/control"
)

// A fork that fails with EAGAIN means the process limit is reached — the
// pids controller of the container's cgroup (pids.max, `docker run
// --pids-limit`) or RLIMIT_NPROC of the workers' user. That is resource
// exhaustion, not a crash: it is not counted toward crash_limit, the slot
// is tried again after restart_backoff, doubling up to restart_backoff_max,
// and it is logged once per episode (at error), then at debug until every
// slot that failed has started (at info). A generation being started by a reload is rolled
// back instead: the serving one keeps serving.

func (a *app) forkFailed(e evForkFailed) {
	g := e.g
	if g.state == draining || a.stopping {
		return
	}
	episode := !a.forkFailing()
	a.forkFailures++
	a.lastStartErr = &control.StartError{Time: time.Now(), Generation: g.num, Worker: e.index, Error: e.err.Error()}
	why := fmt.Sprintf("cannot start worker %d of generation %d: %v: the process limit is reached (a pids cgroup's pids.max, or RLIMIT_NPROC of the workers' user)", e.index, g.num, e.err)
	if a.rot != nil && a.rot.next == g && g != a.serving {
		a.log.Error("resource exhaustion: cannot fork a worker", "generation", g.num, "worker", e.index, "error", e.err)
		a.rollback(why)
		return
	}
	if g.forkBackoff == nil {
		g.forkBackoff = map[int]time.Duration{}
	}
	d, ok := g.forkBackoff[e.index]
	if !ok {
		d = g.o.RestartBackoff
	}
	g.forkBackoff[e.index] = min(d*2, max(g.o.RestartBackoffMax, g.o.RestartBackoff))
	if episode {
		a.log.Error("resource exhaustion: cannot fork a worker; retrying, not counted as a crash",
			"generation", g.num, "worker", e.index, "error", e.err, "hint", "raise the pids limit (pids.max, --pids-limit) or RLIMIT_NPROC, or lower workers", "retry_in", d)
	} else {
		a.log.Debug("fork failed again", "generation", g.num, "worker", e.index, "error", e.err, "failures", a.forkFailures, "retry_in", d)
	}
	a.after(d, evForkRetry{g: g, index: e.index, restarts: e.restarts})
}

// forkWorked clears the slot's delay, and ends the episode of fork failures
// when no other slot is still waiting to be tried again.
func (a *app) forkWorked(g *generation, index int) {
	if _, failed := g.forkBackoff[index]; !failed {
		return
	}
	delete(g.forkBackoff, index)
	if !a.forkFailing() {
		a.log.Info("workers start again after resource exhaustion", "generation", g.num, "failed_forks", a.forkFailures)
		a.forkFailures = 0
	}
}

// forkFailing reports whether a slot of a generation that is not draining
// waits to be tried again after a failed fork: an episode is under way.
func (a *app) forkFailing() bool {
	for _, g := range a.allGens() {
		if g.state != draining && len(g.forkBackoff) > 0 {
			return true
		}
	}
	return false
}
