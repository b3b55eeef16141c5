package reload

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rotini-dev/rotini/control"
)

// collect reads a reload's events until its one result arrives.
func collect(t *testing.T, reply <-chan control.Result, progress <-chan control.Event) ([]control.Event, control.Result) {
	t.Helper()
	var evs []control.Event
	for {
		select {
		case e := <-progress:
			evs = append(evs, e)
		case r := <-reply:
			for {
				select {
				case e := <-progress:
					evs = append(evs, e)
				default:
					return evs, r
				}
			}
		case <-time.After(20 * time.Second):
			t.Fatal("reload did not finish")
		}
	}
}

func kindsOf(evs []control.Event) []control.EventKind {
	var out []control.EventKind
	for _, e := range evs {
		out = append(out, e.Kind)
	}
	return out
}

// A reload reports its steps as control's events, and its outcome in one
// line that its last event, its Result and status's last reload share: a
// client that lost the event shows the same words.
func TestReloadReportsStepsAndOutcome(t *testing.T) {
	h := newHarness(t, sleeper(1))
	h.settled(t)
	reply, progress := make(chan control.Result, 1), make(chan control.Event, 64)
	h.m.ReloadApps(nil, reply, progress)
	evs, res := collect(t, reply, progress)
	want := []control.EventKind{control.KindStarting, control.KindGeneration, control.KindWorkerReady, control.KindReady, control.KindDraining, control.KindDone}
	if diff := cmp.Diff(want, kindsOf(evs)); diff != "" {
		t.Fatalf("event kinds (-want +got):\n%s", diff)
	}
	for _, e := range evs {
		if e.App != "app" || e.Time.IsZero() || e.Message == "" {
			t.Errorf("event %+v: want the app, a time and a message", e)
		}
	}
	if !res.OK || res.Generation != 2 || !strings.HasPrefix(res.Message, "done: generation 2 serving, in ") || res.Message != evs[len(evs)-1].Message {
		t.Errorf("result %+v, last event %q", res, evs[len(evs)-1].Message)
	}
	if last := h.settled(t).LastReload; last == nil || *last != res {
		t.Errorf("status's last reload %+v, want the result %+v", last, res)
	}
}

// A reload that cannot happen, or fails, says so in the same words in its
// failed event and its Result; a config that cannot be read fails it
// before anything starts.
func TestReloadFailureMessage(t *testing.T) {
	h := newHarnessWith(t, sleeper(1), func() ([]AppOptions, []string, error) {
		return nil, nil, errors.New("config invalid: rotini.hcl:3,1: nope")
	})
	h.settled(t)
	reply, progress := make(chan control.Result, 1), make(chan control.Event, 64)
	h.m.ReloadApps(nil, reply, progress)
	evs, res := collect(t, reply, progress)
	wantMsg := "failed: config invalid: rotini.hcl:3,1: nope; generation 1 still serving"
	if diff := cmp.Diff([]control.EventKind{control.KindFailed}, kindsOf(evs)); diff != "" || evs[0].Message != wantMsg {
		t.Fatalf("events %+v, want one failed event saying %q", evs, wantMsg)
	}
	if res.OK || res.Generation != 1 || res.Message != wantMsg || res.Reason != "config invalid: rotini.hcl:3,1: nope" {
		t.Errorf("result %+v", res)
	}

	// An app the manager does not run: no event, and the result says it.
	reply = make(chan control.Result, 1)
	h.m.ReloadApps([]string{"api"}, reply, nil)
	if res := <-reply; res.OK || res.App != "api" || res.Message != `failed: no app named "api"` {
		t.Errorf("result for an unknown app %+v", res)
	}
}
