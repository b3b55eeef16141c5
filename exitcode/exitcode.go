// Package exitcode is the shell's answer for a command that cannot be run,
// given the same way wherever rotini runs a command for someone: the
// zero-config child, a worker, and the shims that exec them.
//
// Invariant: a command that does not exist yields NotFound (127); one that
// exists but cannot be executed (no permission, not an executable format,
// a directory, …) yields NotExecutable (126), as POSIX shells do. The shims
// exit with these codes when their exec fails, so a caller cannot tell a
// direct exec from one through a shim by its exit code.
//
// It is a leaf: the shims run before anything else in the process, and
// package sigstate, which holds one of them, is below the reaper.
package exitcode

import (
	"errors"
	"io/fs"
	"os/exec"
	"syscall"
)

const (
	NotExecutable = 126 // found, but exec refused it
	NotFound      = 127 // no such command
)

// IsNotFound reports whether err, from a path lookup, an exec or a start,
// says that the command does not exist.
func IsNotFound(err error) bool {
	return errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist)
}

// IsNotExecutable reports whether err says that the command exists but
// exec refuses it: no permission, no executable format, a directory.
func IsNotExecutable(err error) bool {
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.ENOEXEC) || errors.Is(err, syscall.EISDIR)
}

// Of is the code a shell gives a command that err kept from running:
// NotFound when it does not exist, NotExecutable for any other failure.
func Of(err error) int {
	if IsNotFound(err) {
		return NotFound
	}
	return NotExecutable
}
