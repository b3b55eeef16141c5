package activation

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// TestNotifyBeforeRegister: a READY=1 that arrives before the app's goroutine
// has recorded the worker's pid is kept and replayed, not lost (a lost one
// rolls back a healthy release after its ready timeout). The control: a
// message for a pid that never registers reaches nobody.
func TestNotifyBeforeRegister(t *testing.T) {
	n := &Notifier{log: hclog.NewNullLogger(), workers: map[int]target{}}
	got := make(chan Msg, 2)
	n.Deliver("web", []int{4242, 4240}, Msg{Pid: 4242, Ready: true})
	n.Deliver("web", []int{5555}, Msg{Pid: 5555, Ready: true})
	n.Register("web", 4240, func(msg Msg) { got <- msg })
	select {
	case msg := <-got:
		if msg.Pid != 4242 || !msg.Ready {
			t.Errorf("replayed %+v, want READY=1 from 4242", msg)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("parked READY=1 was not replayed on register")
	}
	select {
	case msg := <-got:
		t.Errorf("a message for another pid reached this worker: %+v", msg)
	case <-time.After(100 * time.Millisecond):
	}
	if len(n.parked) != 1 || n.parked[0].msg.Pid != 5555 {
		t.Errorf("parked = %+v, want only 5555's message", n.parked)
	}
}

// TestNotifyOtherAppNotCredited: a message that arrived on one app's socket
// never reaches a worker of another app, parked or not.
func TestNotifyOtherAppNotCredited(t *testing.T) {
	n := &Notifier{log: hclog.NewNullLogger(), workers: map[int]target{}}
	got := make(chan Msg, 2)
	n.Deliver("a", []int{7001, 7000}, Msg{Pid: 7001, Ready: true}) // parked
	n.Register("b", 7000, func(msg Msg) { got <- msg })
	n.Deliver("a", []int{7002, 7000}, Msg{Pid: 7002, Ready: true}) // registered, but b's
	select {
	case msg := <-got:
		t.Errorf("app a's message reached a worker of app b: %+v", msg)
	case <-time.After(100 * time.Millisecond):
	}
}

// shortDir is a runtime directory whose socket paths fit in sun_path,
// which a test's TempDir may not.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "act")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func send(t *testing.T, path, msg string) {
	t.Helper()
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
}

// lines is an hclog output that hands each line to a channel.
type lines chan string

func (l lines) Write(b []byte) (int, error) {
	select {
	case l <- string(b):
	default: // never block the code under test
	}
	return len(b), nil
}

// TestNotifierAttributesBySender: a datagram on an app's socket reaches
// the worker registered under the sender's pid, as the kernel gives it,
// and only on that app's socket: the same sender on another app's socket
// is credited nothing. Each socket is 0600.
func TestNotifierAttributesBySender(t *testing.T) {
	logs := make(lines, 64)
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: logs})
	n, err := NewNotifier(log, shortDir(t), []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	n.Serve()
	for _, app := range []string{"a", "b"} {
		fi, err := os.Stat(n.Path(app))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("app %s's socket is %v, want 0600", app, fi.Mode().Perm())
		}
	}
	got := make(chan Msg, 4)
	n.Register("a", os.Getpid(), func(m Msg) { got <- m })

	send(t, n.Path("b"), "READY=1")  // this pid is a's worker, not b's
	guard := time.After(time.Minute) // against a hang, not a measure
	for dropped := false; !dropped; {
		select {
		case l := <-logs:
			dropped = strings.Contains(l, "notify message from another app's worker dropped")
		case m := <-got:
			t.Fatalf("a message on b's socket reached a's worker: %+v", m)
		case <-guard:
			t.Fatal("the message on b's socket was neither dropped nor delivered")
		}
	}

	send(t, n.Path("a"), "READY=1\nSTATUS=up")
	select {
	case m := <-got:
		if m.Pid != os.Getpid() || !m.Ready || m.Status != "up" {
			t.Errorf("got %+v, want READY=1 STATUS=up from %d", m, os.Getpid())
		}
	case <-time.After(time.Minute): // against a hang, not a measure
		t.Fatal("READY=1 on a's socket did not reach a's worker")
	}
}
