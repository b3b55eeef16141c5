// Package activation is the worker's side of systemd's service protocol,
// as rotini speaks it: LISTEN_PID for the sockets a worker is given, and
// NOTIFY_SOCKET for the READY=1 and STATUS= it sends back.
//
// Invariants:
//   - A worker's LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID and NOTIFY_SOCKET
//     are set for it or absent, never what rotini itself inherited
//     (WorkerEnv, and the shim for LISTEN_PID).
//   - A READY=1 counts only for the worker that sent it or an ancestor
//     worker of the sender, and only on the worker's own app's socket:
//     no process group, no other app, no other user can make a worker
//     ready. A message is attributed by the sender's pid as the kernel
//     gives it (SO_PASSCRED, which a sender cannot forge), then its
//     ancestors from /proc, nearest first; the first registered worker
//     among them decides, and if it is another app's, nobody gets it.
//   - Each app's socket is mode 0600 and owned by the user its workers run
//     as (Notifier.Own, before each spawn), in a directory of this rotini's
//     own that others may traverse but not list.
//   - A message that arrives before its worker is registered (a fast
//     worker's READY=1 between fork and Register) is parked, for parkTTL
//     and at most parkMax of them, and replayed at Register; it is never
//     credited to anyone else.
//   - A flood costs rotini little: each sender pid gets notifyRate
//     messages a second handled, each socket notifySocketRate read.
//   - A notify directory is stale only when the kernel refuses a
//     connection to its marker socket (or it has none after a grace),
//     never by pid: rotinis in different PID namespaces share /run.
//
// LISTEN_PID must equal the pid of the process that reads it, which a Go
// parent cannot set between fork and exec. rotini starts each worker that
// receives listeners through a shim: its own binary (ShimPath) with ShimEnv
// set and ShimArgv, which sets LISTEN_PID to its own pid and execs the real
// command; the pid survives exec. The binary's main calls ExecShimIfAsked
// before anything else, on the main thread.
//
// Who is a worker, and what READY=1 does to it, is package reload's: it
// registers each worker's pid with the Notifier and acts on the messages
// routed to it.
package activation
