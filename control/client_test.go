package control

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestControlClientUnreachable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nothing.sock")
	c := &Client{Path: path}
	_, err := c.Status(context.Background())
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v, want an UnreachableError", err)
	}
	want := "cannot reach rotini at " + path + ": no such file or directory (is rotini running with a config? set --control PATH or ROTINI_CONTROL)"
	if err.Error() != want {
		t.Errorf("err:\n got %s\nwant %s", err, want)
	}
}

func TestControlClient(t *testing.T) {
	f := newFake()
	f.fail = map[string]string{"jobs": "before_reload failed"}
	s := startServer(t, f, testLimits())
	c := &Client{Path: s.path}
	ctx := context.Background()

	st, err := c.Status(ctx)
	if err != nil || st.Apps[0].Serving != 6 || st.Apps[0].LastReload.Duration != 1300*time.Millisecond {
		t.Fatalf("status: %+v, %v", st, err)
	}
	var msgs []string
	res, err := c.ReloadWait(ctx, []string{"web"}, time.Minute, func(e Event) { msgs = append(msgs, e.App+": "+e.Message) })
	if err != nil {
		t.Fatalf("reload --wait: %v", err)
	}
	if diff := cmp.Diff([]Result{{App: "web", OK: true, Generation: 7, Duration: 1300 * time.Millisecond}}, res); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	if len(msgs) != 7 || msgs[1] != "web: starting generation 7 (2 workers)" {
		t.Errorf("progress: %q", msgs)
	}
	res, err = c.ReloadWait(ctx, []string{"jobs"}, time.Minute, nil)
	if err != nil || len(res) != 1 || res[0].OK || res[0].Reason != "before_reload failed" {
		t.Errorf("failed reload: %+v, %v", res, err)
	}
	if _, err := c.ReloadWait(ctx, []string{"api"}, time.Minute, nil); err == nil || !strings.Contains(err.Error(), `no app named "api"`) {
		t.Errorf("reload of an unknown app: %v", err)
	}
	if err := c.Reload(ctx, nil); err != nil {
		t.Errorf("reload: %v", err)
	}
	if h, err := c.Health(ctx); err != nil || !h.OK {
		t.Errorf("health: %+v %v", h, err)
	}
	f.mu.Lock()
	f.healthy, f.reason = false, "app web: generation 1 is not ready"
	f.mu.Unlock()
	if h, err := c.Health(ctx); err != nil || h.OK || h.Reason != f.reason {
		t.Errorf("unhealthy: %+v %v", h, err)
	}
	var ae *APIError
	if err := c.Scale(ctx, "web", 0); !errors.As(err, &ae) || ae.Status != 400 {
		t.Errorf("scale 0: %v", err)
	}
	if err := c.Scale(ctx, "web", 3); err != nil {
		t.Errorf("scale: %v", err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Errorf("stop: %v", err)
	}
}
