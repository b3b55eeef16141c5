package cli

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rotini-dev/rotini/config"
	"github.com/rotini-dev/rotini/hold"
	"github.com/rotini-dev/rotini/reload"
)

// hold is `rotini hold [--socket PATH]`: keep the listeners that app
// containers define, across the replacement of those containers. It runs
// until TERM, INT or QUIT, reaping whatever is reparented to it (it is PID 1
// of its container).
func (c *CLI) hold(args []string) int {
	fs := flag.NewFlagSet("hold", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	path := fs.String("socket", hold.DefaultSocket, "the unix socket app containers reach the holder on")
	level := fs.String("log-level", "info", "trace, debug, info, warn or error")
	format := fs.String("log-format", "text", "text or json")
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	if fs.NArg() > 0 {
		return c.usageError("hold takes no arguments, got %q", fs.Args())
	}
	log, err := newLogger(*level, *format, c.Stderr)
	if err != nil {
		return c.usageError("%v", err)
	}
	_, stopReaper := c.startReaper(log)
	defer stopReaper()
	h, err := hold.Listen(log.Named("hold"), *path)
	if err != nil {
		fmt.Fprintf(c.Stderr, "rotini: hold: %v\n", err)
		return ExitInternal
	}
	log.Named("hold").Info("holding sockets for app containers", "socket", h.Path())
	go h.Serve()
	for {
		select {
		case s := <-c.Signals:
			switch s {
			case syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT:
				log.Named("hold").Info("stopping: the listeners close", "signal", s)
				h.Close()
				return ExitOK
			}
		case <-c.Chld:
		}
	}
}

// holdSocket is the holder to take the listeners from: ROTINI_HOLD, else
// the config's hold block; "" binds them here.
func holdSocket(cfg *config.Config) string {
	if p := os.Getenv("ROTINI_HOLD"); p != "" {
		return p
	}
	return cfg.Hold
}

// holdSpecs are the config's listeners as a holder binds them.
func holdSpecs(cfg *config.Config) ([]hold.Spec, error) {
	var out []hold.Spec
	for _, l := range cfg.Listeners {
		if l.Network == "unix" {
			return nil, fmt.Errorf("listener %q: a holder keeps TCP listeners only; bind unix sockets without hold", l.Name)
		}
		out = append(out, hold.Spec{
			Name: l.Name, Network: l.Network, Address: l.Address, Backlog: l.Backlog,
			GraceMS: l.SwitchGrace.Milliseconds(),
		})
	}
	for _, a := range cfg.Apps {
		if a.Proxy != nil {
			return nil, fmt.Errorf("app %q: proxy mode and a holder do not go together yet", a.Name)
		}
	}
	return out, nil
}

// tenantID names this rotini at the holder: the host name (a container's
// id in Docker), the pid and the start time, so that a restarted container
// is a new tenant.
func tenantID() string {
	h, _ := os.Hostname()
	return strings.Join([]string{h, strconv.Itoa(os.Getpid()), strconv.FormatInt(time.Now().UnixNano()%1e9, 36)}, "-")
}

// superseded stops m gracefully when another container's rotini took over
// its listeners: its generations drain what they hold and it exits 0.
func superseded(mp **reload.Manager) func(string) {
	return func(by string) {
		if m := *mp; m != nil {
			m.Supersede(by)
		}
	}
}
