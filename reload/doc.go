// Package reload runs apps as pools of workers on sockets that rotini owns,
// and rotates them to new generations without dropping a connection.
//
// Invariants:
//   - Listening sockets are bound once, by rotini, and every generation of
//     every app inherits the same file descriptions (fd 3, 4, … in the
//     order of the app's `listen` list), so all generations share one kernel
//     accept queue: connections that arrive while one generation drains and
//     the next boots wait in the backlog. rotini never accepts.
//   - The serving generation is only ever stopped after its successor is
//     ready; a successor that fails (a worker exits, or readiness times out)
//     is stopped and the serving one keeps serving.
//   - Each app's state is owned by one goroutine; everything else sends it
//     requests on channels. Reloads of one app are serialized, and requests
//     that arrive during a reload coalesce into one more.
//   - Nothing a generation started outlives its drain: helpers that left
//     a worker's process group (setsid, double fork) are found by the
//     ROTINI_APP/ROTINI_GENERATION of their environment and stopped with
//     it, and the generation is drained only when they are gone too.
//   - A READY=1 counts only for the worker that sent it or an ancestor
//     worker of the sender, and only on the worker's own app's socket:
//     no process group, no other app, no other user can make a worker
//     ready.
//   - Processes are started only through the reaper, and nothing here waits
//     for a process except by reading the reaper's exit channel.
//
// LISTEN_PID must equal the pid of the process that reads it, which a Go
// parent cannot set between fork and exec. rotini starts each worker through
// a shim: its own binary (/proc/self/exe) with ShimEnv set, which sets
// LISTEN_PID to its own pid and execs the real command; the pid survives exec.
// The shim is only used for workers that receive listeners.
package reload
