// Command rotini is a PID-1 init for containers that reloads an application
// without dropping a connection. See README.md.
package main

import (
	"os"

	pid1 "github.com/rotini-dev/rotini/init"
	"github.com/rotini-dev/rotini/sigstate"
)

func main() {
	execShimIfAsked()          // a worker's first instant; never returns when it applies
	sigstate.ExecShimIfAsked() // likewise, for a child that only needs its signals restored
	sigs, chld := pid1.Notify()
	os.Exit(newCLI(sigs, chld).Run(os.Args[1:]))
}
