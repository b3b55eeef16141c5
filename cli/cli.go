package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/exitcode"
	pid1 "github.com/rotini-dev/rotini/init"
	"github.com/rotini-dev/rotini/logsink"
	"github.com/rotini-dev/rotini/reaper"
	"github.com/rotini-dev/rotini/signame"
)

// Exit codes of rotini itself. Otherwise rotini exits with its child's code,
// or 128+N when signal N killed it (reaper.SignalBase). The usage and config
// codes follow sysexits.h; 126 and 127 are what a shell returns.
const (
	ExitOK            = 0
	ExitFailure       = 1                      // a client verb failed (reload rolled back, unhealthy, …)
	ExitUsage         = 64                     // unknown flag or verb, bad signal name, missing command
	ExitInternal      = 70                     // rotini could not start its own machinery
	ExitConfig        = 78                     // the config file is invalid
	ExitNotExecutable = exitcode.NotExecutable // the command exists but cannot be executed
	ExitNotFound      = exitcode.NotFound      // the command was not found
)

// CLI is rotini's command line: Run runs one verb to its end and returns
// the process's exit code.
type CLI struct {
	Stdout, Stderr io.Writer
	// Signals and Chld are every signal rotini receives (pid1.Notify):
	// run and hold act on them as init; a client verb is interrupted by
	// INT, TERM, HUP or QUIT. nil: none arrive.
	Signals, Chld chan os.Signal
	Version       string // what `rotini version` and status report

	now func() time.Time // the status view's clock; time.Now when nil
}

// New is the CLI of the process: os.Stdout, os.Stderr, and the signals of
// pid1.Notify.
func New(version string, sigs, chld chan os.Signal) *CLI {
	return &CLI{Stdout: os.Stdout, Stderr: os.Stderr, Signals: sigs, Chld: chld, Version: version}
}

const usage = `usage:
  rotini [run] [flags] [-- command args…]     run as init (zero-config: the command; or -c FILE)
  rotini check [FILE]                         validate a config file
  rotini reload [APP] [--wait] [--timeout D]  reload (with --wait: show progress, exit 0 only when it serves)
  rotini status [--json]                      apps, generations, workers, listeners, last reload
  rotini scale [APP=]N                        set the number of workers
  rotini health                               exit 0 when every app serves a ready generation (HEALTHCHECK)
  rotini stop                                 stop gracefully, as TERM
  rotini hold [--socket PATH]                 keep app containers' listeners across their replacement
  rotini version                              print the version

reload, status, scale, health and stop talk to a running rotini on its
control socket: --control PATH, else ROTINI_CONTROL, else the control.socket
of the config (-c FILE or ROTINI_CONFIG), else /run/rotini/rotini.sock.
They exit 0 on success, 1 on failure (or when rotini cannot be reached),
64 on a usage error.

run flags:
`

// Run dispatches a verb and returns the process exit code.
func (c *CLI) Run(args []string) int {
	verb := "run"
	if len(args) > 0 {
		switch args[0] {
		case "run", "check", "version", "reload", "status", "scale", "health", "stop", "hold":
			verb, args = args[0], args[1:]
		case "help", "-h", "-help", "--help":
			fmt.Fprint(c.Stdout, usage)
			fs, _ := runFlagSet(c.Stdout)
			fs.PrintDefaults()
			return ExitOK
		default:
			if v := mistypedVerb(args[0]); v != "" {
				return c.usageError("unknown verb %s; did you mean %s? (to run a command of that name: rotini -- %s)", args[0], v, args[0])
			}
		}
	}
	switch verb {
	case "version":
		fmt.Fprintf(c.Stdout, "rotini %s\n", c.Version)
		return ExitOK
	case "check":
		return c.check(args)
	case "reload":
		return c.reload(args)
	case "status":
		return c.status(args)
	case "scale":
		return c.scale(args)
	case "health":
		return c.health(args)
	case "stop":
		return c.stop(args)
	case "hold":
		return c.hold(args)
	}
	return c.run(args)
}

var verbs = []string{"run", "check", "reload", "status", "scale", "health", "stop", "hold", "version", "help"}

