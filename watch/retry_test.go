package watch

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// waitMode waits until the watcher's mode is want.
func (h *harness) waitMode(t *testing.T, want string) State {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		st := h.State()
		if st.Mode == want {
			return st
		}
		if time.Now().After(end) {
			t.Fatalf("mode %q after %s, want %q (state %+v)", st.Mode, deadline, want, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A watcher that fell back to polling because inotify ran out of watches
// goes back to inotify once watches can be added again, and sees changes
// through it.
func TestWatchLimitReturnsToInotify(t *testing.T) {
	dir := t.TempDir()
	mkdir(t, filepath.Join(dir, "a/b"))
	var full atomic.Bool
	full.Store(true)
	h := start(t, Options{
		Paths: []string{dir}, PollEvery: 50 * time.Millisecond, retryEvery: 50 * time.Millisecond,
		addWatch: func(string) error {
			if full.Load() {
				return unix.ENOSPC
			}
			return nil
		},
	})
	if st := h.State(); st.Mode != ModePolling {
		t.Fatalf("State = %+v, want polling while inotify is out of watches", st)
	}
	full.Store(false) // the limit was raised
	st := h.waitMode(t, ModeInotify)
	if st.Watches < 2 || st.Reason != "" {
		t.Errorf("State = %+v, want inotify watches on the tree and no reason to poll", st)
	}
	if !strings.Contains(h.log.String(), "inotify works again; no longer polling") {
		t.Errorf("the return to inotify is not logged:\n%s", h.log)
	}
	write(t, filepath.Join(dir, "a/b/app.py"), "x")
	if c := h.next(t); !slices.Equal(c.Paths, []string{filepath.Join(dir, "a/b/app.py")}) {
		t.Errorf("change paths %q, want a/b/app.py", c.Paths)
	}
}

// While inotify still cannot be had, the watcher keeps polling and keeps
// seeing changes.
func TestWatchLimitKeepsPollingWhileFull(t *testing.T) {
	dir := t.TempDir()
	h := start(t, Options{
		Paths: []string{dir}, PollEvery: 50 * time.Millisecond, retryEvery: 20 * time.Millisecond,
		addWatch: func(string) error { return unix.ENOSPC },
	})
	time.Sleep(settle) // several retries fail meanwhile
	if st := h.State(); st.Mode != ModePolling {
		t.Fatalf("State = %+v, want polling", st)
	}
	write(t, filepath.Join(dir, "app.py"), "x")
	if c := h.next(t); !slices.Equal(c.Paths, []string{filepath.Join(dir, "app.py")}) {
		t.Errorf("change paths %q, want app.py", c.Paths)
	}
}

// A root that was removed is polled until it returns, then watched with
// inotify again.
func TestRemovedRootReturnsToInotify(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "app")
	write(t, filepath.Join(dir, "app.py"), "x")
	h := start(t, Options{Paths: []string{dir}, PollEvery: 50 * time.Millisecond, retryEvery: 50 * time.Millisecond})
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	h.next(t)
	write(t, filepath.Join(dir, "app.py"), "y")
	h.next(t)
	h.waitMode(t, ModeInotify)
	write(t, filepath.Join(dir, "later.py"), "z")
	if c := h.next(t); !slices.Contains(c.Paths, filepath.Join(dir, "later.py")) {
		t.Errorf("change paths %q lack later.py", c.Paths)
	}
}
