package reload

import (
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/procfs"
)

// Helpers are processes a generation's workers started outside their own
// process group: daemons that called setsid or double-forked. A signal to a
// worker's group misses them, and once their parent exits they are adopted
// by rotini (PID 1 or subreaper), so without more they would outlive their
// generation, each holding a copy of the listening sockets.
//
// They are attributed by the environment they inherited: every worker gets
// ROTINI_APP and ROTINI_GENERATION, and /proc/PID/environ shows what a
// process was started with. A draining generation sends its helpers the
// stop signal too, SIGKILLs them at the stop timeout with its workers, and
// counts as drained only when they are gone. A helper
// that cleared its environment cannot be told apart; it lives until rotini
// exits, when every leftover is killed.

// helperPoll is how often a draining generation checks whether the helpers
// it signalled are gone: they are not rotini's children, so nothing tells.
const helperPoll = 100 * time.Millisecond

// killGrace bounds the wait for SIGKILLed helpers to vanish;
// helperRescan is how often a draining generation without workers looks
// for helpers it has not found yet.
const (
	killGrace    = 5 * time.Second
	helperRescan = time.Second
)

// procIdentity tells a process from a later one that reuses its pid.
type procIdentity struct {
	start uint64 // procfs.Process.StartTime
}

// generationOf reads ROTINI_APP and ROTINI_GENERATION from a process's
// initial environment; ok is false when it has none or cannot be read.
func generationOf(pid int) (app string, gen int, ok bool) {
	env, err := procfs.Environ(pid)
	if err != nil {
		return "", 0, false
	}
	var genS string
	for _, kv := range env {
		if v, found := strings.CutPrefix(kv, "ROTINI_APP="); found {
			app = v
		} else if v, found := strings.CutPrefix(kv, "ROTINI_GENERATION="); found {
			genS = v
		}
	}
	gen, err = strconv.Atoi(genS)
	return app, gen, app != "" && err == nil
}

// scanHelpers finds g's helpers among rotini's descendants: processes
// whose environment names g, that are not in the process group of one of
// g's live workers (the group signal reaches those). Newly found ones are
// recorded and sent sig (then SIGCONT, so that a stopped one can act on
// it); known ones that are gone are forgotten. It reports how many it
// found and how many remain.
func (a *app) scanHelpers(g *generation, sig unix.Signal) (found, remain int) {
	groups := map[int]bool{}
	for _, w := range g.workers {
		if w.pid > 0 {
			groups[w.pid] = true
		}
	}
	if g.helpers == nil {
		g.helpers = map[int]procIdentity{}
	}
	for _, pid := range procfs.Descendants(os.Getpid()) {
		if _, known := g.helpers[pid]; known {
			continue
		}
		if pgid, err := unix.Getpgid(pid); err != nil || groups[pgid] {
			continue
		}
		app, gen, ok := generationOf(pid)
		if !ok || app != a.name || gen != g.num {
			continue
		}
		p, err := procfs.Stat(pid)
		if err != nil || p.State == 'Z' {
			continue
		}
		g.helpers[pid] = procIdentity{start: p.StartTime}
		found++
		a.log.Info("stopping a helper of the generation", "generation", g.num, "pid", pid, "signal", unix.SignalName(sig))
		_ = unix.Kill(pid, sig)
		if sig != unix.SIGKILL {
			_ = unix.Kill(pid, unix.SIGCONT)
		}
	}
	return found, a.pruneHelpers(g)
}

// pruneHelpers forgets g's helpers that are gone and reports how many
// remain; it reads only their /proc entries.
func (a *app) pruneHelpers(g *generation) int {
	for pid, id := range g.helpers {
		if p, err := procfs.Stat(pid); err != nil || p.State == 'Z' || p.StartTime != id.start {
			delete(g.helpers, pid)
		}
	}
	return len(g.helpers)
}

// signalHelpers sends sig to g's known helpers and to any found now.
func (a *app) signalHelpers(g *generation, sig unix.Signal) {
	for pid, id := range g.helpers {
		if p, err := procfs.Stat(pid); err == nil && p.StartTime == id.start {
			_ = unix.Kill(pid, sig)
			_ = unix.Kill(pid, unix.SIGCONT)
		}
	}
	a.scanHelpers(g, sig)
}

// killHelpers SIGKILLs every helper of g, known or not yet found; from
// then on g waits for them only killGrace.
func (a *app) killHelpers(g *generation) {
	n := 0
	for pid, id := range g.helpers {
		if p, err := procfs.Stat(pid); err == nil && p.State != 'Z' && p.StartTime == id.start {
			_ = unix.Kill(pid, unix.SIGKILL)
			n++
		}
	}
	found, _ := a.scanHelpers(g, unix.SIGKILL)
	if n += found; n > 0 {
		a.log.Warn("stop timeout: killed helpers of the generation", "generation", g.num, "helpers", n)
	}
	g.helpersKilled = true
	g.helpersKilledAt = time.Now()
}

// maybeDrained declares g drained once its workers and its helpers are
// gone; until then it checks again every helperPoll.
func (a *app) maybeDrained(g *generation) {
	if len(g.workers) > 0 || !a.isDraining(g) {
		return
	}
	sig := g.o.StopSignal
	if a.fast {
		sig = unix.SIGQUIT
	}
	if g.helpersKilled {
		sig = unix.SIGKILL
	}
	// SIGKILL cannot be refused, but takes the kernel a moment; a process
	// stuck in uninterruptible sleep may take longer than is worth
	// waiting, so after killGrace the generation counts as drained anyway.
	//
	// Between full scans of rotini's descendants (when the last worker
	// has gone, then every helperRescan, and before the verdict) only the
	// known helpers are looked at: a scan reads every descendant's
	// environment.
	remain := 0
	if !g.helpersScanned.IsZero() && time.Since(g.helpersScanned) < helperRescan {
		remain = a.pruneHelpers(g)
	}
	if remain == 0 {
		_, remain = a.scanHelpers(g, sig)
		g.helpersScanned = time.Now()
	}
	if remain == 0 || (g.helpersKilled && time.Since(g.helpersKilledAt) > killGrace) {
		if remain > 0 {
			a.log.Warn("helpers of the generation survive SIGKILL; not waiting for them", "generation", g.num, "helpers", remain)
		}
		g.helpers = nil
		a.drained(g)
		return
	}
	if !g.helperPoll {
		g.helperPoll = true
		a.after(helperPoll, evHelpers{g})
	}
}

func (a *app) isDraining(g *generation) bool {
	for _, d := range a.draining {
		if d == g {
			return true
		}
	}
	return false
}
