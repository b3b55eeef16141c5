package reaper

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/procfs"
)

// CloseInheritedOnExec marks every descriptor above 2 close-on-exec, so
// that a process started from then on holds 0, 1, 2 and the Files it is
// given, and nothing that rotini itself inherited: descriptors rotini
// opens are close-on-exec already, and those in ProcAttr.Files are
// duplicated onto the child's numbers, which clears the flag in the child
// only. It changes the whole process: call it once, before starting
// anything, when inherited descriptors must not reach children (zero-config
// mode passes them on, as tini does).
func CloseInheritedOnExec() {
	fds, err := procfs.FDs(os.Getpid())
	if err != nil {
		return
	}
	for _, fd := range fds {
		if fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
}
