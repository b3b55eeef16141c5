package pid1

import (
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	ps "github.com/mitchellh/go-ps"
	"golang.org/x/sys/unix"

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
		left := Descendants(os.Getpid())
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

// Descendants lists the live (non-zombie) descendants of pid, children
// first. It follows /proc/PID/task/TID/children, so it reads only the
// subtree's entries rather than every process on the machine; when that
// file is missing (kernels without CONFIG_PROC_CHILDREN) it falls back to a
// full process listing.
func Descendants(pid int) []int {
	kids := children
	if _, err := os.Stat("/proc/self/task/" + itoa(unix.Gettid()) + "/children"); err != nil {
		kids = childrenByListing()
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range kids(p) {
			queue = append(queue, c)
			if !zombie(c) {
				out = append(out, c)
			}
		}
	}
	return out
}

// children reads the children of every thread of pid: a child belongs to
// the thread that forked it.
func children(pid int) []int {
	tasks, err := os.ReadDir("/proc/" + itoa(pid) + "/task")
	if err != nil {
		return nil
	}
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/" + itoa(pid) + "/task/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// childrenByListing lists every process once and answers from that.
func childrenByListing() func(int) []int {
	kids := map[int][]int{}
	if procs, err := ps.Processes(); err == nil {
		for _, p := range procs {
			kids[p.PPid()] = append(kids[p.PPid()], p.Pid())
		}
	}
	return func(pid int) []int { return kids[pid] }
}

func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
	if err != nil {
		return true // gone already
	}
	// The state follows the last ')' (the command name may contain one).
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == ')' {
			return i+2 < len(b) && b[i+2] == 'Z'
		}
	}
	return false
}

func itoa(i int) string { return strconv.Itoa(i) }
