// Package cli is rotini's command line: it parses the verbs and flags, reads
// the config once, wires the packages below it and runs one verb to its end,
// returning the process's exit code. Package main only runs the shims and
// calls Run.
//
// Invariants:
//   - A usage error (unknown verb or flag, bad signal name, missing command)
//     is found before anything starts — no process, socket or request — and
//     exits ExitUsage (64), saying why on stderr.
//   - The client verbs (reload, status, scale, health, stop) talk to a
//     running rotini only through package control's Client and types, and
//     print the messages rotini wrote as they are: what the supervisor says
//     in a reload's events and results is what the user reads.
//   - Only this package imports config: the packages below take
//     their own Options, built here from the config (appOptions,
//     socketSpecs, controlOptions, …), and every field of the config
//     reaches one of them (TestEveryConfigFieldReachesAnOption).
//   - As init (`rotini run`, with or without -c), nothing rotini prints may
//     block it: its log and messages go through a logsink.
//
// Files: cli.go (dispatch, exit codes, zero-config run), client_verbs.go
// (the verbs that talk to the control socket), status.go (the human view
// of `rotini status`), config_mode.go (`rotini -c FILE` and `check`: the
// config to options, reloads of the config, the control socket),
// hold_mode.go (`rotini hold`, and a tenant's link to a holder).
package cli
