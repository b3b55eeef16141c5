package config

import (
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// SpawnVars are the values of the spawn-time variables for one worker.
type SpawnVars struct {
	// FDs maps each listener the worker receives to its fd number in the
	// worker: fd.<name>.
	FDs map[string]int
	// Ports maps each listener of an app with a proxy block to its
	// generation's loopback port: port.<name>, and PORT for the first.
	Ports map[string]int
	// Generation counts the app's generations from 1; Worker is the
	// worker's index in its generation, from 0.
	Generation, Worker int
	// Env is the environment that env.<NAME> reads, usually rotini's own.
	Env map[string]string
}

// Spawn evaluates the app's command, env and dir for one worker. env holds
// the app's env entries only, as NAME=value sorted by name; the caller adds
// them to the inherited environment; with a proxy block it also holds
// PORT, the port of the app's first listener in v.Ports. dir is "" when
// the app sets none.
//
// The expressions were checked at load, so an error here means a variable
// the load could not know about: an env.<NAME> missing from v.Env, or an
// fd.<name> missing from v.FDs. The error is hcl.Diagnostics and names the
// file position.
func (a *App) Spawn(v SpawnVars) (argv, env []string, dir string, err error) {
	ctx := evalContext(v.FDs, v.Ports, v.Generation, v.Worker, envValue(v.Env))
	var diags hcl.Diagnostics
	argv, diags = evalCommand(a.Command, ctx)
	for _, name := range slices.Sorted(maps.Keys(a.Env)) {
		s, ds := evalString(a.Env[name], ctx)
		diags = append(diags, ds...)
		env = append(env, name+"="+s)
	}
	if a.Proxy != nil && len(a.Listen) > 0 {
		port, ok := v.Ports[a.Listen[0]]
		if !ok {
			return nil, nil, "", fmt.Errorf("app %s: no port for listener %q", a.Name, a.Listen[0])
		}
		// The app's env cannot set PORT (checked at load), so it is added
		// once, in its sorted place.
		i, _ := slices.BinarySearch(env, "PORT=")
		env = slices.Insert(env, i, "PORT="+strconv.Itoa(port))
	}
	if a.Dir != nil {
		var ds hcl.Diagnostics
		dir, ds = evalString(a.Dir, ctx)
		diags = append(diags, ds...)
	}
	if diags.HasErrors() {
		return nil, nil, "", fmt.Errorf("app %s: %w", a.Name, diags)
	}
	return argv, env, dir, nil
}

func evalContext(fds, ports map[string]int, generation, worker int, env cty.Value) *hcl.EvalContext {
	return &hcl.EvalContext{Variables: map[string]cty.Value{
		"fd":         numbers(fds),
		"port":       numbers(ports),
		"generation": cty.NumberIntVal(int64(generation)),
		"worker":     cty.NumberIntVal(int64(worker)),
		"env":        env,
	}}
}

func numbers(m map[string]int) cty.Value {
	o := make(map[string]cty.Value, len(m))
	for name, n := range m {
		o[name] = cty.NumberIntVal(int64(n))
	}
	return cty.ObjectVal(o)
}

func envValue(env map[string]string) cty.Value {
	if len(env) == 0 {
		return cty.MapValEmpty(cty.String)
	}
	m := make(map[string]cty.Value, len(env))
	for k, v := range env {
		m[k] = cty.StringVal(v)
	}
	return cty.MapVal(m)
}

// evalCommand evaluates a list of strings. Values that are unknown (env at
// load time) come out as "".
func evalCommand(expr hcl.Expression, ctx *hcl.EvalContext) ([]string, hcl.Diagnostics) {
	// A list written out is evaluated element by element, so that an error
	// points at its element.
	if elems, diags := hcl.ExprList(expr); !diags.HasErrors() {
		if len(elems) == 0 {
			return nil, commandError(expr.Range(), "The command is an empty list: it must name at least a program.")
		}
		argv := make([]string, len(elems))
		for i, e := range elems {
			var ds hcl.Diagnostics
			argv[i], ds = evalString(e, ctx)
			diags = append(diags, ds...)
		}
		if diags.HasErrors() {
			return nil, diags
		}
		return argv, diags
	}
	val, diags := expr.Value(ctx)
	if diags.HasErrors() {
		return nil, diags
	}
	ty := val.Type()
	if val.IsNull() || !(ty.IsListType() || ty.IsTupleType()) {
		return nil, commandError(expr.Range(), `The command must be a list of strings, such as ["./server", "--port", "8000"].`)
	}
	if !val.IsKnown() {
		return nil, nil
	}
	var argv []string
	for it := val.ElementIterator(); it.Next(); {
		_, v := it.Element()
		s, diags := toString(v, expr.Range())
		if diags.HasErrors() {
			return nil, diags
		}
		argv = append(argv, s)
	}
	if len(argv) == 0 {
		return nil, commandError(expr.Range(), "The command is an empty list: it must name at least a program.")
	}
	return argv, nil
}

func commandError(rng hcl.Range, detail string) hcl.Diagnostics {
	return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid command", Detail: detail, Subject: rng.Ptr()}}
}

// evalString evaluates a string expression; numbers render as integers
// when they are whole ("3", not "3.0").
func evalString(expr hcl.Expression, ctx *hcl.EvalContext) (string, hcl.Diagnostics) {
	val, diags := expr.Value(ctx)
	if diags.HasErrors() {
		return "", diags
	}
	return toString(val, expr.Range())
}

func toString(val cty.Value, rng hcl.Range) (string, hcl.Diagnostics) {
	if val.IsNull() {
		return "", hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid value",
			Detail: "The value is null; a string is required.", Subject: rng.Ptr()}}
	}
	s, err := convert.Convert(val, cty.String)
	if err != nil {
		return "", hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Unsuitable value type",
			Detail: fmt.Sprintf("Unsuitable value: a string is required, not %s.", val.Type().FriendlyName()), Subject: rng.Ptr()}}
	}
	if !s.IsKnown() {
		return "", nil
	}
	return s.AsString(), nil
}

