package activation

import (
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
