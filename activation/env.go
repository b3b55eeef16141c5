package activation

import (
	"strconv"
	"strings"
)

// WorkerEnv returns env (the worker's environment so far, rotini's own
// included) with the variables of both protocols set for one worker:
// LISTEN_FDS and LISTEN_FDNAMES for listeners, the names of the sockets it
// gets at fd 3, 4, … in that order, and NOTIFY_SOCKET when notifySocket is
// not "" (the worker's app's socket, Notifier.Path).
//
// Invariant: a worker never sees a value of these variables that rotini
// inherited (rotini may itself run under systemd). Each is either set here
// for this worker or removed; with no listeners, LISTEN_PID is removed too.
// With listeners, LISTEN_PID is the shim's to set: such a worker must be
// started through it (ShimPath, ShimArgv, ShimEnv), which replaces any
// LISTEN_PID in env with the worker's own pid.
func WorkerEnv(env []string, listeners []string, notifySocket string) []string {
	drop := map[string]bool{"LISTEN_FDS": true, "LISTEN_FDNAMES": true, "NOTIFY_SOCKET": true}
	if len(listeners) == 0 {
		drop["LISTEN_PID"] = true
	}
	out := make([]string, 0, len(env)+3)
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); !drop[k] {
			out = append(out, kv)
		}
	}
	if len(listeners) > 0 {
		out = append(out, "LISTEN_FDS="+strconv.Itoa(len(listeners)), "LISTEN_FDNAMES="+strings.Join(listeners, ":"))
	}
	if notifySocket != "" {
		out = append(out, "NOTIFY_SOCKET="+notifySocket)
	}
	return out
}
