package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/config"
	"github.com/rotini-dev/rotini/control"
	"github.com/rotini-dev/rotini/reaper"
)

// The client verbs talk to a running rotini over its control socket. Each
// exits ExitOK, ExitFailure (the verb failed, or rotini cannot be reached)
// or ExitUsage.

// clientTimeout bounds a verb that does not wait for a reload.
const clientTimeout = 30 * time.Second

// clientFlags are the flags every client verb takes: where the socket is.
type clientFlags struct {
	control, config string
}

func (c *CLI) clientFlagSet(verb string) (*flag.FlagSet, *clientFlags) {
	cf := &clientFlags{}
	fs := flag.NewFlagSet("rotini "+verb, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cf.control, "control", os.Getenv("ROTINI_CONTROL"), "control socket `path` (env ROTINI_CONTROL; else the config's control.socket; else "+config.DefaultControlSocket+")")
	fs.StringVar(&cf.config, "c", os.Getenv("ROTINI_CONFIG"), "config `file` to read control.socket from (env ROTINI_CONFIG)")
	fs.StringVar(&cf.config, "config", os.Getenv("ROTINI_CONFIG"), "config `file` to read control.socket from (env ROTINI_CONFIG)")
	return fs, cf
}

// parseClient parses flags and operands in any order ("reload web --wait").
// done is true when the caller should return code at once (help, or a
// usage error).
func (c *CLI) parseClient(fs *flag.FlagSet, args []string, synopsis string) (operands []string, code int, done bool) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(c.Stdout, "usage: %s\n\nflags:\n", synopsis)
				fs.SetOutput(c.Stdout)
				fs.PrintDefaults()
				return nil, ExitOK, true
			}
			return nil, c.usageError("%v (usage: %s)", err, synopsis), true
		}
		args = fs.Args()
		if len(args) == 0 {
			return operands, 0, false
		}
		operands, args = append(operands, args[0]), args[1:]
	}
}

// parseNoOperand parses the flags of a client verb that takes no operand.
func (c *CLI) parseNoOperand(verb, synopsis string, args []string) (cf *clientFlags, code int, done bool) {
	fs, cf := c.clientFlagSet(verb)
	ops, code, done := c.parseClient(fs, args, synopsis)
	if done {
		return nil, code, true
	}
	if len(ops) > 0 {
		return nil, c.usageError("%s takes no operand, got %q (usage: %s)", verb, ops[0], synopsis), true
	}
	return cf, 0, false
}

// client finds the control socket: --control, ROTINI_CONTROL, the config
// file's control.socket (-c or ROTINI_CONFIG), then the default.
func (c *CLI) client(cf *clientFlags) *control.Client {
	if cf.control != "" {
		return &control.Client{Path: cf.control}
	}
	if cf.config != "" {
		cfg, diags := config.Load(cf.config)
		if cfg != nil {
			return &control.Client{Path: cfg.Control.Socket}
		}
		fmt.Fprintf(c.Stderr, "rotini: warning: cannot read the control socket's path from %s (%s); trying %s\n",
			cf.config, firstError(diags.Errs()), config.DefaultControlSocket)
	}
	return &control.Client{Path: config.DefaultControlSocket}
}

func firstError(errs []error) string {
	if len(errs) == 0 {
		return "invalid"
	}
	return errs[0].Error()
}

// clientContext is cancelled after timeout, or when the user interrupts
// (INT, TERM, HUP, QUIT arrive on c.Signals: main catches every signal).
// interrupted returns the signal that did it, or 0.
func (c *CLI) clientContext(timeout time.Duration) (ctx context.Context, cancel func(), interrupted func() unix.Signal) {
	ctx, cancelTimeout := context.WithTimeout(context.Background(), timeout)
	got := make(chan unix.Signal, 1)
	stop := make(chan struct{})
	if c.Signals != nil {
		go func() {
			for {
				select {
				case s := <-c.Signals:
					switch sig, _ := s.(unix.Signal); sig {
					case unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT:
						got <- sig
						cancelTimeout()
						return
					}
				case <-stop:
					return
				}
			}
		}()
	}
	cancel = func() {
		close(stop)
		cancelTimeout()
	}
	interrupted = func() unix.Signal {
		select {
		case s := <-got:
			got <- s
			return s
		default:
			return 0
		}
	}
	return ctx, cancel, interrupted
}

// clientError reports a failed request and returns the exit code.
func (c *CLI) clientError(err error, interrupted func() unix.Signal) int {
	if sig := interrupted(); sig != 0 {
		fmt.Fprintf(c.Stderr, "rotini: interrupted by %s\n", unix.SignalName(sig))
		return reaper.SignalBase + int(sig)
	}
	fmt.Fprintf(c.Stderr, "rotini: %v\n", err)
	return ExitFailure
}

const (
	reloadSynopsis = "rotini reload [APP…] [--wait] [--timeout D] [--control PATH]"
	statusSynopsis = "rotini status [--json] [--control PATH]"
	scaleSynopsis  = "rotini scale [APP=]N [--control PATH]"
	healthSynopsis = "rotini health [--control PATH]"
	stopSynopsis   = "rotini stop [--control PATH]"
)

