package config

import (
	"net"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/reload"
	"github.com/rotini-dev/rotini/watch"
)

type rawApp struct {
	Name      string    `hcl:"name,label"`
	NameRange hcl.Range `hcl:"name,label_range"`
	DefRange  hcl.Range `hcl:",def_range"`

	Command             *hcl.Attribute `hcl:"command"`
	Dir                 *hcl.Attribute `hcl:"dir"`
	Env                 *hcl.Attribute `hcl:"env"`
	Workers             *hcl.Attribute `hcl:"workers"`
	Listen              *hcl.Attribute `hcl:"listen"`
	User                *hcl.Attribute `hcl:"user"`
	Group               *hcl.Attribute `hcl:"group"`
	StopSignal          *hcl.Attribute `hcl:"stop_signal"`
	StopTimeout         *hcl.Attribute `hcl:"stop_timeout"`
	Reload              *hcl.Attribute `hcl:"reload"`
	ReloadSignal        *hcl.Attribute `hcl:"reload_signal"`
	BeforeReload        *hcl.Attribute `hcl:"before_reload"`
	BeforeReloadTimeout *hcl.Attribute `hcl:"before_reload_timeout"`
	RestartBackoff      *hcl.Attribute `hcl:"restart_backoff"`
	RestartBackoffMax   *hcl.Attribute `hcl:"restart_backoff_max"`
	CrashLimit          *hcl.Attribute `hcl:"crash_limit"`
	CrashWindow         *hcl.Attribute `hcl:"crash_window"`
	Batch               *hcl.Attribute `hcl:"batch"`
	LogPrefix           *hcl.Attribute `hcl:"log_prefix"`

	Ready *rawReady `hcl:"ready,block"`
	Watch *rawWatch `hcl:"watch,block"`
	Proxy *rawProxy `hcl:"proxy,block"`
}

type rawProxy struct {
	DefRange hcl.Range `hcl:",def_range"`

	ProxyProtocol  *hcl.Attribute `hcl:"proxy_protocol"`
	Ports          *hcl.Attribute `hcl:"ports"`
	MaxConnections *hcl.Attribute `hcl:"max_connections"`
	IdleTimeout    *hcl.Attribute `hcl:"idle_timeout"`
	DialTimeout    *hcl.Attribute `hcl:"dial_timeout"`
}

type rawReady struct {
	Notify    *hcl.Attribute `hcl:"notify"`
	HTTP      *hcl.Attribute `hcl:"http"`
	TCP       *hcl.Attribute `hcl:"tcp"`
	Exec      *hcl.Attribute `hcl:"exec"`
	Timeout   *hcl.Attribute `hcl:"timeout"`
	MinUptime *hcl.Attribute `hcl:"min_uptime"`
	Interval  *hcl.Attribute `hcl:"interval"`
}

type rawWatch struct {
	DefRange hcl.Range `hcl:",def_range"`

	Paths    *hcl.Attribute `hcl:"paths"`
	Exclude  *hcl.Attribute `hcl:"exclude"`
	Include  *hcl.Attribute `hcl:"include"`
	Debounce *hcl.Attribute `hcl:"debounce"`
	MaxWait  *hcl.Attribute `hcl:"max_wait"`
	Trigger  *hcl.Attribute `hcl:"trigger"`
	Poll     *hcl.Attribute `hcl:"poll"`
}

// MaxWorkers bounds an app's worker count, as `rotini scale` does.
const MaxWorkers = 1000

// reservedEnv are set by rotini in every worker; an app's env must not
// override them.
var reservedEnv = []string{
	"LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PID", "NOTIFY_SOCKET",
	"ROTINI_APP", "ROTINI_GENERATION", "ROTINI_WORKER",
}

// apps decodes the app blocks; a duplicate is reported and dropped.
func (d *decoder) apps(raws []*rawApp, listeners []*listener) []App {
	byName := map[string]*listener{}
	for _, l := range listeners {
		byName[l.Name] = l
	}
	var apps []App
	seen := map[string]hcl.Range{}
	for _, r := range raws {
		if prev, dup := seen[r.Name]; dup {
			d.errorf(r.DefRange, "Duplicate app name",
				"An app named %q was already defined at %s. App names must be unique.", r.Name, prev)
			continue
		}
		seen[r.Name] = r.DefRange
		apps = append(apps, d.app(r, byName))
	}
	return apps
}

