package reload

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rotini-dev/rotini/activation"
	"github.com/rotini-dev/rotini/reaper"
)

type workerState int

const (
	starting workerState = iota
	ready
	stopping
)

func (s workerState) String() string {
	return [...]string{"starting", "ready", "stopping"}[s]
}

// worker is one process of a generation, owned by its app's goroutine.
type worker struct {
	gen      *generation
	index    int
	pid      int
	started  time.Time
	state    workerState
	notified bool // READY=1 received
	probed   bool // HTTP/TCP/exec checks passed
	aged     bool // alive for MinUptime
	cancel   chan struct{}
	restarts int // how many workers this slot had before this one
	// startErr is why the worker never ran (pid 0); it has no exit
	// status (evStartFailed, not evExit).
	startErr error
}

func (w *worker) String() string {
	return fmt.Sprintf("%s/%d/%d", w.gen.app.o.Name, w.gen.num, w.index)
}

// spawnSpec is everything needed to start one worker process.
type spawnSpec struct {
	cmd   string // the command, resolved
	path  string // what is exec'd: cmd, or the shim that execs it
	argv  []string
	attr  *syscall.ProcAttr
	pipes *workerPipes // with LogPrefix
}

// buildSpawn evaluates the app's command for one worker and prepares its
// environment and inherited files: 0, 1, 2, then the listeners in fd order.
func (a *app) buildSpawn(g *generation, index int) (*spawnSpec, error) {
	fds := map[string]int{}
	files := []uintptr{0, 1, 2}
	var names []string
	for _, l := range g.listeners {
		fds[l.Name] = len(files)
		files = append(files, l.File.Fd())
		names = append(names, l.Name)
	}
	var ports map[string]int
	if g.ports != nil {
		// Proxy mode: the worker's loopback ports, kept across its restarts.
		if ports = g.ports[index]; ports == nil {
			ps, err := a.ports.Take(len(g.o.Listen))
			if err != nil {
				return nil, fmt.Errorf("proxy ports: %w", err)
			}
			ports = map[string]int{}
			for i, name := range g.o.Listen {
				ports[name] = ps[i]
			}
			g.ports[index] = ports
		}
	}
	argv, extraEnv, dir, err := g.o.Spawn(SpawnVars{FDs: fds, Ports: ports, Generation: g.num, Worker: index})
	if err != nil {
		return nil, fmt.Errorf("evaluate command: %w", err)
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("empty command")
	}
	if g.dir != "" {
		dir = g.dir // the generation pinned its directory when it started
	}
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	env := mergeEnv(a.m.o.Env, extraEnv)
	env = setEnv(env, "ROTINI_APP", a.name)
	env = setEnv(env, "ROTINI_GENERATION", strconv.Itoa(g.num))
	env = setEnv(env, "ROTINI_WORKER", strconv.Itoa(index))
	notify := a.m.notify.Path(a.name)
	if !g.o.Ready.Notify {
		notify = ""
	}
	env = activation.WorkerEnv(env, names, notify)
	path, err := lookPath(argv[0], dir, env)
	if err != nil {
		return nil, err
	}
	sys := &syscall.SysProcAttr{Setpgid: true}
	uid, gid := -1, -1
	if g.o.User != "" || g.o.Group != "" {
		cred, err := credential(g.o.User, g.o.Group)
		if err != nil {
			return nil, err
		}
		sys.Credential = cred
		uid, gid = int(cred.Uid), int(cred.Gid)
	}
	if notify != "" {
		// The app's socket is 0600: its workers' user must own it.
		a.m.notify.Own(a.name, uid, gid)
	}
	s := &spawnSpec{cmd: path, path: path, argv: argv, attr: &syscall.ProcAttr{Dir: dir, Env: env, Files: files, Sys: sys}}
	if g.o.LogPrefix {
		p, err := newWorkerPipes()
		if err != nil {
			return nil, err
		}
		s.pipes = p
		files[1], files[2] = p.outW.Fd(), p.errW.Fd()
	}
	if len(files) > 3 {
		s.attr.Env = append(s.attr.Env, activation.ShimEnv+"=1")
		s.argv = activation.ShimArgv(path, argv)
		s.path = activation.ShimPath
	}
	return s, nil
}

// checkDir names what is wrong with a worker's directory, which chdir in
// the child would report as a bare "no such file or directory".
func checkDir(dir string) error {
	if dir == "" {
		return nil
	}
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("dir %s is not a directory", dir)
		}
		return nil
	}
	if target, lerr := os.Readlink(dir); lerr == nil {
		return fmt.Errorf("dir %s is a symlink to %s, which does not exist", dir, target)
	}
	if u := errors.Unwrap(err); u != nil {
		err = u // the PathError would repeat "stat" and the path
	}
	return fmt.Errorf("dir %s: %w", dir, err)
}

