// Package reaper is the only place in rotini that waits for processes.
//
// Invariant: exactly one goroutine (the one running Run) calls wait4, and a
// process started through Start is registered under the same lock the drain
// loop holds, so no exit can be reaped before its owner is known. Each tracked
// exit is delivered exactly once, on a channel of capacity 1 that is never
// closed; every other exit is an orphan adopted by rotini (as PID 1 or as a
// child subreaper), counted and logged at debug. Every process started
// through Start dies with rotini (PR_SET_PDEATHSIG), because every fork
// happens on one OS thread that lives as long as rotini.
//
// Nothing else in rotini may wait: no exec.Cmd.Wait/Run/Output and no
// os.Process.Wait (tools/forbid enforces it), or two waiters race and exit
// codes are lost. Processes are started with syscall.ForkExec, which returns a
// bare pid and keeps no pidfd or goroutine that would need a Wait to release.
package reaper
