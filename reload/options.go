package reload

import (
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/proxy"
	"github.com/rotini-dev/rotini/reaper"
	"github.com/rotini-dev/rotini/sockets"
	"github.com/rotini-dev/rotini/watch"
)

// Mode is how an app reloads.
type Mode string

const (
	// Rotate starts a new generation, waits until it is ready, then drains
	// the old one. The default for apps with listeners.
	Rotate Mode = "rotate"
	// Signal forwards ReloadSignal to the app, which reloads itself. The
	// default for apps without listeners.
	Signal Mode = "signal"
	// Restart stops the serving generation, then starts a new one; clients
	// wait in the backlog of rotini's sockets meanwhile.
	Restart Mode = "restart"
)

// SpawnVars are the values a worker's command, env and dir may depend on.
type SpawnVars struct {
	FDs        map[string]int // listener name -> fd number in the worker
	Ports      map[string]int // proxy mode: listener name -> the generation's loopback port
	Generation int
	Worker     int
}

// SpawnFunc evaluates an app's command, extra environment (KEY=VALUE) and
// working directory for one worker.
type SpawnFunc func(SpawnVars) (argv, env []string, dir string, err error)

// Defaults for zero options; config fills them in from here.
const (
	DefaultProbeInterval       = 100 * time.Millisecond
	DefaultBeforeReloadTimeout = time.Minute
)

// ReadyOptions say when a new worker counts as ready. A worker is ready when
// every configured check passed and it has stayed alive for MinUptime.
type ReadyOptions struct {
	Notify bool   // wait for READY=1 on NOTIFY_SOCKET
	HTTP   string // "/path": probe the generation's private loopback socket; or a full URL
	TCP    string // host:port that must accept a connection
	Exec   []string
	// Timeout bounds the whole wait for one generation.
	Timeout   time.Duration
	MinUptime time.Duration
	Interval  time.Duration // between probe attempts; zero: DefaultProbeInterval

	portChecks []string // proxy mode: the generation's ports, which must accept
}

// AppOptions describe one app. package cli builds them from the config file.
type AppOptions struct {
	Name         string
	Spawn        SpawnFunc
	Workers      int
	Listen       []string // listener names, in fd order
	User, Group  string
	StopSignal   unix.Signal
	StopTimeout  time.Duration
	Reload       Mode
	ReloadSignal unix.Signal
	// BeforeReload runs in the new code directory before a rotation; a
	// non-zero exit aborts the reload.
	BeforeReload        []string
	BeforeReloadTimeout time.Duration // zero: DefaultBeforeReloadTimeout
	Ready               ReadyOptions
	// A serving worker that dies is restarted after RestartBackoff, doubled
	// for each further death of its slot up to RestartBackoffMax. CrashLimit
	// crashes in CrashWindow end rotini with the last worker's exit code; a
	// burst of deaths of different workers is one crash (see crashed).
	RestartBackoff    time.Duration
	RestartBackoffMax time.Duration
	CrashLimit        int
	CrashWindow       time.Duration
	// Proxy, when not nil, makes rotini accept on the app's listeners and
	// relay each connection to the serving generation's loopback port,
	// for apps that can only listen on $PORT.
	Proxy *ProxyOptions
	// Batch is how many workers of a new generation start at once; each
	// further batch starts when every worker started so far is ready. 0
	// starts them all at once. Ready.Timeout bounds the whole generation.
	Batch int
	// LogPrefix passes the workers' stdout and stderr through rotini,
	// each line prefixed with app/generation/worker (see output.go); else
	// workers write to rotini's stdout and stderr directly.
	LogPrefix bool
	// Watch, when not nil, reloads the app when its files change. Log and
	// OnChange are set by the Manager. Changes to it on reload take effect
	// when rotini restarts.
	Watch *watch.Options
}

// ProxyOptions configure proxy mode: the relay, and the range of the
// generations' ports (PortMax 0: ephemeral ports).
type ProxyOptions struct {
	Relay            proxy.Options
	PortMin, PortMax int
}

// Processes starts and signals processes. rotini's is its *reaper.Reaper,
// the one owner of wait4; the state machine's tests use a fake that
// records what it is asked and lets the test decide when and how each
// process exits.
type Processes interface {
	// Start starts path with argv and attr; the channel receives the
	// process's exit exactly once.
	Start(path string, argv []string, attr *syscall.ProcAttr) (pid int, exit <-chan reaper.Exit, err error)
	// Kill sends sig to pid, as kill(2): a negative pid names a process
	// group.
	Kill(pid int, sig syscall.Signal) error
}

var _ Processes = (*reaper.Reaper)(nil)

// Options configure a Manager.
type Options struct {
	Log hclog.Logger
	// Reaper starts and signals every process of the apps: workers,
	// before_reload and exec probes.
	Reaper Processes
	// Sockets binds the apps' listeners and steers their connections
	// between generations.
	Sockets sockets.Authority
	Apps    []AppOptions
	// Reconfigure re-reads the config on reload. It returns the apps'
	// new options and notes on what it could not apply (shown to `reload
	// --wait`), or an error that makes the reload fail with the old config
	// kept. Nil means the options never change.
	Reconfigure func() ([]AppOptions, []string, error)
	// RuntimeDir holds the notify socket.
	RuntimeDir string
	// Env is the base environment of every worker.
	Env []string
}
