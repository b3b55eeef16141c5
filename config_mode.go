package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rotini-dev/rotini/config"
	"github.com/rotini-dev/rotini/control"
	pid1 "github.com/rotini-dev/rotini/init"
	"github.com/rotini-dev/rotini/reload"
	"github.com/rotini-dev/rotini/sockets"
	"github.com/rotini-dev/rotini/watch"
)

// check is `rotini check [FILE]`: diagnostics with file:line:column, or a
// one-line summary.
func (c *CLI) check(args []string) int {
	path := os.Getenv("ROTINI_CONFIG")
	switch len(args) {
	case 0:
	case 1:
		path = args[0]
	default:
		return c.usageError("check takes one file, got %d arguments", len(args))
	}
	if path == "" {
		return c.usageError("check: no file given (and ROTINI_CONFIG is not set)")
	}
	cfg, diags := config.Load(path)
	if diags.HasErrors() {
		config.WriteDiagnostics(c.Stderr, nil, diags)
		return ExitConfig
	}
	if len(diags) > 0 {
		config.WriteDiagnostics(c.Stderr, nil, diags)
	}
	fmt.Fprintln(c.Stdout, cfg.Summary())
	return ExitOK
}

// runConfig is managed mode: rotini owns the listeners and runs the apps.
func (c *CLI) runConfig(o *runOptions, cmd []string) int {
	if len(cmd) > 0 {
		return c.usageError("give either a config file (-c) or a command after --, not both")
	}
	cfg, diags := config.Load(o.config)
	if diags.HasErrors() {
		config.WriteDiagnostics(c.Stderr, nil, diags)
		return ExitConfig
	}
	level, format := cfg.Log.Level, cfg.Log.Format
	if o.logLevel != "" {
		level = o.logLevel
	}
	if o.logFormat != "text" {
		format = o.logFormat
	}
	log, err := newLogger(level, format, c.Stderr)
	if err != nil {
		return c.usageError("%v", err)
	}
	if len(diags) > 0 {
		config.WriteDiagnostics(c.Stderr, nil, diags)
	}
	rewrite, err := parseRewrites(o.rewrite)
	if err != nil {
		return c.usageError("%v", err)
	}
	for from, to := range cfg.Rewrite {
		if _, set := rewrite[from]; !set { // the flag wins over the file
			rewrite[from] = to
		}
	}
	if err := checkRewrites(rewrite, pid1.Managed, "to choose the signal a stop sends, set the app's stop_signal"); err != nil {
		fmt.Fprintf(c.Stderr, "rotini: %s: %v\n", o.config, err)
		return ExitConfig
	}

	warnStopGrace(log, cfg)

	socks, err := sockets.NewLocal(log.Named("sockets"), socketSpecs(cfg))
	if err != nil {
		fmt.Fprintf(c.Stderr, "rotini: %v\n", err)
		return ExitInternal
	}
	defer socks.Close()
	for _, l := range socks.Status() {
		if l.Note != "" {
			log.Info("listening", "listener", l.Name, "address", l.Address, "mode", l.Mode, "note", l.Note)
		} else {
			log.Info("listening", "listener", l.Name, "address", l.Address, "mode", l.Mode)
		}
	}

	r, stopReaper := c.startReaper(log)
	defer stopReaper()
	m, err := reload.New(reload.Options{
		Log:        log,
		Reaper:     r,
		Sockets:    socks,
		Apps:       appOptions(cfg),
		RuntimeDir: reload.RuntimeDir(),
		Env:        os.Environ(),
		Reconfigure: func() ([]reload.AppOptions, error) {
			return reconfigure(log, o.config, cfg)
		},
	})
	if err != nil {
		fmt.Fprintf(c.Stderr, "rotini: %v\n", err)
		return ExitInternal
	}
	m.Start()
	ctl := startControl(log, o.control, cfg.Control, m)
	code := pid1.Run(pid1.Options{
		Log: log, Policy: pid1.Managed, Rewrite: rewrite,
		Reaper: r, Signals: c.Signals, Chld: c.Chld,
	}, m)
	if ctl != nil {
		ctl.Close()
	}
	return code
}

// startControl serves the control socket at path (--control or
// ROTINI_CONTROL), else at the config's. Without it rotini still runs the
// apps, which matter more: a failure is a warning.
func startControl(log hclog.Logger, path string, cc config.Control, b control.Backend) *control.Server {
	if path == "" {
		path = cc.Socket
	}
	s, err := control.Serve(control.Options{Path: path, Mode: cc.Mode, Group: cc.Group, Log: log.Named("control"), Version: version}, b)
	if err != nil {
		log.Warn("no control socket: the apps run, but rotini reload, status, scale, health and stop cannot reach them", "error", err)
		return nil
	}
	log.Named("control").Info("listening", "path", s.Path())
	return s
}

