package activation

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/exitcode"
	"github.com/rotini-dev/rotini/sigstate"
)

// ShimEnv marks a process started as the worker shim. Its value is unused.
const ShimEnv = "ROTINI_SHIM_EXEC"

// ShimPath is the shim's executable: rotini's own binary (see
// sigstate.SelfExe, which must name it the same way).
const ShimPath = sigstate.SelfExe

// ShimArgv returns the argv that makes the shim exec path with argv; the
// process is to be started as ShimPath, with ShimEnv in its environment.
func ShimArgv(path string, argv []string) []string {
	return append([]string{"rotini-shim", path}, argv...)
}

// ExecShimIfAsked turns this process into the worker when it was started as
// the shim: it sets LISTEN_PID to its own pid (which exec keeps) and execs the
// real command. Otherwise it returns at once. main calls it before anything
// else so that the shim costs one exec and nothing more.
func ExecShimIfAsked() {
	if _, ok := os.LookupEnv(ShimEnv); !ok {
		return
	}
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "rotini-shim: no command")
		os.Exit(exitcode.NotFound)
	}
	inherited := sigstate.Restore(os.Environ()) // the signal state rotini inherited; exec follows
	env := make([]string, 0, len(inherited)+1)
	for _, kv := range inherited {
		if strings.HasPrefix(kv, ShimEnv+"=") || strings.HasPrefix(kv, "LISTEN_PID=") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "LISTEN_PID="+strconv.Itoa(os.Getpid()))
	err := unix.Exec(os.Args[1], os.Args[2:], env)
	fmt.Fprintf(os.Stderr, "rotini: exec %s: %v\n", os.Args[1], err)
	os.Exit(exitcode.Of(err))
}
