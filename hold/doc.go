// Package hold lets listening sockets outlive the containers that serve
// them: `rotini hold` is a small long-lived process (PID 1 of a container
// that owns the network namespace and the published ports) that binds the
// listeners and steers their connections; each app container's rotini asks
// it for its generations' sockets over a unix socket on a shared volume,
// and receives them with SCM_RIGHTS.
//
// Invariants:
//   - One authority binds and steers per network namespace. The holder is
//     that authority for every container that joins it: it alone binds, it
//     alone knows the order of each reuseport group and sets its steering
//     program (package sockets, whose Local it uses). Remote, the tenant's
//     side, implements the same sockets.Authority interface as Local, so
//     rotini's supervision is the same with or without a holder.
//   - Every listener has a standby socket in its group that the holder
//     keeps. When no tenant serves a listener (before the first, or while
//     one container replaces another, stop-first) new connections are
//     steered to the standby and wait in its queue; the next tenant's first
//     generation receives the standby, with what it queued, and the holder
//     binds a new standby.
//   - A tenant that serves and goes away (it leaves as it stops, or its
//     connection drops: SIGKILL, OOM) has new connections steered to the
//     standby at once.
//   - When a tenant's generation starts serving a listener another tenant
//     served (start-first: a new container beside the old one), the old
//     tenant is told it is superseded; its rotini drains and exits 0.
//
// The protocol: SOCK_SEQPACKET, one JSON message per packet; a reply
// carries the request's id and, for a socket, the descriptor. The holder
// sends events (id 0) on the same connection.
package hold
