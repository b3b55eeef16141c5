// Package reload runs apps as pools of workers on sockets that rotini owns,
// and rotates them to new generations without dropping a connection.
//
// Invariants:
//   - Each generation gets its listening sockets from a sockets.Authority
//     (rotini's own, or a holder's) as fd 3, 4, … in the order of the app's
//     `listen` list. A generation's sockets receive new connections only
//     once it is ready (steer, at promote or when the first generation is
//     ready); rotini never accepts, except in proxy mode, where it relays
//     from its socket to the serving generation's ports (package proxy).
//   - The serving generation is only ever stopped after its successor is
//     ready; a successor that fails (a worker exits, or readiness times out)
//     is stopped and the serving one keeps serving.
//   - A replaced generation gets its stop signal only once nothing new
//     reaches it and it has accepted what its sockets queued, plus a grace
//     (handoff); in proxy mode, once its relayed connections have closed.
//     Its sockets are released once its workers are gone.
//   - Each app's state is owned by one goroutine; everything else sends it
//     requests on channels. Reloads of one app are serialized, and requests
//     that arrive during a reload coalesce into one more.
//   - The config is read (Options.Reconfigure) only on the Manager's
//     reloader goroutine, once for every request queued while it read the
//     last: Reload and ReloadApps queue and return, so that the PID-1
//     signal loop never waits for a config file.
//   - Nothing a generation started outlives its drain: helpers that left
//     a worker's process group (setsid, double fork) are found by the
//     ROTINI_APP/ROTINI_GENERATION of their environment and stopped with
//     it, and the generation is drained only when they are gone too.
//   - A READY=1 counts only for the worker that sent it or an ancestor
//     worker of the sender, and only on the worker's own app's socket
//     (package activation attributes it; each worker's pid is registered
//     with the app's activation.Notifier from its start to its exit).
//   - Every process started here (workers, before_reload, exec probes) is
//     started and signalled through Options.Reaper, a Processes (rotini's
//     reaper), and nothing here waits for a process except by reading the
//     exit channel Start returned. Helpers, which are found in /proc rather
//     than started here, are signalled directly.
//   - A worker that cannot be started is reported as what happened (the
//     exec or lookup error, in the log, the reload's result and status),
//     never as an exit status it did not have; a crash loop that ends on
//     one exits as a shell would, 127 (not found) or 126.
//
// An app's goroutine acts on events (events.go), a closed set: only the
// types there have the appEvent method, and app.handle has a case for each.
// An event without a case is a programming error: handle panics naming its
// type instead of dropping it, and TestEveryEventIsHandled reads the source
// so that such a type fails the tests first.
//
// The state machine's timers (readiness and stop timeouts, min_uptime,
// restart backoff, before_reload's timeout) and its crash counting read the
// Manager's clock. Its tests replace the clock and Processes with fakes and
// a sockets.Authority of their own, and drive every order of events,
// including those that real processes make rare, without waiting for time
// to pass (statemachine_test.go).
//
// Workers that receive listeners are started through activation's
// LISTEN_PID shim (activation.ShimPath), so that LISTEN_PID is theirs.
package reload
