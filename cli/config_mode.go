package cli

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/config"
	"github.com/rotini-dev/rotini/control"
	"github.com/rotini-dev/rotini/hold"
	pid1 "github.com/rotini-dev/rotini/init"
	"github.com/rotini-dev/rotini/proxy"
	"github.com/rotini-dev/rotini/reaper"
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
	env := environ()
	for i := range cfg.Apps {
		diags = append(diags, cfg.Apps[i].MissingEnv(env, hcl.DiagWarning)...)
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
	level, format := logSettings(o, cfg.Log)
	log, err := newLogger(level, format, c.Stderr)
	if err != nil {
		return c.usageError("%v", err)
	}
	if len(diags) > 0 {
		config.WriteDiagnostics(c.Stderr, nil, diags)
	}
	flagRewrite, err := parseRewrites(o.rewrite)
	if err != nil {
		return c.usageError("%v", err)
	}
	rewrite := mergeRewrites(flagRewrite, cfg.Rewrite)
	if err := checkRewrites(rewrite, pid1.Managed, "to choose the signal a stop sends, set the app's stop_signal"); err != nil {
		fmt.Fprintf(c.Stderr, "rotini: %s: %v\n", o.config, err)
		return ExitConfig
	}

	warnStopGrace(log, cfg)

	var m *reload.Manager
	var socks sockets.Authority
	if path := holdSocket(cfg); path != "" {
		specs, err := holdSpecs(cfg)
		if err != nil {
			fmt.Fprintf(c.Stderr, "rotini: %s: %v\n", o.config, err)
			return ExitConfig
		}
		remote, err := hold.Dial(log.Named("hold"), path, tenantID(), hold.ContainerID(), specs, superseded(&m))
		if errors.Is(err, hold.ErrSuperseded) {
			// A restart policy restarted a container that a newer one
			// replaced: staying out of the way is success.
			fmt.Fprintf(c.Stderr, "rotini: %v\n", err)
			return ExitOK
		}
		if err != nil {
			fmt.Fprintf(c.Stderr, "rotini: %v\n", err)
			return ExitInternal
		}
		socks = remote
	} else {
		local, err := sockets.NewLocal(log.Named("sockets"), socketSpecs(cfg))
		if err != nil {
			fmt.Fprintf(c.Stderr, "rotini: %v\n", err)
			return ExitInternal
		}
		socks = local
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
	rc := &reconfigurer{log: log, path: o.config, flags: o, running: cfg}
	reaper.CloseInheritedOnExec() // nothing rotini inherited reaches a worker
	m, err = reload.New(reload.Options{
		Log:        log,
		Reaper:     r,
		Sockets:    socks,
		Apps:       appOptions(cfg),
		RuntimeDir: reload.RuntimeDir(),
		Env:        os.Environ(),
		Reconfigure: func() ([]reload.AppOptions, []string, error) {
			return rc.reconfigure()
		},
	})
	if err != nil {
		fmt.Fprintf(c.Stderr, "rotini: %v\n", err)
		return ExitInternal
	}
	m.Start()
	co := controlOptions(log, o.control, cfg.Control, c.Version)
	// Behind a holder, app containers share /run/rotini: the newest
	// rotini takes the control socket's path over.
	co.TakeOver = holdSocket(cfg) != ""
	ctl := startControl(log, co, m)
	onHUP := func() { ctl = checkControl(log, ctl, co, m) }
	code := pid1.Run(pid1.Options{
		Log: log, Policy: pid1.Managed, Rewrite: rewrite,
		Reaper: r, Signals: c.Signals, Chld: c.Chld,
	}, hupHook{m, onHUP})
	if ctl != nil {
		ctl.Close()
	}
	return code
}

// startControl serves the control socket. Without it rotini still runs
// the apps, which matter more: a failure is a warning.
func startControl(log hclog.Logger, o control.Options, b control.Backend) *control.Server {
	s, err := control.Serve(o, b)
	if err != nil {
		log.Warn("no control socket: the apps run, but rotini reload, status, scale, health and stop cannot reach them", "error", err)
		return nil
	}
	log.Named("control").Info("listening", "path", s.Path())
	return s
}

// hupHook is the Manager as pid1's workload, with onHUP run (in pid1's
// loop) before each HUP's reload.
type hupHook struct {
	*reload.Manager
	onHUP func()
}

func (h hupHook) Reload() {
	h.onHUP()
	h.Manager.Reload()
}

// checkControl makes the control socket again on HUP when its file was
// removed, or when it could not be made at start: HUP is what an operator
// sends when rotini cannot be reached otherwise.
func checkControl(log hclog.Logger, ctl *control.Server, o control.Options, b control.Backend) *control.Server {
	if ctl == nil {
		return startControl(log, o, b)
	}
	made, err := ctl.Recreate()
	switch {
	case err != nil:
		log.Warn("the control socket's file is gone and cannot be made again", "error", err)
	case made:
		log.Named("control").Warn("socket file was removed or replaced; made it again", "path", ctl.Path())
	}
	return ctl
}

// logSettings are the level and format of rotini's log: a flag, when
// given, beats the config file.
func logSettings(o *runOptions, l config.Log) (level, format string) {
	level, format = l.Level, l.Format
	if o.logLevel != "" {
		level = o.logLevel
	}
	if o.logFormat != "" {
		format = o.logFormat
	}
	return level, format
}

// mergeRewrites adds the file's rewrites to the flags'; a flag wins over
// the file for the same signal.
func mergeRewrites(flags, file map[unix.Signal]unix.Signal) map[unix.Signal]unix.Signal {
	out := maps.Clone(flags)
	if out == nil {
		out = map[unix.Signal]unix.Signal{}
	}
	for from, to := range file {
		if _, set := out[from]; !set {
			out[from] = to
		}
	}
	return out
}

func listenerOptions(l config.Listener) sockets.ListenerOptions {
	return sockets.ListenerOptions{
		Name: l.Name, Network: l.Network, Address: l.Address, Backlog: l.Backlog,
		Mode: l.Mode, Owner: l.Owner, Group: l.Group,
	}
}

// controlOptions serve the control socket at path (--control or
// ROTINI_CONTROL), else at the config's.
func controlOptions(log hclog.Logger, path string, cc config.Control, version string) control.Options {
	if path == "" {
		path = cc.Socket
	}
	return control.Options{Path: path, Mode: cc.Mode, Group: cc.Group, Log: log.Named("control"), Version: version}
}

// reconfigure re-reads the config file for a reload. What a reload cannot
// change while rotini runs — listeners (bound once), the control socket, the
// signal rewrites, the log's format and the apps' watch blocks — is kept,
// and each such change is named in the log and returned as a note for
// `reload --wait`; the log's level is applied unless --log-level pinned it.
type reconfigurer struct {
	log   hclog.Logger
	path  string
	flags *runOptions

	mu      sync.Mutex // defensive: reload.Manager's reloader is its only caller today
	running *config.Config
}

func (r *reconfigurer) reconfigure() ([]reload.AppOptions, []string, error) {
	cfg, diags := config.Load(r.path)
	if err := config.ReadError(diags); err != nil {
		// Not the file's fault (EMFILE, EACCES, a missing mount): saying
		// "invalid" would send the operator to the wrong place.
		r.log.Error("cannot read config file", "file", r.path, "error", err)
		return nil, nil, fmt.Errorf("cannot read config file %s: %w", r.path, err)
	}
	if diags.HasErrors() {
		var b strings.Builder
		config.WriteDiagnostics(&b, nil, diags)
		r.log.Error("config invalid", "file", r.path, "diagnostics", b.String())
		return nil, nil, fmt.Errorf("config invalid: %s: %s", r.path, diags.Error())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.running
	var notes []string
	keep := func(what, why string) {
		r.log.Warn("reload: change not applied", "what", what, "why", why, "file", r.path)
		notes = append(notes, fmt.Sprintf("not applied: %s changed; %s", what, why))
	}
	const restart = "it takes effect when rotini restarts"
	if !sameListeners(cfg.Listeners, old.Listeners) {
		keep("listen blocks", "the sockets are bound once; "+restart)
	}
	if cfg.Control != old.Control {
		keep("control block", "the control socket is made once; "+restart)
	}
	if !maps.Equal(cfg.Rewrite, old.Rewrite) {
		keep("signals { rewrite }", restart)
	}
	if cfg.Log.Format != old.Log.Format {
		keep("log { format }", restart)
	}
	if cfg.Log.Level != old.Log.Level {
		if r.flags.logLevel != "" {
			keep("log { level }", "--log-level "+r.flags.logLevel+" was given on the command line and wins")
		} else {
			r.log.SetLevel(hclog.LevelFromString(cfg.Log.Level))
			r.log.Info("reload: log level applied", "level", cfg.Log.Level)
			old.Log.Level = cfg.Log.Level
		}
	}
	for _, a := range cfg.Apps {
		for _, b := range old.Apps {
			if a.Name == b.Name && !reflect.DeepEqual(a.Watch, b.Watch) {
				keep("watch block of app "+a.Name, "the watcher keeps its settings; "+restart)
			}
		}
	}
	return appOptions(cfg), notes, nil
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
			Batch:             a.Batch,
			LogPrefix:         a.LogPrefix,
			Watch:             watchOptions(a.Watch),
			Proxy:             proxyOptions(a.Proxy),
		})
	}
	return out
}

