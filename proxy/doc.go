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
//     in front of the client's). TCP urgent (out-of-band) bytes are the
//     exception: like any reader that does not ask for them, the relay
//     drops them, and relays the bytes around them. A side's EOF is passed on as a half-close
//     (shutdown(SHUT_WR) towards the other), and the connection ends when
//     both directions have ended, on an error, or when both directions have
//     been idle for IdleTimeout.
//   - Nothing is accepted while there is no target, or while MaxConnections
//     connections are relayed: clients then wait in the kernel's accept
//     queue (the listener's backlog), they are not refused.
//   - A connection's sockets, buffers and pipes belong to the one event
//     loop that accepted it, and are closed by it alone: no fd number is
//     closed while another goroutine may still use it.
//
// # Event loops
//
// The relay moves bytes in event loops of its own, not in goroutines per
// connection: one loop per CPU the runtime uses (at most 4), each a
// goroutine with an epoll instance of its own. A loop parks in the
// runtime's poller, where its epoll fd is registered like a socket, and
// collects its events with an epoll_wait that does not wait: no thread is
// held while the relay is idle. The listening socket is in every loop's
// set (level-triggered), so a new connection wakes every loop and one of
// them accepts it; a connection belongs for its whole life to that loop,
// which alone touches its sockets, buffers and pipes (loop.go). Other
// goroutines reach a loop only through its eventfd (SetTarget, Close, a
// freed slot at MaxConnections) or, for the idle timer, by shutting a
// connection's sockets down, which the loop then sees as an event.
//
// # Cost per connection
//
// A relayed connection holds 2 sockets (client and backend), under 1 KiB
// of the loop's bookkeeping (its conn, its idle timer, its slot in the
// loop's table; bench/proxy.sh measures the RSS) and, while idle, no goroutine, no user-space buffer and no pipe. Small messages
// (requests and responses) pass through the loop's one 16 KiB buffer with
// read(2) and write(2); bytes a destination cannot take at once wait in a
// 16 KiB buffer of the direction's own, and the direction reads no more
// until they have gone. A read that fills the loop's buffer means bulk:
// the bytes that follow go with splice(2) through a pipe from a small
// pool (the kernel moves them, 64 KiB of kernel memory per pipe) until the
// source has nothing more to read. So the bound is MaxConnections × (2
// sockets and their kernel buffers, under 1 KiB, and at most one 16 KiB
// buffer or one pipe per direction that waits for a slow reader), plus at
// most 64 spare pipes; bench/proxy.sh measures the RSS per idle relayed
// connection. A client that connects and sends nothing holds that until
// IdleTimeout; a turn of the loop moves at most 16 reads per direction
// before the loop serves the other connections.
//
// # Syscalls
//
// Every socket is non-blocking and edge-triggered in its loop's epoll
// set, for reading from the moment it enters it; writing is added to the
// set only when a write could not take everything. A short read empties
// its source: bytes that arrive after it raise a new event, so no read
// need say EAGAIN. Once the peer's FIN has been reported that event is
// spent, and no byte can follow the FIN: a short read then passes the EOF
// on without reading it. Where a read stops short of what is queued, it
// is read until EAGAIN instead: TCP urgent data queued (EPOLLPRI: a read
// stops at the urgent mark), an error or shutdown, and a unix socket
// client (its reads stop where a message passing fds ends). The
// loops' syscalls other than epoll_wait go through RawSyscall, so that
// the runtime does not hand a P to another thread while a loopback write
// runs the receiver's TCP stack.
//
// Accepting and dialing go around package net (sock.go), whose
// bookkeeping a relay does not read. TCP_NODELAY and the keep-alive
// probes Go gives accepted sockets are set once on the listening socket,
// which accepted sockets inherit them from; the client's address comes
// with accept4. The backend socket gets TCP_NODELAY and no keep-alive
// probes (on loopback a peer that is gone resets), and a second connect
// reports the handshake's outcome: on loopback it has finished when the
// first connect returns. A connection with one request and one response
// (the client then the backend closing) then costs about 19 syscalls:
// accept4 (and sometimes one more that says EAGAIN), socket, setsockopt,
// 2 connect, 2 epoll_ctl (each socket enters the set; a close takes it
// out), 3 read (the request, the response with the backend's EOF behind
// it, the client's EOF), 2 write, shutdown, 2 close, and epoll_wait: the
// runtime's and the loop's, for each wake-up, shared by what it reports
// (bench/proxy.sh counts them with strace).
//
// # Idleness
//
// Idleness is read from the kernel rather than counted per read: a timer
// per connection fires after IdleTimeout, reads tcpi_last_data_recv and
// tcpi_last_data_sent of the backend socket (TCP_INFO: what went to the
// backend came from the client and the other way round), and either
// re-arms itself for what is left of IdleTimeout or shuts both sockets
// down, which wakes the loop to close them. Being outside the loop, it
// also ends a connection whose directions both wait on peers that do not
// read.
//
// # Failed dials
//
// A backend that refuses, or does not answer within DialTimeout, is
// followed by the target's other backends in turn (a worker that died or
// restarts does not fail the connection), as long as their generation is
// still the target; once it is not, or all failed, the current target's
// backends are tried if the target changed since the connection was
// accepted; then the client's connection is closed.
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
// comes first. `status` shows Conns, the relayed connections per
// generation.
package proxy
