package pid1

import (
	"errors"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/reaper"
)

// ChildOptions configure the zero-config workload: one command, like tini.
type ChildOptions struct {
	Path        string // resolved executable
	Argv        []string
	Env         []string
	StopSignal  unix.Signal
	StopTimeout time.Duration
	Log         hclog.Logger
	Reaper      *reaper.Reaper
}

// Child is the zero-config workload: one process in its own process group,
// not restarted; its exit ends rotini with its code.
type Child struct {
	o    ChildOptions
	pid  int
	done chan int
	stop chan bool

	mu     sync.Mutex
	exited bool
}

// StartChild starts the command in its own process group, in the terminal's
// foreground when stdin is rotini's controlling terminal.
func StartChild(o ChildOptions) (*Child, error) {
	sys := &syscall.SysProcAttr{Setpgid: true}
	if foregroundTTY() {
		sys.Foreground = true
		sys.Ctty = 0
	}
	attr := &syscall.ProcAttr{
		Env:   o.Env,
		Files: []uintptr{0, 1, 2},
		Sys:   sys,
	}
	pid, exit, err := o.Reaper.Start(o.Path, o.Argv, attr)
	if err != nil {
		return nil, err
	}
	o.Log.Info("started", "pid", pid, "command", o.Argv)
	c := &Child{o: o, pid: pid, done: make(chan int, 1), stop: make(chan bool, 4)}
	go c.supervise(exit)
	return c, nil
}

// foregroundTTY reports whether stdin is a terminal that is rotini's
// controlling terminal, the only case where tcsetpgrp can succeed.
func foregroundTTY() bool {
	_, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	return err == nil
}

func (c *Child) supervise(exit <-chan reaper.Exit) {
	var kill <-chan time.Time
	var deadline time.Time
	arm := func(d time.Duration) {
		at := time.Now().Add(d)
		if kill != nil && !at.Before(deadline) {
			return // already due sooner
		}
		deadline = at
		kill = time.After(d)
	}
	for {
		select {
		case e := <-exit:
			c.mu.Lock()
			c.exited = true
			c.mu.Unlock()
			c.o.Log.Info("exited", "pid", e.Pid, "status", e.String(), "code", e.Code())
			c.done <- e.Code()
			return
		case fast := <-c.stop:
			if fast {
				c.o.Log.Info("fast stop", "pid", c.pid, "signal", "SIGQUIT", "kill_after", FastStopTimeout)
				c.stopWith(unix.SIGQUIT)
				arm(min(FastStopTimeout, c.o.StopTimeout))
			} else if kill == nil {
				c.o.Log.Info("stopping", "pid", c.pid, "signal", unix.SignalName(c.o.StopSignal), "kill_after", c.o.StopTimeout)
				c.stopWith(c.o.StopSignal)
				arm(c.o.StopTimeout)
			}
		case <-kill:
			c.o.Log.Warn("stop timeout: killing", "pid", c.pid, "timeout", c.o.StopTimeout)
			c.Signal(unix.SIGKILL)
			kill = nil
		}
	}
}

// stopWith sends a stop signal, then SIGCONT, as systemd and containerd
// do: a stopped (SIGSTOP, Ctrl-Z) process would otherwise keep the stop
// signal pending until the SIGKILL, and never drain.
func (c *Child) stopWith(sig unix.Signal) {
	c.Signal(sig)
	if sig != unix.SIGCONT && sig != unix.SIGKILL {
		c.Signal(unix.SIGCONT)
	}
}

// Signal sends sig to the child's process group, until the child is reaped
// (after that the group id may be reused).
func (c *Child) Signal(sig unix.Signal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.exited {
		return
	}
	if err := unix.Kill(-c.pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		c.o.Log.Warn("signal failed", "pgid", c.pid, "signal", sigName(sig), "error", err)
		return
	}
	c.o.Log.Debug("forwarded signal", "pgid", c.pid, "signal", sigName(sig))
}

// Stop begins a graceful or fast stop.
func (c *Child) Stop(fast bool) {
	select {
	case c.stop <- fast:
	default: // a stop is already queued
	}
}

// Reload is not a separate action in zero-config mode: HUP is forwarded.
func (c *Child) Reload() { c.Signal(unix.SIGHUP) }

// Scale is meaningless for one child; TTIN/TTOU are forwarded instead.
func (c *Child) Scale(delta int) {
	if delta > 0 {
		c.Signal(unix.SIGTTIN)
	} else {
		c.Signal(unix.SIGTTOU)
	}
}

// Done yields the child's exit code.
func (c *Child) Done() <-chan int { return c.done }

// Pid is the child's pid, also its process group id.
func (c *Child) Pid() int { return c.pid }
