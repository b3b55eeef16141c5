package hold

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/sockets"
)

// DefaultSocket is where `rotini hold` listens unless told otherwise.
const DefaultSocket = "/run/rotini/hold.sock"

// maxMessage bounds one packet; a status of many sockets fits.
const maxMessage = 64 << 10

// Spec is a listener as a tenant defines it; the holder binds it.
type Spec struct {
	Name    string      `json:"name"`
	Network string      `json:"network"`
	Address string      `json:"address"`
	Backlog int         `json:"backlog,omitempty"`
	Mode    os.FileMode `json:"mode,omitempty"`
	Owner   string      `json:"owner,omitempty"`
	Group   string      `json:"group,omitempty"`
	GraceMS int64       `json:"grace_ms,omitempty"`
}

func (s Spec) sockets() sockets.Spec {
	return sockets.Spec{
		ListenerOptions: sockets.ListenerOptions{
			Name: s.Name, Network: s.Network, Address: s.Address, Backlog: s.Backlog,
			Mode: s.Mode, Owner: s.Owner, Group: s.Group,
		},
		Steer: true,
		Grace: time.Duration(s.GraceMS) * time.Millisecond,
	}
}

// sameAs reports whether two definitions of a listener bind the same
// socket; a second, different definition is a tenant's error.
func (s Spec) sameAs(o Spec) bool {
	return s.Name == o.Name && s.Network == o.Network && s.Address == o.Address
}

// Ops of a request.
const (
	opHello   = "hello"   // Tenant, Listeners: register, binding what is new
	opSocket  = "socket"  // Listener, Gen: the generation's socket (with the fd)
	opServe   = "serve"   // Listener, Gen: steer new connections to it
	opRelease = "release" // Listener, Gen: its workers are gone
	opLeave   = "leave"   // stopping: steer what the tenant serves to standby
	opStatus  = "status"
)

// errSuperseded refuses the hello of a container that was superseded.
var errSuperseded = errors.New("superseded")

// ErrSuperseded is returned by Dial when this container was superseded
// before (a restart policy restarted it): it must not serve again.
var ErrSuperseded = errSuperseded

// Events the holder sends a tenant.
const (
	evSuperseded = "superseded" // another tenant now serves what this one did
)

type request struct {
	ID        uint64 `json:"id"`
	Op        string `json:"op"`
	Tenant    string `json:"tenant,omitempty"`
	Container string `json:"container,omitempty"` // hello: see ContainerID
	Listeners []Spec `json:"listeners,omitempty"`
	Listener  string `json:"listener,omitempty"`
	Gen       int    `json:"gen,omitempty"`
}

type reply struct {
	ID     uint64                   `json:"id"`
	Error  string                   `json:"error,omitempty"`
	Event  string                   `json:"event,omitempty"`
	By     string                   `json:"by,omitempty"` // superseded: the new tenant
	Addr   string                   `json:"addr,omitempty"`
	Status []sockets.ListenerStatus `json:"status,omitempty"`
	Holder *HolderStatus            `json:"holder,omitempty"`
}

// HolderStatus describes the holder and its tenants, for `rotini status`.
type HolderStatus struct {
	Pid     int      `json:"pid"`
	Socket  string   `json:"socket"`
	Tenants []Tenant `json:"tenants"`
}

// Tenant is one rotini connected to the holder.
type Tenant struct {
	ID      string   `json:"id"`
	Pid     int32    `json:"pid"` // as SO_PEERCRED saw it
	Serving []string `json:"serving,omitempty"`
}

// send writes one message and, when fd >= 0, passes the descriptor.
func send(c *net.UnixConn, v any, fd int) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > maxMessage {
		return fmt.Errorf("message of %d bytes exceeds %d", len(b), maxMessage)
	}
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	_, _, err = c.WriteMsgUnix(b, oob, nil)
	return err
}

// recv reads one message into v and returns the descriptor it carried, or
// -1. Descriptors beyond the first are closed: a peer cannot make the
// reader hold files it did not ask for.
func recv(c *net.UnixConn, v any) (int, error) {
	buf := make([]byte, maxMessage)
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, flags, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return -1, err
	}
	fd := -1
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err == nil {
			for _, m := range msgs {
				fds, err := unix.ParseUnixRights(&m)
				if err != nil {
					continue
				}
				for _, f := range fds {
					if fd < 0 {
						fd = f
						unix.CloseOnExec(f)
					} else {
						unix.Close(f)
					}
				}
			}
		}
	}
	if flags&unix.MSG_TRUNC != 0 || flags&unix.MSG_CTRUNC != 0 {
		if fd >= 0 {
			unix.Close(fd)
		}
		return -1, errors.New("message truncated")
	}
	if n == 0 {
		return fd, errors.New("empty message: peer closed")
	}
	if err := json.Unmarshal(buf[:n], v); err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return -1, fmt.Errorf("bad message: %w", err)
	}
	return fd, nil
}

// containerIDPath keeps a random id in the container's own writable layer:
// it survives a restart of the container (a restart policy) and not its
// replacement by a new one. Containers that join another's network share
// its host name and /etc/hostname, so those cannot tell them apart.
const containerIDPath = "/var/lib/rotini/container-id"

// ContainerID is this container's id for the holder, when rotini is PID 1
// (in a container); "" otherwise, or when the file cannot be kept.
func ContainerID() string {
	if os.Getpid() != 1 {
		return ""
	}
	if b, err := os.ReadFile(containerIDPath); err == nil && len(b) > 0 {
		return string(b)
	}
	var r [12]byte
	if _, err := rand.Read(r[:]); err != nil {
		return ""
	}
	id := hex.EncodeToString(r[:])
	if err := os.MkdirAll(filepath.Dir(containerIDPath), 0o755); err != nil {
		return ""
	}
	if err := os.WriteFile(containerIDPath, []byte(id), 0o644); err != nil {
		return ""
	}
	return id
}
