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
// sockets (client and backend) and, while idle, no user-space buffer and
// no pipe. A direction takes what it copies with only once its source is
// readable, and gives it back before it waits for more: small messages
// (requests and responses) go through a 16 KiB buffer from a pool, with
// read(2) and write(2); once a read fills that buffer the bytes that
// follow go with splice(2) through a pipe from a small pool (the kernel
// moves them, 64 KiB of kernel memory per pipe) until the source has
// nothing more to read. (The standard library's splice keeps its pipe
// while waiting, which would cost 4 more fds per idle connection.) So an
// idle connection holds 2 goroutines and 2 fds, and a busy one at most one
// buffer or pipe per direction more. The bound is MaxConnections × (2
// goroutines from 8 KiB of stack each, 2 sockets and their kernel
// buffers), plus a buffer or pipe per direction moving bytes and at most
// 64 spare pipes; bench/proxy.sh measures the RSS per idle relayed
// connection. A client that connects and sends nothing holds that until
// IdleTimeout.
//
// # Syscalls
//
// A small message costs its direction a read(2), a write(2) and the read
// that says EAGAIN before the direction waits (a read that returns less
// than asked may have consumed the peer's FIN too, so it does not prove
// that readiness will follow). The copy loops' syscalls never block (every socket and pipe is
// non-blocking) and go through RawSyscall, so that the runtime does not
// hand a P to another thread while a loopback write runs the receiver's
// TCP stack.
//
// Accepting and dialing go around package net (sock.go), whose
// bookkeeping a relay does not read. TCP_NODELAY and the keep-alive
// probes Go gives accepted sockets are set once on the listening socket,
// which accepted sockets inherit them from; the client's address comes
// with accept4. The backend socket gets TCP_NODELAY and no keep-alive
// probes (on loopback a peer that is gone resets), and a second connect
// reports the handshake's outcome: on loopback it has finished when the
// first connect returns, so the dialing goroutine does not park. Both
// sockets enter the runtime's poller as *os.File (fcntl and epoll_ctl).
// A connection with one request and one response then costs 24 syscalls
// in all: accept4, 2 fcntl, socket, setsockopt, 2 connect, 6 read (2 of
// them EAGAIN), 2 write, shutdown, 4 epoll_ctl (the runtime's add and
// delete of each socket), 2 close, and about one epoll_pwait
// (bench/proxy.sh counts them with strace).
//
// # Idleness
//
// Idleness is read from the kernel rather than counted per read: a timer
// per connection (a goroutine only while it runs) fires after
// IdleTimeout, reads tcpi_last_data_recv and tcpi_last_data_sent of the
// backend socket (TCP_INFO: what went to the backend came from the client
// and the other way round), and either re-arms itself for what is left of
// IdleTimeout or closes both sockets. Being outside the copying
// goroutines, it also ends a connection whose directions are both stuck
// writing to peers that do not read.
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
// comes first. `status` shows Conns, the relayed connections per
// generation.
package proxy
