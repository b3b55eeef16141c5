package cli

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rotini-dev/rotini/control"
	"github.com/rotini-dev/rotini/sockets"
	"github.com/rotini-dev/rotini/watch"
)

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
			if ws.Mode == watch.ModeInotify {
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
