package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/config"
	"github.com/rotini-dev/rotini/control"
	"github.com/rotini-dev/rotini/reaper"
	"github.com/rotini-dev/rotini/sockets"
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
	raw, err := cl.StatusJSON(ctx)
	if err != nil {
		return c.clientError(err, intr)
	}
	if *asJSON {
		var b bytes.Buffer
		if err := json.Indent(&b, raw, "", "  "); err != nil {
			return c.clientError(fmt.Errorf("bad status from rotini: %w", err), intr)
		}
		b.WriteByte('\n')
		c.Stdout.Write(b.Bytes())
		return ExitOK
	}
	var st control.Status
	if err := json.Unmarshal(raw, &st); err != nil {
		return c.clientError(fmt.Errorf("bad status from rotini: %w", err), intr)
	}
	writeStatus(c.Stdout, &st, cl.Path, time.Now())
	return ExitOK
}

// writeStatus prints the human form of status: a header, one row per
// worker, one summary line per app.
func writeStatus(w io.Writer, st *control.Status, path string, now time.Time) {
	fmt.Fprintf(w, "rotini %s  pid %d  up %s  control %s\n", st.Version, st.Pid, age(now, st.Started), path)
	if h := st.Holder; h != nil {
		var ts []string
		for _, t := range h.Tenants {
			s := fmt.Sprintf("%s (pid %d", t.ID, t.Pid)
			if len(t.Serving) > 0 {
				s += ", serving " + strings.Join(t.Serving, " ")
			}
			ts = append(ts, s+")")
		}
		fmt.Fprintf(w, "holder pid %d at %s; tenants: %s\n", h.Pid, h.Socket, strings.Join(ts, ", "))
	}
	for _, l := range st.Listeners {
		line := fmt.Sprintf("listener %s %s", l.Name, l.Address)
		if l.Mode != "" {
			line += " " + string(l.Mode)
		}
		if l.Migrate {
			line += " (tcp_migrate_req on)"
		}
		if l.Note != "" {
			line += ": " + l.Note
		}
		fmt.Fprintln(w, line)
		if l.Mode != sockets.Steered {
			continue
		}
		for _, s := range l.Sockets {
			who := "retired"
			switch {
			case s.Owner == "standby":
				who = "standby (the holder's, for the next container)"
			case s.Owner != "" && s.Generation > 0:
				who = fmt.Sprintf("generation %d of %s", s.Generation, s.Owner)
			case s.Generation > 0:
				who = fmt.Sprintf("generation %d", s.Generation)
			}
			role := ""
			if s.Serving {
				role = "  serving: receives new connections"
			}
			fmt.Fprintf(w, "  %-14s queue %d%s\n", who, s.Queued, role)
		}
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tGEN\tGEN STATE\tWORKER\tPID\tSTATE\tUPTIME\tRESTARTS\tRSS")
	for _, a := range st.Apps {
		for _, g := range a.Generations {
			if len(g.Workers) == 0 {
				fmt.Fprintf(tw, "%s\t%d\t%s\t-\t-\t-\t-\t-\t-\n", a.Name, g.Number, g.State)
			}
			for _, wk := range g.Workers {
				pid := "-"
				if wk.Pid > 0 {
					pid = strconv.Itoa(wk.Pid)
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%s\t%d\t%s\n",
					a.Name, g.Number, g.State, wk.Index, pid, wk.State, age(now, wk.Started), wk.Restarts, bytesIEC(wk.RSS))
			}
		}
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, a := range st.Apps {
		ready := "not ready"
		if a.Ready {
			ready = "ready"
		}
		line := fmt.Sprintf("%s: generation %d serving, %s, %d workers, reload %s", a.Name, a.Serving, ready, a.Workers, a.Mode)
		switch r := a.LastReload; {
		case r == nil:
			line += "; no reload yet"
		case r.OK:
			line += fmt.Sprintf("; last reload ok in %s", r.Duration.Round(time.Millisecond))
		default:
			line += fmt.Sprintf("; last reload FAILED after %s: %s", r.Duration.Round(time.Millisecond), r.Reason)
		}
		fmt.Fprintln(w, line)
		if e := a.LastStartError; e != nil {
			fmt.Fprintf(w, "  %s ago, worker %d of generation %d could not start: %s\n", age(now, e.Time), e.Worker, e.Generation, e.Error)
		}
		for _, g := range a.Generations {
			if g.Dir != "" {
				fmt.Fprintf(w, "  generation %d (%s) runs %s\n", g.Number, g.State, g.Dir)
			}
			if len(g.Ports) > 0 {
				var ps []string
				for _, i := range slices.Sorted(maps.Keys(g.Ports)) {
					for _, name := range slices.Sorted(maps.Keys(g.Ports[i])) {
						ps = append(ps, fmt.Sprintf("worker %d %s=%d", i, name, g.Ports[i][name]))
					}
				}
				fmt.Fprintf(w, "  generation %d (%s) relayed connections %d; ports %s\n", g.Number, g.State, g.Relayed, strings.Join(ps, ", "))
			}
		}
		if ws := a.Watch; ws != nil {
			wl := fmt.Sprintf("  watch: %s", ws.Mode)
			if ws.Mode == "inotify" {
				wl += fmt.Sprintf(" (%d watches)", ws.Watches)
			}
			if ws.Reason != "" {
				wl += ": " + ws.Reason
			}
			if c := ws.LastChange; c != nil {
				first := ""
				if len(c.Paths) > 0 {
					first = ", e.g. " + c.Paths[0]
				}
				wl += fmt.Sprintf("; last change %s ago (%d files%s); %d reloads asked", age(now, c.Last), c.Count, first, ws.Changes)
			} else {
				wl += "; no change seen yet"
			}
			fmt.Fprintln(w, wl)
		}
	}
}

// age is now-t in a short form: 42s, 3m12s, 5h3m, 2d4h.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := max(now.Sub(t), 0)
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

func bytesIEC(n int64) string {
	if n <= 0 {
		return "-"
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
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
	fs, cf := c.clientFlagSet("health")
	ops, code, done := c.parseClient(fs, args, healthSynopsis)
	if done {
		return code
	}
	if len(ops) > 0 {
		return c.usageError("health takes no operand, got %q (usage: %s)", ops[0], healthSynopsis)
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
	fs, cf := c.clientFlagSet("stop")
	ops, code, done := c.parseClient(fs, args, stopSynopsis)
	if done {
		return code
	}
	if len(ops) > 0 {
		return c.usageError("stop takes no operand, got %q (usage: %s)", ops[0], stopSynopsis)
	}
	ctx, cancel, intr := c.clientContext(clientTimeout)
	defer cancel()
	if err := c.client(cf).Stop(ctx); err != nil {
		return c.clientError(err, intr)
	}
	fmt.Fprintln(c.Stdout, "rotini is stopping")
	return ExitOK
}
