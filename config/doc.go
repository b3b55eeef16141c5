// Package config loads rotini's HCL config file into typed, validated
// values.
//
// Invariant: a *Config returned by Load or Parse without error diagnostics
// is fully validated — names are unique and every reference resolves,
// every duration, signal, address and mode is parsed, every default is
// filled in, and every spawn-time expression has been checked. Nothing
// downstream re-validates; package cli converts a Config into each
// package's own Options (no package below cli imports config). When there is an error,
// no *Config is returned, only the diagnostics.
//
// Errors are hcl.Diagnostics that keep the exact source range of the
// offending attribute, block, label or list element until they are
// printed; WriteDiagnostics shows file:line,column and the source line.
// Validation reports every error of a file, not only the first. The
// decoding is in two steps, as in terraform's config loader: gohcl decodes
// the file's structure into raw structs whose arguments stay
// *hcl.Attribute (gohcl reports unknown arguments and blocks and duplicate
// singleton blocks), then the validating decoder turns each attribute into
// its typed value, or a default when it is absent or null. config.hcl.example
// at the repository root documents every field and its default.
//
// # Spawn-time expressions
//
// An app's command, env values and dir may depend on the worker being
// spawned. They are kept as hcl.Expression in App and evaluated by
// App.Spawn with an hcl.EvalContext (not string templates) holding:
//
//	fd.<listener>  the fd number of a listener in the worker (3, 4, … in the
//	               order of the app's listen list)
//	port.<listener> with a proxy block instead of fd: the loopback port the
//	               generation listens on for that listener (SpawnVars.Ports);
//	               Spawn also puts the first one in PORT
//	generation     the app's generation, from 1
//	worker         the worker's index in its generation, from 0
//	env.<NAME>     a variable of rotini's environment (SpawnVars.Env)
//
// so `command = ["uvicorn", "--fd", "${fd.http}", "main:app"]` gives
// ["uvicorn", "--fd", "3", "main:app"]; whole numbers render as integers.
// At load the expressions are checked once with placeholder values
// (fd.<listed> = 3, 4, … or port.<listed> = 20000, 20001, …, generation =
// 1, worker = 0, env unknown): an unknown variable, fd.<name> or
// port.<name> of a listener the app does not list, fd in proxy mode, port
// without it, or a value of the wrong type is a diagnostic with its
// position. Which env
// names exist is only known at spawn, where a missing one is an error that
// names the file position. Other arguments take no variables.
package config