// reconfigure re-reads the config file for a reload. Listeners are bound once
// for rotini's life, so a change to them is reported and otherwise ignored.
func reconfigure(log hclog.Logger, path string, running *config.Config) ([]reload.AppOptions, error) {
	cfg, diags := config.Load(path)
	if diags.HasErrors() {
		var b strings.Builder
		config.WriteDiagnostics(&b, nil, diags)
		log.Error("config invalid", "file", path, "diagnostics", b.String())
		return nil, fmt.Errorf("%s: %s", path, diags.Error())
	}
	if !sameListeners(cfg.Listeners, running.Listeners) {
		log.Warn("listener changes take effect only when rotini restarts; keeping the bound sockets", "file", path)
	}
	return appOptions(cfg), nil
}

func sameListeners(a, b []config.Listener) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// appOptions turns the config's apps into reload's options; reload does not
// import config, so that it can be tested without HCL.
func appOptions(cfg *config.Config) []reload.AppOptions {
	env := environ() // rotini's environment does not change: read it once
	var out []reload.AppOptions
	for i := range cfg.Apps {
		a := &cfg.Apps[i]
		out = append(out, reload.AppOptions{
			Name: a.Name,
			Spawn: func(v reload.SpawnVars) ([]string, []string, string, error) {
				return a.Spawn(config.SpawnVars{FDs: v.FDs, Ports: v.Ports, Generation: v.Generation, Worker: v.Worker, Env: env})
			},
			Workers:             a.Workers,
			Listen:              a.Listen,
			User:                a.User,
			Group:               a.Group,
			StopSignal:          a.StopSignal,
			StopTimeout:         a.StopTimeout,
			Reload:              reload.Mode(a.Reload),
			ReloadSignal:        a.ReloadSignal,
			BeforeReload:        a.BeforeReload,
			BeforeReloadTimeout: a.BeforeReloadTimeout,
			Ready: reload.ReadyOptions{
				Notify: a.Ready.Notify, HTTP: a.Ready.HTTP, TCP: a.Ready.TCP, Exec: a.Ready.Exec,
				Timeout: a.Ready.Timeout, MinUptime: a.Ready.MinUptime, Interval: a.Ready.Interval,
			},
			RestartBackoff:    a.RestartBackoff,
			RestartBackoffMax: a.RestartBackoffMax,
			CrashLimit:        a.CrashLimit,
			CrashWindow:       a.CrashWindow,
			Watch:             watchOptions(a.Watch),
		})
	}
	return out
}

// socketSpecs says how to bind each listener: steered when its app rotates
// and the config does not say otherwise.
func socketSpecs(cfg *config.Config) []sockets.Spec {
	mode := map[string]string{}
	for _, a := range cfg.Apps {
		for _, name := range a.Listen {
			mode[name] = a.Reload
		}
	}
	var out []sockets.Spec
	for _, l := range cfg.Listeners {
		s := sockets.Spec{
			ListenerOptions: sockets.ListenerOptions{
				Name: l.Name, Network: l.Network, Address: l.Address, Backlog: l.Backlog,
				Mode: l.Mode, Owner: l.Owner, Group: l.Group,
			},
			Steer: l.Steer,
			Grace: l.SwitchGrace,
		}
		switch m := mode[l.Name]; {
		case !l.Steer:
			s.Why = "steer = false in the config: generations share one socket"
		case m != config.ReloadRotate:
			s.Steer = false
			s.Why = fmt.Sprintf("its app reloads by %s: one generation at a time, one socket", m)
		}
		out = append(out, s)
	}
	return out
}

// watchOptions maps the config's watch block to the watcher's options; nil
// when the app watches nothing.
func watchOptions(w config.Watch) *watch.Options {
	if len(w.Paths) == 0 {
		return nil
	}
	return &watch.Options{
		Paths: w.Paths, Include: w.Include, Exclude: w.Exclude,
		Debounce: w.Debounce, MaxWait: w.MaxWait, Trigger: w.Trigger,
		Poll: w.Poll, PollEvery: w.PollEvery,
	}
}

func environ() map[string]string {
	m := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// dockerStopGrace is how long `docker stop` waits after its TERM before it
// sends SIGKILL, unless the container was given another --stop-timeout (or
// compose's stop_grace_period).
const dockerStopGrace = 10 * time.Second

// warnStopGrace warns about apps whose stop_timeout cannot fit in the
// container's stop grace period: Docker would SIGKILL rotini and every
// worker mid-drain. rotini cannot see the grace period from inside the
// container, so it assumes Docker's default unless ROTINI_STOP_GRACE says
// otherwise.
func warnStopGrace(log hclog.Logger, cfg *config.Config) {
	grace, source := dockerStopGrace, "Docker's default"
	if v := os.Getenv("ROTINI_STOP_GRACE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			log.Warn("ROTINI_STOP_GRACE is not a duration; assuming Docker's default", "value", v, "default", dockerStopGrace)
		} else {
			grace, source = d, "ROTINI_STOP_GRACE"
		}
	}
	for _, a := range cfg.Apps {
		if a.StopTimeout > grace {
			log.Warn("stop_timeout does not fit in the container's stop grace period: docker stop would SIGKILL the workers mid-drain",
				"app", a.Name, "stop_timeout", a.StopTimeout, "grace", grace, "grace_from", source,
				"fix", "lower stop_timeout, or raise the grace (docker run --stop-timeout, compose stop_grace_period) and set ROTINI_STOP_GRACE to match")
		}
	}
}
