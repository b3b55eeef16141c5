// Package pid1 is rotini's lifecycle as an init: it owns the signal loop,
// starts the workload, stops it, and decides the exit code.
//
// Invariants: every catchable signal has a handler from the first lines of
// main (as PID 1 the kernel drops signals that have none, and `docker stop`
// would hang for its whole timeout); each signal maps to exactly one Action
// through a Policy table; SIGCHLD only ever wakes the reaper; SIGURG (the Go
// runtime's preemption signal) and SIGPIPE are never forwarded; and once the
// workload has finished, nothing rotini started outlives it: leftover members
// of the workers' process groups and adopted descendants are killed and
// reaped before Run returns. After start-up nothing here exits the process:
// only main calls os.Exit.
//
// The folder is named init (users and docs refer to it), but a package cannot be named
// init (Go reserves the identifier for init functions), so the package is
// pid1.
package pid1
