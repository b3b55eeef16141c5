package config

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"golang.org/x/sys/unix"

	pid1 "github.com/rotini-dev/rotini/init"
	"github.com/rotini-dev/rotini/signame"
	"github.com/rotini-dev/rotini/sockets"
)

// The raw structs mirror the file's structure for gohcl, which reports
// unknown arguments and blocks, duplicate singleton blocks and missing
// labels. Arguments are kept as *hcl.Attribute so that validation knows
// each one's exact source range.

type rawFile struct {
	Listeners []*rawListener `hcl:"listen,block"`
	Apps      []*rawApp      `hcl:"app,block"`
	Log       *rawLog        `hcl:"log,block"`
	Control   *rawControl    `hcl:"control,block"`
	Signals   *rawSignals    `hcl:"signals,block"`
	Hold      *rawHold       `hcl:"hold,block"`
}

type rawHold struct {
	DefRange hcl.Range      `hcl:",def_range"`
	Socket   *hcl.Attribute `hcl:"socket"`
}

type rawLog struct {
	Level  *hcl.Attribute `hcl:"level"`
	Format *hcl.Attribute `hcl:"format"`
}

type rawControl struct {
	Socket *hcl.Attribute `hcl:"socket"`
	Mode   *hcl.Attribute `hcl:"mode"`
	Group  *hcl.Attribute `hcl:"group"`
}

type rawSignals struct {
	Rewrite *hcl.Attribute `hcl:"rewrite"`
}

// Load reads and parses the config file at path. See Parse.
func Load(path string) (*Config, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Failed to read config file",
			Detail:   fmt.Sprintf("The config file %s could not be read: %s.", path, err),
			Extra:    readError{err},
		}}
	}
	return Parse(src, path)
}

// readError marks the diagnostic of a file that could not be read.
type readError struct{ err error }

// ReadError returns the I/O error when diags say the file could not be
// read at all (missing, unreadable, out of descriptors), and nil when the
// file was read, valid or not: the two call for different fixes.
func ReadError(diags hcl.Diagnostics) error {
	for _, d := range diags {
		if e, ok := d.Extra.(readError); ok {
			return e.err
		}
	}
	return nil
}

// Parse decodes and validates src, the HCL text of the config file named
// filename (used in diagnostics). It returns a *Config only when no
// diagnostic is an error; warnings may come with it.
func Parse(src []byte, filename string) (*Config, hcl.Diagnostics) {
	file, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, diags
	}
	var raw rawFile
	d := &decoder{diags: append(diags, gohcl.DecodeBody(file.Body, nil, &raw)...)}
	cfg := d.config(&raw, file.Body.MissingItemRange())
	cfg.Filename = filename
	sortByPosition(d.diags)
	if d.diags.HasErrors() {
		return nil, d.diags
	}
	return cfg, d.diags
}

func (d *decoder) config(raw *rawFile, fileStart hcl.Range) *Config {
	cfg := &Config{}
	listeners := d.listeners(raw.Listeners)
	for _, l := range listeners {
		cfg.Listeners = append(cfg.Listeners, *l.Listener)
	}
	cfg.Apps = d.apps(raw.Apps, listeners)
	if len(raw.Apps) == 0 {
		d.errorf(fileStart, "Missing app block",
			"A config file must define at least one app block: it is what rotini runs.")
	}
	for _, l := range listeners {
		if l.usedBy == "" && l.Name != "" {
			d.warnf(l.defRange, "Unused listener",
				"No app lists listener %q, so connections to it would wait in its backlog forever. Add it to an app's listen list or remove it.", l.Name)
		}
	}
	cfg.Log = d.log(raw.Log)
	cfg.Control = d.control(raw.Control)
	if raw.Hold != nil {
		cfg.Hold = DefaultHoldSocket
		if a := raw.Hold.Socket; a != nil {
			if s, ok := value[string](d, a); ok && d.socketPath(a.Expr.Range(), s, "hold socket") {
				cfg.Hold = s
			}
		}
	}
	if raw.Signals != nil {
		cfg.Rewrite = d.rewrite(raw.Signals.Rewrite)
	}
	return cfg
}

func (d *decoder) log(raw *rawLog) Log {
	l := Log{Level: "info", Format: "text"}
	if raw == nil {
		return l
	}
	l.Level = d.oneOf(raw.Level, l.Level, "Invalid log level", "trace", "debug", "info", "warn", "error")
	l.Format = d.oneOf(raw.Format, l.Format, "Invalid log format", "text", "json")
	return l
}

func (d *decoder) control(raw *rawControl) Control {
	c := Control{Socket: DefaultControlSocket, Mode: 0o600}
	if raw == nil {
		return c
	}
	if a := raw.Socket; a != nil {
		if s, ok := value[string](d, a); ok {
			if d.socketPath(a.Expr.Range(), s, "control socket") {
				c.Socket = s
			}
		}
	}
	c.Mode = d.mode(raw.Mode, c.Mode)
	c.Group = d.str(raw.Group, "")
	return c
}

func (d *decoder) socketPath(rng hcl.Range, path, what string) bool {
	switch {
	case !filepath.IsAbs(path):
		d.errorf(rng, "Relative unix socket path",
			"The %s path %q is relative; write an absolute path, such as \"/run/app.sock\".", what, path)
	case len(path) > sockets.MaxUnixPath:
		d.errorf(rng, "Unix socket path too long",
			"The %s path is %d bytes long; the kernel allows at most %d.", what, len(path), sockets.MaxUnixPath)
	default:
		return true
	}
	return false
}

// rewrite decodes `rewrite = { TERM = "QUIT", WINCH = "0" }`.
func (d *decoder) rewrite(a *hcl.Attribute) map[unix.Signal]unix.Signal {
	if a == nil {
		return nil
	}
	pairs, diags := hcl.ExprMap(a.Expr)
	d.diags = append(d.diags, diags...)
	m := map[unix.Signal]unix.Signal{}
	for _, p := range pairs {
		var from, to string
		if diags := gohcl.DecodeExpression(p.Key, nil, &from); diags.HasErrors() {
			d.diags = append(d.diags, diags...)
			continue
		}
		if diags := gohcl.DecodeExpression(p.Value, nil, &to); diags.HasErrors() {
			d.diags = append(d.diags, diags...)
			continue
		}
		f, err := signame.Parse(from)
		if err != nil {
			d.errorf(p.Key.Range(), "Unknown signal", "The signal to rewrite is invalid: %s.", err)
			continue
		}
		if _, dup := m[f]; dup {
			d.errorf(p.Key.Range(), "Duplicate signal rewrite", "Signal %s is rewritten more than once.", signame.Name(f))
			continue
		}
		t, err := pid1.ParseRewriteTarget(to)
		if err != nil {
			d.errorf(p.Value.Range(), "Unknown signal", "The signal to send instead is invalid (\"0\" drops the signal): %s.", err)
			continue
		}
		m[f] = t
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

// sortByPosition orders diags as they appear in the file, so that a user
// reads them top to bottom; those without a position come first.
func sortByPosition(diags hcl.Diagnostics) {
	slices.SortStableFunc(diags, func(a, b *hcl.Diagnostic) int {
		switch {
		case a.Subject == nil && b.Subject == nil:
			return 0
		case a.Subject == nil:
			return -1
		case b.Subject == nil:
			return 1
		}
		return cmp.Or(
			strings.Compare(a.Subject.Filename, b.Subject.Filename),
			a.Subject.Start.Byte-b.Subject.Start.Byte,
		)
	})
}