func (d *decoder) app(r *rawApp, listeners map[string]*listener) App {
	a := App{Name: r.Name}
	if !hclsyntax.ValidIdentifier(r.Name) {
		d.errorf(r.NameRange, "Invalid app name",
			"The app name %q is not an identifier: use letters, digits, underscores and dashes, not starting with a digit.", r.Name)
	}
	a.Workers = d.integer(r.Workers, 1, 1, "Invalid worker count")
	if a.Workers > MaxWorkers {
		d.errorf(r.Workers.Expr.Range(), "Too many workers",
			"The value of workers must be at most %d, not %d: each worker is a process, and a count this high exhausts the container's process limit.", MaxWorkers, a.Workers)
		a.Workers = 1
	}
	a.Listen = d.listen(r.Listen, r.Name, listeners)
	a.Proxy = d.proxy(r.Proxy, a.Listen)

	// The spawn-time expressions are checked now against placeholder
	// values, so that a typo is reported at load with its position.
	sc := newStaticChecker(d, r.Name, a.Listen, listeners, a.Proxy)
	if d.required(r.Command, "command", r.DefRange) {
		a.Command = r.Command.Expr
		sc.command(a.Command)
	}
	if r.Dir != nil {
		a.Dir = r.Dir.Expr
		sc.string(a.Dir)
	}
	a.Env = d.env(r.Env, sc, a.Proxy != nil)

	a.User = d.str(r.User, "")
	a.Group = d.str(r.Group, "")
	a.StopSignal = d.signal(r.StopSignal, unix.SIGTERM)
	a.StopTimeout = d.duration(r.StopTimeout, 10*time.Second, false)
	defReload := ReloadSignal
	if len(a.Listen) > 0 {
		defReload = ReloadRotate
	}
	a.Reload = d.oneOf(r.Reload, defReload, "Invalid reload mode", ReloadRotate, ReloadSignal, ReloadRestart)
	a.ReloadSignal = d.signal(r.ReloadSignal, unix.SIGHUP)
	a.BeforeReload = d.strs(r.BeforeReload)
	a.BeforeReloadTimeout = d.duration(r.BeforeReloadTimeout, reload.DefaultBeforeReloadTimeout, true)
	a.RestartBackoff = d.duration(r.RestartBackoff, time.Second, false)
	a.RestartBackoffMax = d.duration(r.RestartBackoffMax, 30*time.Second, true)
	if a.RestartBackoffMax < a.RestartBackoff {
		rng := r.DefRange
		if r.RestartBackoffMax != nil {
			rng = r.RestartBackoffMax.Expr.Range()
		}
		d.errorf(rng, "Invalid duration",
			"The restart_backoff_max (%s) must not be shorter than restart_backoff (%s).", a.RestartBackoffMax, a.RestartBackoff)
	}
	a.CrashLimit = d.integer(r.CrashLimit, 5, 0, "Invalid crash limit")
	a.CrashWindow = d.duration(r.CrashWindow, 60*time.Second, true)
	a.Batch = d.integer(r.Batch, 0, 0, "Invalid batch size")
	a.LogPrefix = d.boolean(r.LogPrefix, false)
	a.Ready = d.ready(r.Ready)
	a.Watch = d.watch(r.Watch)
	return a
}

// listen decodes an app's listen list, reporting each bad element at its
// own position. Unknown names are kept, so that fd.NAME is not reported a
// second time.
func (d *decoder) listen(a *hcl.Attribute, app string, listeners map[string]*listener) []string {
	if a == nil {
		return nil
	}
	elems, diags := hcl.ExprList(a.Expr)
	if diags.HasErrors() {
		d.diags = append(d.diags, diags...)
		return nil
	}
	var names []string
	for _, e := range elems {
		var name string
		if diags := gohcl.DecodeExpression(e, nil, &name); diags.HasErrors() {
			d.diags = append(d.diags, diags...)
			continue
		}
		l := listeners[name]
		switch {
		case slices.Contains(names, name):
			d.errorf(e.Range(), "Duplicate listener", "Listener %q is already in this list.", name)
			continue
		case l == nil:
			d.errorf(e.Range(), "Unknown listener",
				"There is no listen %q block. %s", name, declared(listeners))
		case l.usedBy != "" && l.usedBy != app:
			d.errorf(e.Range(), "Listener already used",
				"Listener %q is already used by app %q; a listener belongs to one app only.", name, l.usedBy)
		default:
			l.usedBy = app
		}
		names = append(names, name)
	}
	return names
}