// proxyOptions maps the config's proxy block; nil without one.
func proxyOptions(p *config.Proxy) *reload.ProxyOptions {
	if p == nil {
		return nil
	}
	v, _ := proxy.ParseVersion(p.ProxyProtocol) // checked at load
	return &reload.ProxyOptions{
		Relay: proxy.Options{
			MaxConnections: p.MaxConnections, IdleTimeout: p.IdleTimeout,
			DialTimeout: p.DialTimeout, ProxyProtocol: v,
		},
		PortMin: p.PortMin, PortMax: p.PortMax,
	}
}

// socketSpecs says how to bind each listener: steered when its app rotates
// and the config does not say otherwise.
func socketSpecs(cfg *config.Config) []sockets.Spec {
	mode := map[string]string{}
	for _, a := range cfg.Apps {
		for _, name := range a.Listen {
			mode[name] = a.Reload
			if a.Proxy != nil {
				mode[name] = "proxy"
			}
		}
	}
	var out []sockets.Spec
	for _, l := range cfg.Listeners {
		s := sockets.Spec{
			ListenerOptions: listenerOptions(l),
			Steer:           l.Steer,
			Grace:           l.SwitchGrace,
		}
		switch m := mode[l.Name]; {
		case !l.Steer:
			s.Why = "steer = false in the config: generations share one socket"
		case m == "proxy":
			s.Steer, s.Relay = false, true
			s.Why = "rotini accepts and relays to the serving generation's ports"
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
