// Package sockets binds and owns rotini's listening sockets, and decides
// which generation of an app receives each new connection.
//
// Invariants:
//   - No client reaches a generation that is not ready, and no generation
//     receives a new connection once its successor serves. For a steered
//     TCP listener every generation has its own socket, bound by rotini to
//     the same address with SO_REUSEPORT, so the sockets form one kernel
//     reuseport group; a one-instruction classic BPF program
//     (SO_ATTACH_REUSEPORT_CBPF) returns the index of the serving
//     generation's socket, and the kernel puts every new connection in that
//     socket's accept queue.
//   - The program's index is valid across every change of the group. The
//     kernel orders a group's sockets by listen(); when one leaves, the last
//     one moves into its slot; an index past the end makes the kernel hash
//     across all of them, which would hand connections to a booting or
//     draining generation. So a socket is removed only when the move keeps
//     the serving socket where the program points, or leaves the serving
//     socket alone in the group; otherwise the socket is retired: it stays
//     in the group, receives nothing, and leaves at the next change that allows it,
//     or the next generation takes it over. The group never holds more
//     sockets than the most generations alive at once.
//   - Only rotini binds. A generation's socket leaves the group when rotini
//     shuts it down (shutdown(2) takes a listening socket out of its group
//     whoever else holds a copy), after the generation's workers are gone.
//     Before the first bind of an address, the namespace's listening
//     sockets are checked (/proc/net/tcp, tcp6): SO_REUSEPORT would
//     otherwise let rotini silently join a stranger's group.
//   - A unix listener reaches the same outcome by path: a new generation's
//     socket is bound at a temporary path beside the configured one and
//     renamed over it when the generation serves; the old socket keeps its
//     queue for the old generation to drain.
//   - Where steering cannot work (the listener is shared on purpose, the
//     app reloads by restart or signal, the kernel refuses the program),
//     every generation gets the same socket, as before steering existed,
//     and Status says why.
//
// Handshakes in flight at a switch complete into the old socket up to a
// round trip later. With net.ipv4.tcp_migrate_req = 1 (Linux 5.14, per
// network namespace) the kernel moves what is queued or half-open on a
// closing listener to another socket of its group; rotini reads the setting
// and reports it, and does not change it (it cannot tell a container's
// namespace from the host's). Without it, the old generation keeps
// accepting for a grace after its queue is empty.
//
// One Authority per network namespace binds and steers. Local is rotini
// doing so for itself; a holder process that outlives containers is the
// other implementation of the same interface.
package sockets