// declared is a sentence naming the declared listeners.
func declared(listeners map[string]*listener) string {
	if len(listeners) == 0 {
		return "This file declares no listener."
	}
	names := make([]string, 0, len(listeners))
	for n := range listeners {
		names = append(names, strconv.Quote(n))
	}
	slices.Sort(names)
	return "The declared listeners are " + strings.Join(names, ", ") + "."
}

// env decodes `env = { NAME = "value", … }`, keeping each value as an
// expression for Spawn.
func (d *decoder) env(a *hcl.Attribute, sc *staticChecker, proxy bool) map[string]hcl.Expression {
	if a == nil {
		return nil
	}
	pairs, diags := hcl.ExprMap(a.Expr)
	if diags.HasErrors() {
		d.diags = append(d.diags, diags...)
		return nil
	}
	env := map[string]hcl.Expression{}
	for _, p := range pairs {
		var name string
		if diags := gohcl.DecodeExpression(p.Key, nil, &name); diags.HasErrors() {
			d.diags = append(d.diags, diags...)
			continue
		}
		switch {
		case name == "" || strings.ContainsAny(name, "=\x00"):
			d.errorf(p.Key.Range(), "Invalid environment variable name",
				"The name %q cannot be an environment variable: it is empty or contains \"=\" or a NUL byte.", name)
			continue
		case slices.Contains(reservedEnv, name):
			d.errorf(p.Key.Range(), "Reserved environment variable",
				"rotini sets %s in every worker itself; an app cannot override %s.", strings.Join(reservedEnv, ", "), name)
			continue
		case proxy && name == "PORT":
			d.errorf(p.Key.Range(), "Reserved environment variable",
				"rotini sets PORT to each generation's port of the first listener when the app has a proxy block; an app cannot override it.")
			continue
		case env[name] != nil:
			d.errorf(p.Key.Range(), "Duplicate environment variable", "The variable %s is set twice.", name)
			continue
		}
		sc.string(p.Value)
		env[name] = p.Value
	}
	return env
}

func (d *decoder) ready(raw *rawReady) Ready {
	r := Ready{Timeout: 60 * time.Second, MinUptime: time.Second, Interval: reload.DefaultProbeInterval}
	if raw == nil {
		return r
	}
	r.Notify = d.boolean(raw.Notify, false)
	if s := d.str(raw.HTTP, ""); s != "" && d.probeURL(raw.HTTP.Expr.Range(), s) {
		r.HTTP = s
	}
	if s := d.str(raw.TCP, ""); s != "" && d.probeAddr(raw.TCP.Expr.Range(), s) {
		r.TCP = s
	}
	r.Exec = d.strs(raw.Exec)
	r.Timeout = d.duration(raw.Timeout, r.Timeout, true)
	r.MinUptime = d.duration(raw.MinUptime, r.MinUptime, false)
	r.Interval = d.duration(raw.Interval, r.Interval, true)
	return r
}

func (d *decoder) probeURL(rng hcl.Range, s string) bool {
	if strings.HasPrefix(s, "/") {
		return true
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		d.errorf(rng, "Invalid probe URL",
			"The http probe %q is neither a path, such as \"/healthz\", nor an http:// or https:// URL, such as \"http://127.0.0.1:8000/healthz\".", s)
		return false
	}
	return true
}

func (d *decoder) probeAddr(rng hcl.Range, s string) bool {
	_, port, err := net.SplitHostPort(s)
	if err == nil {
		var n uint64
		if n, err = strconv.ParseUint(port, 10, 16); err == nil && n == 0 {
			err = strconv.ErrRange
		}
	}
	if err != nil {
		d.errorf(rng, "Invalid probe address",
			"The tcp probe %q is not HOST:PORT with a port from 1 to 65535, such as \"127.0.0.1:8000\".", s)
		return false
	}
	return true
}

