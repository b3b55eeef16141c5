// Package procfs reads what rotini needs of /proc: a process's stat line,
// its children, its descendants, every pid, a process's initial
// environment, its open descriptors, its status lines and its resident
// memory. It is the only place in rotini that parses those files.
//
// Invariants:
//   - A reader never fails on a process that does not exist or that exits
//     while it is read: a reader about one pid returns an error that wraps
//     ErrGone, and a reader about many pids (All, Children, Descendants)
//     leaves that process out. Processes come and go between two reads of
//     /proc; callers must treat every answer as a snapshot that may
//     already be stale, and tell a process from a later one that reuses
//     its pid by Process.StartTime.
//   - The command name in /proc/PID/stat may hold any byte but NUL,
//     including spaces and parentheses ("a) b (c" is a valid name, chosen
//     by the process itself with prctl(PR_SET_NAME)). Fields are counted
//     from the LAST ')' of the line, never from the first, so no process
//     can shift its own fields and pass for another's child, group or
//     state.
//   - Nothing here writes to /proc or changes a process.
//
// Children reads /proc/PID/task/TID/children, which lists only that
// subtree, so following one process's descendants costs nothing per
// unrelated process on the machine. On kernels built without
// CONFIG_PROC_CHILDREN the files do not exist, and Children and
// Descendants fall back to one listing of every process.
//
// This package replaces github.com/mitchellh/go-ps, which rotini used for
// that fallback listing: go-ps cuts the stat line at the FIRST ')', so a
// process named "x) S 1 1 1" reports a parent, group and session of its
// own choosing, and it reads every process's stat line to answer any
// question, where rotini asks about one subtree. The /proc readers rotini
// needs are a few lines each; owning them keeps the parsing in one place
// and under test.
package procfs
