package config

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/signame"
)

// decoder turns raw attributes into typed values. Each helper returns the
// default when the attribute is absent, null or invalid, and records a
// diagnostic for the invalid case, so validation goes on and reports every
// error of a file at once.
type decoder struct {
	diags hcl.Diagnostics
}

func (d *decoder) errorf(rng hcl.Range, summary, format string, args ...any) {
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  rng.Ptr(),
	})
}

func (d *decoder) warnf(rng hcl.Range, summary, format string, args ...any) {
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagWarning,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  rng.Ptr(),
	})
}

// required reports a missing attribute the way gohcl does for its
// required arguments.
func (d *decoder) required(a *hcl.Attribute, name string, block hcl.Range) bool {
	if a != nil {
		return true
	}
	d.errorf(block, "Missing required argument",
		"The argument %q is required, but no definition was found.", name)
	return false
}

// value decodes a into a T with gohcl. ok is false when a is absent, null
// or unsuitable (then a diagnostic was recorded).
func value[T any](d *decoder, a *hcl.Attribute) (v T, ok bool) {
	if a == nil {
		return v, false
	}
	// Evaluate first, so that an expression that cannot be evaluated
	// (variables, functions) is reported once, not again as unsuitable.
	if _, diags := a.Expr.Value(nil); diags.HasErrors() {
		d.diags = append(d.diags, diags...)
		return v, false
	}
	var p *T
	diags := gohcl.DecodeExpression(a.Expr, nil, &p)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() || p == nil {
		return v, false
	}
	return *p, true
}

func (d *decoder) str(a *hcl.Attribute, def string) string {
	if v, ok := value[string](d, a); ok {
		return v
	}
	return def
}

func (d *decoder) boolean(a *hcl.Attribute, def bool) bool {
	if v, ok := value[bool](d, a); ok {
		return v
	}
	return def
}

// strs decodes a list of strings; nil when absent.
func (d *decoder) strs(a *hcl.Attribute) []string {
	v, _ := value[[]string](d, a)
	return v
}

// integer decodes a whole number of at least lowest.
func (d *decoder) integer(a *hcl.Attribute, def, lowest int, summary string) int {
	v, ok := value[int](d, a)
	if !ok {
		return def
	}
	if v < lowest {
		d.errorf(a.Expr.Range(), summary, "The value of %s must be at least %d, not %d.", a.Name, lowest, v)
		return def
	}
	return v
}

// duration decodes a Go duration string ("500ms", "1m30s"). Zero is
// refused when positive is set; negative durations always are.
func (d *decoder) duration(a *hcl.Attribute, def time.Duration, positive bool) time.Duration {
	s, ok := value[string](d, a)
	if !ok {
		return def
	}
	v, err := time.ParseDuration(s)
	switch {
	case err != nil:
		d.errorf(a.Expr.Range(), "Invalid duration",
			"The value %q of %s is not a duration: write a number with a unit, such as \"500ms\", \"10s\" or \"1m30s\".", s, a.Name)
	case v < 0:
		d.errorf(a.Expr.Range(), "Invalid duration", "The value of %s must not be negative, and it is %s.", a.Name, s)
	case v == 0 && positive:
		d.errorf(a.Expr.Range(), "Invalid duration", "The value of %s must be longer than zero.", a.Name)
	default:
		return v
	}
	return def
}

// signal decodes a signal name or number (see package signame).
func (d *decoder) signal(a *hcl.Attribute, def unix.Signal) unix.Signal {
	s, ok := value[string](d, a)
	if !ok {
		return def
	}
	sig, err := signame.Parse(s)
	if err != nil {
		d.errorf(a.Expr.Range(), "Unknown signal", "The value of %s is not a signal: %s.", a.Name, err)
		return def
	}
	return sig
}

// mode decodes a permission mode written as an octal string ("0660").
func (d *decoder) mode(a *hcl.Attribute, def os.FileMode) os.FileMode {
	s, ok := value[string](d, a)
	if !ok {
		return def
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o777 {
		d.errorf(a.Expr.Range(), "Invalid file mode",
			"The value %q of %s is not a permission mode: write it as an octal string, such as \"0660\".", s, a.Name)
		return def
	}
	return os.FileMode(v)
}

// oneOf decodes a string that must be one of choices.
func (d *decoder) oneOf(a *hcl.Attribute, def, summary string, choices ...string) string {
	s, ok := value[string](d, a)
	if !ok {
		return def
	}
	if !slices.Contains(choices, s) {
		d.errorf(a.Expr.Range(), summary, "The value of %s must be %s, not %q.", a.Name, orList(choices), s)
		return def
	}
	return s
}

// unixOnly reports an argument that applies to unix sockets only.
func (d *decoder) unixOnly(a *hcl.Attribute, what string) {
	if a != nil {
		d.errorf(a.Range, "Argument only valid for unix sockets",
			"The %s argument applies to unix sockets only, and %s is not one.", a.Name, what)
	}
}

// orList renders choices as `"a", "b" or "c"`.
func orList(choices []string) string {
	q := make([]string, len(choices))
	for i, c := range choices {
		q[i] = strconv.Quote(c)
	}
	if len(q) < 2 {
		return strings.Join(q, "")
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}