func (d *decoder) watch(raw *rawWatch) Watch {
	w := Watch{Debounce: 500 * time.Millisecond, MaxWait: watch.DefaultMaxWait, Poll: watch.PollAuto}
	if raw == nil {
		return w
	}
	if d.required(raw.Paths, "paths", raw.DefRange) {
		w.Paths = d.strs(raw.Paths)
		if len(w.Paths) == 0 && raw.Paths != nil {
			d.errorf(raw.Paths.Expr.Range(), "No paths to watch", "A watch block needs at least one path.")
		}
	}
	w.Exclude = d.globs(raw.Exclude)
	w.Include = d.globs(raw.Include)
	w.Debounce = d.duration(raw.Debounce, w.Debounce, false)
	w.MaxWait = d.duration(raw.MaxWait, w.MaxWait, true)
	if w.MaxWait < w.Debounce {
		rng := raw.DefRange
		if raw.MaxWait != nil {
			rng = raw.MaxWait.Expr.Range()
		}
		d.errorf(rng, "Invalid duration", "The max_wait (%s) must not be shorter than debounce (%s).", w.MaxWait, w.Debounce)
	}
	w.Trigger = d.str(raw.Trigger, "")
	if s, ok := value[string](d, raw.Poll); ok {
		switch s {
		case watch.PollAuto, watch.PollOff:
			w.Poll = s
		default:
			if v, err := time.ParseDuration(s); err == nil && v > 0 {
				w.Poll, w.PollEvery = watch.PollInterval, v
			} else {
				d.errorf(raw.Poll.Expr.Range(), "Invalid poll setting",
					"The poll setting %q is none of \"auto\", \"off\" or a polling interval such as \"2s\".", s)
			}
		}
	}
	return w
}

// globs decodes a list of glob patterns, checking their syntax.
func (d *decoder) globs(a *hcl.Attribute) []string {
	globs := d.strs(a)
	for _, g := range globs {
		if _, err := path.Match(g, ""); err != nil {
			d.errorf(a.Expr.Range(), "Invalid glob pattern", "The pattern %q in %s is malformed: %s.", g, a.Name, err)
		}
	}
	return globs
}

// Default settings of a proxy block.
const (
	DefaultMaxConnections = 10000
	DefaultIdleTimeout    = 5 * time.Minute
	DefaultDialTimeout    = 5 * time.Second
)

// proxy decodes an app's proxy block; nil when there is none.
func (d *decoder) proxy(raw *rawProxy, listen []string) *Proxy {
	if raw == nil {
		return nil
	}
	p := &Proxy{MaxConnections: DefaultMaxConnections, IdleTimeout: DefaultIdleTimeout, DialTimeout: DefaultDialTimeout}
	if len(listen) == 0 {
		d.errorf(raw.DefRange, "Proxy without listeners",
			"A proxy block relays connections from the app's listeners, and this app lists none: add listen = [\"NAME\"].")
	}
	p.ProxyProtocol = d.oneOf(raw.ProxyProtocol, "", "Invalid PROXY protocol version", "", "v1", "v2")
	if s, ok := value[string](d, raw.Ports); ok && s != "" {
		lo, hi, ok := parsePortRange(s)
		switch {
		case !ok:
			d.errorf(raw.Ports.Expr.Range(), "Invalid port range",
				"The ports %q are not a range LOW-HIGH of ports from 1 to 65535, such as \"20000-20999\".", s)
		case hi-lo+1 < 2*max(len(listen), 1):
			// During a rotation the serving and the new generation each
			// hold a port per listener.
			d.errorf(raw.Ports.Expr.Range(), "Port range too small",
				"The range %q holds %d ports; two generations of an app with %d listeners need at least %d.", s, hi-lo+1, len(listen), 2*len(listen))
		default:
			p.PortMin, p.PortMax = lo, hi
		}
	}
	p.MaxConnections = d.integer(raw.MaxConnections, p.MaxConnections, 1, "Invalid connection limit")
	p.IdleTimeout = d.duration(raw.IdleTimeout, p.IdleTimeout, true)
	p.DialTimeout = d.duration(raw.DialTimeout, p.DialTimeout, true)
	return p
}

// parsePortRange parses "LOW-HIGH", or a single port "N" as N-N.
func parsePortRange(s string) (lo, hi int, ok bool) {
	l, h, isRange := strings.Cut(s, "-")
	if !isRange {
		h = l
	}
	a, err1 := strconv.ParseUint(strings.TrimSpace(l), 10, 16)
	b, err2 := strconv.ParseUint(strings.TrimSpace(h), 10, 16)
	if err1 != nil || err2 != nil || a == 0 || a > b {
		return 0, 0, false
	}
	return int(a), int(b), true
}
