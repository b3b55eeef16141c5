// Command rotini is a PID-1 init for containers that reloads an application
// without dropping a connection. See README.md.
package main

import (
	"os"
	"runtime"

	"github.com/rotini-dev/rotini/cli"
	pid1 "github.com/rotini-dev/rotini/init"
	"github.com/rotini-dev/rotini/sigstate"
)

// version is stamped at build time: -ldflags "-X main.version=…".
var version = "dev"

// init keeps main on the process's main thread until main knows it is not
// a shim. A shim execs the worker, and Linux keeps PR_SET_PDEATHSIG per
// thread: a process that execs from another thread carries on as that
// thread, without it, and the worker would outlive a SIGKILLed rotini.
func init() { runtime.LockOSThread() }

func main() {
	execShimIfAsked()          // a worker's first instant; never returns when it applies
	sigstate.ExecShimIfAsked() // likewise, for a child that only needs its signals restored
	runtime.UnlockOSThread()
	sigs, chld := pid1.Notify()
	os.Exit(cli.New(version, sigs, chld).Run(os.Args[1:]))
}