// staticChecker checks an app's spawn-time expressions at load: every
// variable must exist for every spawn, and evaluating with placeholder
// values (fd.<listed> = 3, 4, … or, with a proxy block, port.<listed> =
// 20000, 20001, …; generation = 1, worker = 0, env unknown) must give
// values of the right type.
type staticChecker struct {
	d        *decoder
	app      string
	listed   []string
	declared map[string]*listener
	proxy    bool
	ctx      *hcl.EvalContext
}

func newStaticChecker(d *decoder, app string, listed []string, declared map[string]*listener, proxy *Proxy) *staticChecker {
	fds, ports := map[string]int{}, map[string]int{}
	for i, name := range listed {
		if proxy != nil {
			ports[name] = 20000 + i
		} else {
			fds[name] = 3 + i
		}
	}
	return &staticChecker{
		d: d, app: app, listed: listed, declared: declared, proxy: proxy != nil,
		ctx: evalContext(fds, ports, 1, 0, cty.UnknownVal(cty.Map(cty.String))),
	}
}

func (c *staticChecker) command(expr hcl.Expression) {
	// Element by element when the list is written out, so that one bad
	// element does not hide the errors of the others.
	if elems, diags := hcl.ExprList(expr); !diags.HasErrors() && len(elems) > 0 {
		for _, e := range elems {
			c.string(e)
		}
		return
	}
	if c.variables(expr) {
		_, diags := evalCommand(expr, c.ctx)
		c.d.diags = append(c.d.diags, diags...)
	}
}

func (c *staticChecker) string(expr hcl.Expression) {
	if c.variables(expr) {
		_, diags := evalString(expr, c.ctx)
		c.d.diags = append(c.d.diags, diags...)
	}
}

// variables reports the references no spawn can satisfy; it is true when
// there is none.
func (c *staticChecker) variables(expr hcl.Expression) bool {
	ok := true
	for _, t := range expr.Variables() {
		rng := t.SourceRange()
		switch root := t.RootName(); root {
		case "generation", "worker", "env":
		case "fd", "port":
			if root == "fd" && c.proxy {
				ok = false
				c.d.errorf(rng, "No fd in proxy mode",
					"App %q has a proxy block: rotini keeps its listeners and relays to a port per generation, so its workers get no fd. Use port.<listener> or PORT.", c.app)
				continue
			}
			if root == "port" && !c.proxy {
				ok = false
				c.d.errorf(rng, "No port without a proxy block",
					"port.<listener> is the generation's port in proxy mode, and app %q has no proxy block: add proxy {}, or pass the socket with fd.<listener>.", c.app)
				continue
			}
			name, isName := stepName(t)
			if !isName || slices.Contains(c.listed, name) {
				continue // evaluation reports what is wrong with it
			}
			ok = false
			if c.declared[name] != nil {
				c.d.errorf(rng, "Listener not in listen list",
					"%s.%s refers to listener %q, which app %q does not list in listen. A worker only receives the listeners its app lists.", root, name, name, c.app)
			} else {
				c.d.errorf(rng, "Unknown listener",
					"%s.%s refers to listener %q, but there is no listen %q block.", root, name, name, name)
			}
		default:
			ok = false
			c.d.errorf(rng, "Unknown variable",
				"There is no variable named %q. A command, env or dir can use fd.<listener> (port.<listener> with a proxy block), generation, worker and env.<NAME>.", root)
		}
	}
	return ok
}

// stepName returns the attribute name or string key of a traversal's
// second step: "http" in fd.http or fd["http"].
func stepName(t hcl.Traversal) (string, bool) {
	if len(t) < 2 {
		return "", false
	}
	switch s := t[1].(type) {
	case hcl.TraverseAttr:
		return s.Name, true
	case hcl.TraverseIndex:
		if s.Key.Type() == cty.String && s.Key.IsKnown() && !s.Key.IsNull() {
			return s.Key.AsString(), true
		}
	}
	return "", false
}