// mistypedVerb returns the verb that name is a typo of, when name is no
// command rotini could run: `rotini statsu` would otherwise end in a bare
// "command not found" (127). A real command of that name always wins.
func mistypedVerb(name string) string {
	if name == "" || strings.HasPrefix(name, "-") || strings.Contains(name, "/") {
		return ""
	}
	if _, err := exec.LookPath(name); err == nil {
		return ""
	}
	best, bestD := "", 0
	for _, v := range verbs {
		d := levenshtein.Distance(name, v, nil)
		if d <= max(1, len(v)/3) && (best == "" || d < bestD) {
			best, bestD = v, d
		}
	}
	return best
}

// runOptions are the flags of `rotini run`; each has a config-file twin.
type runOptions struct {
	config      string
	stopSignal  string
	stopTimeout time.Duration
	rewrite     rewriteFlag
	logLevel    string
	logFormat   string
	control     string
}

type rewriteFlag []string

func (r *rewriteFlag) String() string     { return strings.Join(*r, ",") }
func (r *rewriteFlag) Set(v string) error { *r = append(*r, v); return nil }

func runFlagSet(out io.Writer) (*flag.FlagSet, *runOptions) {
	o := &runOptions{}
	fs := flag.NewFlagSet("rotini", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.config, "c", os.Getenv("ROTINI_CONFIG"), "config `file` (env ROTINI_CONFIG)")
	fs.StringVar(&o.config, "config", os.Getenv("ROTINI_CONFIG"), "config `file` (env ROTINI_CONFIG)")
	fs.StringVar(&o.stopSignal, "stop-signal", "TERM", "`signal` sent to the child's process group on TERM/INT")
	fs.DurationVar(&o.stopTimeout, "stop-timeout", 10*time.Second, "SIGKILL the child's group this long after the stop signal")
	fs.Var(&o.rewrite, "rewrite", "`FROM:TO` rewrite a forwarded signal (names or numbers; TO=0 drops it); repeatable")
	fs.StringVar(&o.logLevel, "log-level", "", "trace|debug|info|warn|error (default warn, info with a config)")
	// "" is "not given", so that an explicit text beats a config's json.
	fs.StringVar(&o.logFormat, "log-format", "", "text|json (default text, or the config's log.format)")
	fs.StringVar(&o.control, "control", os.Getenv("ROTINI_CONTROL"), "control socket `path` (env ROTINI_CONTROL)")
	return fs, o
}

func (c *CLI) parseRun(args []string) (*runOptions, []string, error) {
	fs, o := runFlagSet(io.Discard)
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	return o, fs.Args(), nil
}

func (c *CLI) usageError(format string, a ...any) int {
	fmt.Fprintf(c.Stderr, "rotini: "+format+"\n", a...)
	fmt.Fprintln(c.Stderr, "rotini: see `rotini help`")
	return ExitUsage
}

func newLogger(level, format string, out io.Writer) (hclog.Logger, error) {
	lvl := hclog.LevelFromString(level)
	if lvl == hclog.NoLevel {
		return nil, fmt.Errorf("unknown log level %q (want trace, debug, info, warn or error)", level)
	}
	if format == "" {
		format = "text"
	}
	if format != "text" && format != "json" {
		return nil, fmt.Errorf("unknown log format %q (want text or json)", format)
	}
	opts := hclog.LoggerOptions{
		Name:       "rotini",
		Level:      lvl,
		JSONFormat: format == "json",
		Output:     out,
	}
	if s, ok := out.(*logsink.Sink); ok {
		s.SetNotice(droppedNotice(opts))
	}
	return hclog.New(&opts), nil
}

// droppedNotice formats the line that stands for a gap of lost log lines in
// the logger's own format, whatever its level.
func droppedNotice(opts hclog.LoggerOptions) func(uint64) []byte {
	return func(n uint64) []byte {
		var b bytes.Buffer
		o := opts
		o.Output, o.Level = &b, hclog.Trace
		hclog.New(&o).Warn("log lines dropped: stderr was not read fast enough", "dropped", n, "buffer_bytes", logsink.Bound)
		return b.Bytes()
	}
}

// checkRewrites refuses rewrites of signals that the policy does not
// forward: they would silently do nothing.
func checkRewrites(rw map[unix.Signal]unix.Signal, p pid1.Policy, hint string) error {
	for from := range rw {
		if a := p.Action(from); a != pid1.Forward {
			msg := fmt.Sprintf("rewrite of %s has no effect: rotini does not forward %s, it means %s", signame.Name(from), signame.Name(from), a)
			if a == pid1.Stop || a == pid1.FastStop {
				msg += "; " + hint
			}
			return errors.New(msg)
		}
	}
	return nil
}