// reload is `rotini reload [APP…] [--wait] [--timeout D]`.
func (c *CLI) reload(args []string) int {
	fs, cf := c.clientFlagSet("reload")
	wait := fs.Bool("wait", false, "show progress and exit 0 only when the new generation serves")
	timeout := fs.Duration("timeout", 5*time.Minute, "with --wait, give up waiting after this long (the reload goes on)")
	apps, code, done := c.parseClient(fs, args, reloadSynopsis)
	if done {
		return code
	}
	if *timeout <= 0 {
		return c.usageError("--timeout must be above 0, not %s", *timeout)
	}
	cl := c.client(cf)
	what := "every app"
	if len(apps) > 0 {
		what = strings.Join(apps, ", ")
	}
	if !*wait {
		ctx, cancel, intr := c.clientContext(clientTimeout)
		defer cancel()
		if err := cl.Reload(ctx, apps); err != nil {
			return c.clientError(err, intr)
		}
		fmt.Fprintf(c.Stdout, "reload of %s accepted\n", what)
		return ExitOK
	}

	ctx, cancel, intr := c.clientContext(*timeout + clientTimeout)
	defer cancel()
	ended := map[string]bool{}     // app -> its done or failed step was shown
	readyShown := map[string]int{} // app -> generation whose "ready N/N" was shown
	results, err := cl.ReloadWait(ctx, apps, *timeout, func(e control.Event) {
		switch e.Kind {
		case control.KindReady:
			if readyShown[e.App] == e.Generation {
				return // said already by the last worker-ready
			}
		case control.KindWorkerReady:
			if e.Ready == e.Total {
				readyShown[e.App] = e.Generation
			}
		case control.KindDone, control.KindFailed:
			ended[e.App] = true
		}
		fmt.Fprintf(c.Stdout, "%s: %s\n", e.App, e.Message)
	})
	failed := 0
	for _, r := range results {
		if !ended[r.App] { // its last step was dropped, or never sent: the result says it
			fmt.Fprintf(c.Stdout, "%s: %s\n", r.App, r.Message)
		}
		if !r.OK {
			failed++
			fmt.Fprintf(c.Stderr, "rotini: reload of %s failed: %s\n", r.App, r.Reason)
		}
	}
	if err != nil {
		return c.clientError(err, intr)
	}
	if failed > 0 || len(results) == 0 {
		return ExitFailure
	}
	return ExitOK
}

// status is `rotini status [--json]`.
func (c *CLI) status(args []string) int {
	fs, cf := c.clientFlagSet("status")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	ops, code, done := c.parseClient(fs, args, statusSynopsis)
	if done {
		return code
	}
	if len(ops) > 0 {
		return c.usageError("status takes no operand, got %q (usage: %s)", ops[0], statusSynopsis)
	}
	ctx, cancel, intr := c.clientContext(clientTimeout)
	defer cancel()
	cl := c.client(cf)
	if *asJSON {
		raw, err := cl.StatusJSON(ctx)
		if err != nil {
			return c.clientError(err, intr)
		}
		var b bytes.Buffer
		if err := json.Indent(&b, raw, "", "  "); err != nil {
			return c.clientError(fmt.Errorf("bad status from rotini: %w", err), intr)
		}
		b.WriteByte('\n')
		c.Stdout.Write(b.Bytes())
		return ExitOK
	}
	st, err := cl.Status(ctx)
	if err != nil {
		return c.clientError(err, intr)
	}
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	writeStatus(c.Stdout, st, cl.Path, now())
	return ExitOK
}

// scale is `rotini scale [APP=]N`.
func (c *CLI) scale(args []string) int {
	fs, cf := c.clientFlagSet("scale")
	ops, code, done := c.parseClient(fs, args, scaleSynopsis)
	if done {
		return code
	}
	if len(ops) != 1 {
		return c.usageError("scale takes one operand, [APP=]N (usage: %s)", scaleSynopsis)
	}
	app, count, found := strings.Cut(ops[0], "=")
	if !found {
		app, count = "", ops[0]
	}
	n, err := strconv.Atoi(count)
	if err != nil || n < 1 || (found && app == "") {
		return c.usageError("scale: want N or APP=N with N a whole number of at least 1, not %q", ops[0])
	}
	ctx, cancel, intr := c.clientContext(clientTimeout)
	defer cancel()
	if err := c.client(cf).Scale(ctx, app, n); err != nil {
		return c.clientError(err, intr)
	}
	if app == "" {
		app = "every app"
	}
	fmt.Fprintf(c.Stdout, "%s: scaling to %d workers\n", app, n)
	return ExitOK
}

// health is `rotini health`: exit 0 when every app has a ready serving
// generation; otherwise 1 and the reason in one line. For HEALTHCHECK.
func (c *CLI) health(args []string) int {
	cf, code, done := c.parseNoOperand("health", healthSynopsis, args)
	if done {
		return code
	}
	ctx, cancel, intr := c.clientContext(clientTimeout)
	defer cancel()
	h, err := c.client(cf).Health(ctx)
	if err != nil {
		return c.clientError(err, intr)
	}
	if !h.OK {
		fmt.Fprintf(c.Stdout, "unhealthy: %s\n", h.Reason)
		return ExitFailure
	}
	fmt.Fprintln(c.Stdout, "ok")
	return ExitOK
}

// stop is `rotini stop`: a graceful stop, as TERM.
func (c *CLI) stop(args []string) int {
	cf, code, done := c.parseNoOperand("stop", stopSynopsis, args)
	if done {
		return code
	}
	ctx, cancel, intr := c.clientContext(clientTimeout)
	defer cancel()
	if err := c.client(cf).Stop(ctx); err != nil {
		return c.clientError(err, intr)
	}
	fmt.Fprintln(c.Stdout, "rotini is stopping")
	return ExitOK
}
