package config

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/control"
	"github.com/rotini-dev/rotini/hold"
	"github.com/rotini-dev/rotini/reload"
)

// Config is a validated configuration file. Load and Parse return one only
// when there is no error diagnostic; see the package doc.
type Config struct {
	Filename  string
	Listeners []Listener // in file order
	Apps      []App      // in file order; at least one
	Log       Log
	Control   Control
	// Hold is the socket of a `rotini hold` process to take the listeners
	// from ("" binds them here): hold { socket = "…" }.
	Hold string
	// Rewrite maps a signal rotini forwards to workers to the signal they
	// get instead; a 0 value drops it (signals { rewrite = { … } }, the
	// twin of --rewrite). Nil when nothing is rewritten.
	Rewrite map[unix.Signal]unix.Signal
}

// Listener is a socket that rotini binds once and passes to the workers of
// the app that lists it.
type Listener struct {
	Name string
	// Network is "tcp", "tcp4", "tcp6" or "unix", as net.Listen takes it.
	Network string
	// Address is "HOST:PORT" for tcp ("0.0.0.0:8000", "[::1]:80",
	// ":8000") and an absolute path for unix ("/run/app.sock").
	Address string
	Backlog int
	// Mode, Owner and Group apply to unix sockets only; Mode is 0 and
	// Owner and Group are empty for tcp.
	Mode         os.FileMode
	Owner, Group string
	// Steer gives each generation its own socket and steers new
	// connections to the serving one (default true; see package sockets).
	Steer bool
	// SwitchGrace is how long a replaced generation keeps accepting once
	// its socket's queue is empty; 0 means the default.
	SwitchGrace time.Duration
}

// Reload modes of an app: the names package reload gives its modes.
const (
	ReloadRotate  = string(reload.Rotate)
	ReloadSignal  = string(reload.Signal)
	ReloadRestart = string(reload.Restart)
)

// App is a program rotini runs as a pool of workers.
type App struct {
	Name string
	// Command is a list-of-strings expression, kept unevaluated: it may
	// use the spawn-time variables (fd.<listener>, generation, worker,
	// env.<NAME>). Spawn evaluates it; it was checked at load.
	Command hcl.Expression
	// Env holds the app's extra environment; each value is a string
	// expression evaluated by Spawn like Command.
	Env map[string]hcl.Expression
	// Dir is the working directory expression, nil when unset (the worker
	// inherits rotini's). It may use the spawn-time variables too.
	Dir     hcl.Expression
	Workers int
	// Listen names the app's listeners in fd order: the first is fd 3.
	Listen       []string
	User, Group  string
	StopSignal   unix.Signal
	StopTimeout  time.Duration
	Reload       string // ReloadRotate, ReloadSignal or ReloadRestart; never empty
	ReloadSignal unix.Signal
	// BeforeReload runs in the new code directory before a reload; empty
	// when unset.
	BeforeReload        []string
	BeforeReloadTimeout time.Duration
	// A worker that dies is restarted after RestartBackoff, doubled per
	// further death up to RestartBackoffMax.
	RestartBackoff, RestartBackoffMax time.Duration
	// CrashLimit deaths within CrashWindow end rotini with the worker's
	// exit code. 0 means never give up.
	CrashLimit  int
	CrashWindow time.Duration
	// Batch is how many workers of a new generation start at a time, each
	// batch once the previous one is ready; 0 starts them all at once.
	Batch int
	// LogPrefix passes the workers' output through rotini, each line
	// prefixed with app/generation/worker.
	LogPrefix bool
	Ready     Ready
	Watch     Watch
	// Proxy is nil unless the app has a proxy block.
	Proxy *Proxy
}

// Proxy says that rotini relays connections from the app's listeners to
// a loopback port per generation and listener, instead of passing the
// listeners to the workers: the workers get PORT and port.<listener>, and
// no fd.
type Proxy struct {
	// ProxyProtocol is "", "v1" or "v2": the PROXY protocol header sent to
	// the app before the client's bytes; "" sends none.
	ProxyProtocol string
	// PortMin and PortMax bound the ports given to generations; both 0
	// means a free ephemeral loopback port each time.
	PortMin, PortMax int
	MaxConnections   int           // connections relayed at once, at least 1
	IdleTimeout      time.Duration // close a connection idle both ways this long
	DialTimeout      time.Duration // connecting to a generation's port
}

// Ready says when a new worker counts as ready: every configured check
// passed and the worker stayed alive for MinUptime.
type Ready struct {
	Notify bool // sd_notify READY=1 on NOTIFY_SOCKET
	// HTTP is "" (no probe), a path ("/healthz") or an absolute http(s) URL.
	HTTP string
	// TCP is "" or a HOST:PORT that must accept a connection.
	TCP       string
	Exec      []string // a command that must exit 0; empty when unset
	Timeout   time.Duration
	MinUptime time.Duration
	Interval  time.Duration // between probe attempts
}

// Watch says which files make an app reload when they change. Watching is
// on when Paths is non-empty (the app has a watch block); the other fields
// hold their defaults either way.
type Watch struct {
	Paths, Exclude, Include []string
	Debounce, MaxWait       time.Duration
	Trigger                 string
	Poll                    string        // watch.PollAuto, watch.PollOff or watch.PollInterval
	PollEvery               time.Duration // when Poll is watch.PollInterval
}

// Log configures rotini's own log (not the workers' output).
type Log struct {
	Level  string // trace, debug, info, warn or error
	Format string // text or json
}

// DefaultHoldSocket is where `rotini hold` listens by default, and the
// socket a config's empty hold block names.
const DefaultHoldSocket = hold.DefaultSocket

// DefaultControlSocket is where the control socket listens by default.
const DefaultControlSocket = control.DefaultSocket

// Control configures the control socket.
type Control struct {
	Socket string // an absolute path
	Mode   os.FileMode
	Group  string
}

// Summary describes c in one line, for `rotini check`:
// "config OK: 2 listeners, 1 app (web: 2 workers)".
func (c *Config) Summary() string {
	apps := make([]string, len(c.Apps))
	for i, a := range c.Apps {
		apps[i] = fmt.Sprintf("%s: %s", a.Name, plural(a.Workers, "worker"))
	}
	return fmt.Sprintf("config OK: %s, %s (%s)",
		plural(len(c.Listeners), "listener"), plural(len(c.Apps), "app"), strings.Join(apps, ", "))
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