func parseRewrites(specs []string) (map[unix.Signal]unix.Signal, error) {
	m := map[unix.Signal]unix.Signal{}
	for _, s := range specs {
		f, t, err := pid1.ParseRewrite(s)
		if err != nil {
			return nil, fmt.Errorf("bad --rewrite %q: %w", s, err)
		}
		m[f] = t
	}
	return m, nil
}

func (c *CLI) run(args []string) int {
	// As init, nothing rotini prints may wait for its reader.
	sink := logsink.New(c.Stderr, logsink.Bound)
	defer sink.Flush(time.Second)
	c.Stderr = sink
	o, cmd, err := c.parseRun(args)
	if err != nil {
		return c.usageError("%v", err)
	}
	if o.stopTimeout < 0 {
		// As the config's stop_timeout: a negative one would SIGKILL at once.
		return c.usageError("bad --stop-timeout %s: must not be negative (0 sends SIGKILL right after the stop signal)", o.stopTimeout)
	}
	if o.config != "" {
		return c.runConfig(o, cmd)
	}
	level := o.logLevel
	if level == "" {
		level = "warn" // tini's quiet default for a drop-in
	}
	log, err := newLogger(level, o.logFormat, c.Stderr)
	if err != nil {
		return c.usageError("%v", err)
	}
	stopSig, err := signame.Parse(o.stopSignal)
	if err != nil {
		return c.usageError("bad --stop-signal: %v", err)
	}
	rewrite, err := parseRewrites(o.rewrite)
	if err == nil {
		err = checkRewrites(rewrite, pid1.ZeroConfig, "to choose the signal a stop sends, use --stop-signal")
	}
	if err != nil {
		return c.usageError("%v", err)
	}
	if len(cmd) == 0 {
		return c.usageError("no command given: use `rotini -- command args…` or `rotini -c config.hcl`")
	}
	path, code := c.resolve(cmd[0])
	if code != 0 {
		return code
	}

	r, stopReaper := c.startReaper(log)
	defer stopReaper()
	child, err := pid1.StartChild(pid1.ChildOptions{
		Path: path, Argv: cmd, Env: os.Environ(),
		StopSignal: stopSig, StopTimeout: o.stopTimeout,
		Log: log.Named("child"), Reaper: r,
	})
	if err != nil {
		return c.startError(cmd[0], err)
	}
	return pid1.Run(pid1.Options{
		Log: log, Policy: pid1.ZeroConfig, Rewrite: rewrite,
		Reaper: r, Signals: c.Signals, Chld: c.Chld,
	}, child)
}

// startReaper makes rotini the reaper of its orphans (PID 1 is by nature; any
// other pid becomes a child subreaper) and runs the single wait4 loop.
func (c *CLI) startReaper(log hclog.Logger) (*reaper.Reaper, func()) {
	if os.Getpid() != 1 {
		if err := reaper.SetSubreaper(); err != nil {
			log.Warn("not PID 1 and cannot become a child subreaper: orphans will not be reaped", "error", err)
		}
	}
	r := reaper.New(log.Named("reaper"))
	ctx, cancel := context.WithCancel(context.Background())
	go r.Run(ctx)
	r.Notify() // children may have exited before the handler was in place
	return r, cancel
}

// resolve finds the command like a shell would and maps failures to the
// shell's codes: 127 not found, 126 found but not executable.
func (c *CLI) resolve(name string) (string, int) {
	path, err := exec.LookPath(name)
	if err == nil {
		return path, 0
	}
	return "", c.startError(name, err)
}

func (c *CLI) startError(name string, err error) int {
	switch {
	case exitcode.IsNotFound(err):
		fmt.Fprintf(c.Stderr, "rotini: %s: command not found\n", name)
		return ExitNotFound
	case exitcode.IsNotExecutable(err):
		fmt.Fprintf(c.Stderr, "rotini: %s: not executable: %v\n", name, err)
		return ExitNotExecutable
	}
	fmt.Fprintf(c.Stderr, "rotini: start %s: %v\n", name, err)
	return ExitInternal
}