// lookPath resolves a command the way a shell started in dir would.
func lookPath(name, dir string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		p := name
		if !filepath.IsAbs(p) && dir != "" {
			p = filepath.Join(dir, p)
		}
		fi, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("command %s: %w", name, err)
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("command %s: not executable", name)
		}
		return p, nil
	}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			for _, d := range filepath.SplitList(v) {
				if d == "" {
					continue
				}
				p := filepath.Join(d, name)
				if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
					return p, nil
				}
			}
			return "", fmt.Errorf("command %s: %w", name, exec.ErrNotFound)
		}
	}
	return exec.LookPath(name)
}

func credential(userName, groupName string) (*syscall.Credential, error) {
	c := &syscall.Credential{}
	if userName != "" {
		u, err := user.Lookup(userName)
		if err != nil {
			if _, aerr := strconv.Atoi(userName); aerr == nil {
				u, err = user.LookupId(userName)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("user %s: %w", userName, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.Uid, c.Gid = uint32(uid), uint32(gid)
		if gids, err := u.GroupIds(); err == nil {
			for _, g := range gids {
				if n, err := strconv.Atoi(g); err == nil {
					c.Groups = append(c.Groups, uint32(n))
				}
			}
		}
	} else {
		c.Uid = uint32(os.Getuid())
		c.NoSetGroups = true
	}
	if groupName != "" {
		gid, err := strconv.Atoi(groupName)
		if err != nil {
			g, lerr := user.LookupGroup(groupName)
			if lerr != nil {
				return nil, fmt.Errorf("group %s: %w", groupName, lerr)
			}
			gid, _ = strconv.Atoi(g.Gid)
		}
		c.Gid = uint32(gid)
	} else if userName == "" {
		c.Gid = uint32(os.Getgid())
	}
	return c, nil
}

func setEnv(env []string, k, v string) []string {
	return append(unsetEnv(env, k), k+"="+v)
}

func unsetEnv(env []string, keys ...string) []string {
	out := env[:0:0]
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, key := range keys {
			if k == key {
				drop = true
			}
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return out
}

func mergeEnv(base, extra []string) []string {
	env := append([]string(nil), base...)
	for _, kv := range extra {
		k, v, _ := strings.Cut(kv, "=")
		env = setEnv(env, k, v)
	}
	return env
}

// runOnce starts a helper command (before_reload, exec probe) and waits
// for it up to timeout, killing its group when it is late. It runs off the
// app's goroutine.
func (a *app) runOnce(argv []string, dir string, env []string, timeout time.Duration, cancel <-chan struct{}) (reaper.Exit, error) {
	path, err := lookPath(argv[0], dir, env)
	if err != nil {
		return reaper.Exit{}, err
	}
	// Armed before the start, so the timeout counts from the same
	// instant whatever the clock.
	late := make(chan struct{})
	t := a.m.clock.AfterFunc(timeout, func() { close(late) })
	defer t.Stop()
	procs := a.m.o.Reaper
	pid, exit, err := procs.Start(path, argv, &syscall.ProcAttr{
		Dir: dir, Env: env, Files: []uintptr{0, 1, 2},
		Sys: &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		return reaper.Exit{}, fmt.Errorf("start %s: %w", argv[0], err)
	}
	select {
	case e := <-exit:
		return e, nil
	case <-late:
		_ = procs.Kill(-pid, syscall.SIGKILL)
		<-exit
		return reaper.Exit{}, fmt.Errorf("%s timed out after %s", argv[0], timeout)
	case <-cancel:
		_ = procs.Kill(-pid, syscall.SIGKILL)
		<-exit
		return reaper.Exit{}, fmt.Errorf("%s canceled", argv[0])
	}
}

// stop sends a stop signal to the worker's process group, then SIGCONT, as
// systemd and containerd do: a stopped worker (SIGSTOP) would otherwise
// keep the stop signal pending until the SIGKILL, and never drain.
func (w *worker) stop(sig syscall.Signal) {
	w.kill(sig)
	if sig != syscall.SIGCONT && sig != syscall.SIGKILL {
		w.kill(syscall.SIGCONT)
	}
}

// kill signals the worker's process group. A worker that never started has
// pid 0, and kill(-0) would signal rotini's own group.
func (w *worker) kill(sig syscall.Signal) {
	if w.pid > 0 {
		_ = w.gen.app.m.o.Reaper.Kill(-w.pid, sig)
	}
}
