// Package proxy relays connections accepted on a socket rotini owns to the
// loopback port of the generation that serves them, for apps that can only
// listen on $PORT.
//
// Invariants:
//   - A connection's backend is chosen once, when it is accepted, from the
//     target current at that moment (SetTarget). Switching the target never
//     moves or cuts a relayed connection: it finishes on the backend it
//     started on. Active(gen) counts the connections relayed to a
//     generation, and Drained(gen) is closed once the generation is no
//     longer the target and that count is 0.
//   - Bytes are relayed unchanged in both directions (plain TCP, no
//     parsing; the only bytes added are an optional PROXY protocol header
//     in front of the client's). A side's EOF is passed on as a half-close
//     (shutdown(SHUT_WR) towards the other), and the connection ends when
//     both directions have ended, on an error, or when both directions have
//     been idle for IdleTimeout.
//   - Nothing is accepted while there is no target, or while MaxConnections
//     connections are relayed: clients then wait in the kernel's accept
//     queue (the listener's backlog), they are not refused.
//
// # Cost per connection
//
// A relayed connection holds exactly 2 goroutines (one per direction), 2
// sockets (client and backend) and no user-space buffer when both ends
// are TCP or unix stream sockets: the kernel moves the bytes with splice(2)
// through a pipe that each direction takes from the Go runtime's pool for
// as long as it splices, which includes waiting for the next byte. So an
// open connection, idle or not, holds 6 file descriptors (2 sockets, 2
// pipes) and, while idle, no pipe pages; a pipe holds at most 64 KiB of
// kernel memory while bytes are in flight. Where splice does not apply,
// io.Copy's 32 KiB buffer per direction is used instead. The bound is
// thus MaxConnections × (2 goroutines, 6 fds, the sockets' kernel buffers):
// bench/proxy.sh measured about 13 KiB of RSS per idle relayed connection.
// A client that connects and sends nothing holds that until IdleTimeout.
// The fd limit must allow 6 × MaxConnections (Go raises the soft limit to
// the hard one at start).
//
// # Idleness
//
// Splice gives no per-read callback, so idleness is read from the kernel:
// when a direction's read deadline fires, tcpi_last_data_recv and
// tcpi_last_data_sent of the backend socket (TCP_INFO) tell how long ago a
// byte last went either way, and the deadline is pushed back by what is
// left of IdleTimeout, or the connection is closed.
//
// # Failed dials
//
// A backend that cannot be dialed within DialTimeout closes the client's
// connection, except when the target changed while dialing: then the new
// target is tried once.
//
// # How rotini uses it
//
// An app with a proxy block gets one Relay per listener, on the socket
// rotini owns for it (the socket is not passed to workers). Each
// generation gets a free loopback port per listener from the app's Ports
// (the configured range, or ephemeral ones) as PORT and ${port.NAME},
// released when the generation has stopped; its readiness
// defaults to "that port accepts". When the generation is promoted the
// app calls SetTarget(gen, "127.0.0.1:PORT"); the old generation gets its
// stop signal once Drained(old) is closed or at stop_timeout, whichever
// comes first. `status` reports Active per generation.
package proxy
