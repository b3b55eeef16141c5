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
// sockets (client and backend) and no user-space buffer: the kernel moves
// the bytes with splice(2) through a pipe. A direction takes a pipe from a
// small pool only while bytes are in flight and gives it back, empty,
// before it waits for more (the standard library's splice keeps its pipe
// while waiting, which would cost 4 more fds per idle connection). So an
// idle connection holds 2 goroutines and 2 fds, and a busy one at most 2
// pipes more (64 KiB of kernel memory each). The bound is MaxConnections ×
// (2 goroutines from 8 KiB of stack each, 2 sockets and their kernel
// buffers), plus 2 pipes per connection moving bytes and at most 64 spare
// pipes; bench/proxy.sh measures the RSS per idle relayed connection. A
// client that connects and sends nothing holds that until IdleTimeout.
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
