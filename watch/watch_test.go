package watch

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// Timings of the tests on a real file system: short enough to be quick,
// long enough for -race on a loaded machine.
const (
	testDebounce = 150 * time.Millisecond
	testMaxWait  = 2 * time.Second
	// settle is how long a test waits to conclude that nothing fires.
	settle = 4 * testDebounce
	// deadline bounds every wait for a change.
	deadline = 10 * time.Second
)

// logBuf collects a test watcher's log.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// harness is a started Watcher whose changes arrive on a channel.
type harness struct {
	*Watcher
	changes chan Change
	log     *logBuf
}

// start creates and starts a Watcher with test timings; o's zero fields
// get them, OnChange and Log are set.
func start(t *testing.T, o Options) *harness {
	t.Helper()
	h := &harness{changes: make(chan Change, 100), log: &logBuf{}}
	if o.Debounce == 0 {
		o.Debounce = testDebounce
	}
	if o.MaxWait == 0 {
		o.MaxWait = testMaxWait
	}
	o.Log = hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: h.log})
	o.OnChange = func(c Change) { h.changes <- c }
	w, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if t.Failed() {
			t.Logf("watcher log:\n%s", h.log)
		}
	})
	w.Start()
	h.Watcher = w
	return h
}

// next waits for the next change.
func (h *harness) next(t *testing.T) Change {
	t.Helper()
	select {
	case c := <-h.changes:
		return c
	case <-time.After(deadline):
		t.Fatalf("no change within %s", deadline)
		return Change{}
	}
}

// none asserts that no change arrives within settle.
func (h *harness) none(t *testing.T) {
	t.Helper()
	select {
	case c := <-h.changes:
		t.Fatalf("unexpected change: %d paths %q", c.Count, c.Paths)
	case <-time.After(settle):
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestBurstOf500FilesIsOneChange(t *testing.T) {
	dir := t.TempDir()
	h := start(t, Options{Paths: []string{dir}})
	for i := range 500 {
		// Half of them in directories that do not exist yet, as a deploy does.
		p := filepath.Join(dir, fmt.Sprintf("f%03d.py", i))
		if i%2 == 1 {
			p = filepath.Join(dir, fmt.Sprintf("pkg%d", i%10), fmt.Sprintf("f%03d.py", i))
		}
		write(t, p, "x")
	}
	c := h.next(t)
	h.none(t)
	if c.Count < 500 || len(c.Paths) != maxSamples {
		t.Errorf("change has %d paths, %d samples; want at least 500 and %d", c.Count, len(c.Paths), maxSamples)
	}
	st := h.State()
	if st.Changes != 1 || st.LastChange == nil || st.LastChange.Count != c.Count {
		t.Errorf("State = %+v, want 1 change of %d paths", st, c.Count)
	}
	if st.Mode != ModeInotify || st.Watches != 1+5 {
		t.Errorf("State = %s with %d watches, want inotify with 6", st.Mode, st.Watches)
	}
}

func TestTrickleLongerThanMaxWaitFiresAgain(t *testing.T) {
	dir := t.TempDir()
	const maxWait = time.Second
	h := start(t, Options{Paths: []string{dir}, Debounce: 300 * time.Millisecond, MaxWait: maxWait})
	begin := time.Now()
	var during []Change
	for i := 0; time.Since(begin) < 2500*time.Millisecond; i++ {
		write(t, filepath.Join(dir, fmt.Sprintf("log%d.txt", i)), "x")
		time.Sleep(100 * time.Millisecond)
		select {
		case c := <-h.changes:
			during = append(during, c)
		default:
		}
	}
	if len(during) < 2 {
		t.Fatalf("%d changes while writing every 100ms for 2.5s with max wait %s; want at least 2", len(during), maxWait)
	}
	for _, c := range during {
		if span := c.Last.Sub(c.First); span > maxWait {
			t.Errorf("a change spans %s, more than max wait %s", span, maxWait)
		}
	}
	h.next(t) // the rest, after the writes stop
}

func TestExcludedPathsDoNotFire(t *testing.T) {
	excluded := []string{
		".git/objects/ab/cdef", "sub/.git/HEAD", "__pycache__/m.cpython-312.pyc",
		"pkg/__pycache__/n.cpython-312.pyc", "a.pyc", "web/node_modules/x/index.js",
		"app.py.swp", "app.py~", ".#app.py",
	}
	t.Run("defaults", func(t *testing.T) {
		dir := t.TempDir()
		mkdir(t, filepath.Join(dir, ".git/objects")) // exists before New: never watched
		mkdir(t, filepath.Join(dir, "web/node_modules/x"))
		mkdir(t, filepath.Join(dir, "pkg"))
		mkdir(t, filepath.Join(dir, "sub"))
		h := start(t, Options{Paths: []string{dir}})
		if got, want := h.State().Watches, 4; got != want { // dir, web, pkg, sub
			t.Errorf("%d watches, want %d: excluded directories must not be watched", got, want)
		}
		for _, p := range excluded {
			write(t, filepath.Join(dir, p), "x")
		}
		h.none(t) // past the debounce: nothing fired
		// The marker: had any excluded write counted, it would be in
		// this burst (or an earlier one).
		write(t, filepath.Join(dir, "pkg/app.py"), "x")
		c := h.next(t)
		if diff := cmp.Diff([]string{filepath.Join(dir, "pkg/app.py")}, c.Paths); diff != "" {
			t.Errorf("change paths (-want +got):\n%s", diff)
		}
	})
	t.Run("empty exclude excludes nothing", func(t *testing.T) {
		// Negative control: the same writes do fire without the defaults.
		dir := t.TempDir()
		h := start(t, Options{Paths: []string{dir}, Exclude: []string{}})
		for _, p := range excluded {
			write(t, filepath.Join(dir, p), "x")
		}
		c := h.next(t)
		if !slices.Contains(c.Paths, filepath.Join(dir, "a.pyc")) {
			t.Errorf("change paths %q lack a.pyc", c.Paths)
		}
	})
	t.Run("custom exclude replaces defaults", func(t *testing.T) {
		dir := t.TempDir()
		h := start(t, Options{Paths: []string{dir}, Exclude: []string{"log/**", "*.tmp"}})
		write(t, filepath.Join(dir, "log/app.log"), "x")
		write(t, filepath.Join(dir, "upload.tmp"), "x")
		h.none(t)
		write(t, filepath.Join(dir, "a.pyc"), "x") // not excluded any more
		if c := h.next(t); !slices.Equal(c.Paths, []string{filepath.Join(dir, "a.pyc")}) {
			t.Errorf("change paths %q, want only a.pyc", c.Paths)
		}
	})
}

func TestIncludeLimitsChanges(t *testing.T) {
	dir := t.TempDir()
	h := start(t, Options{Paths: []string{dir}, Include: []string{"**/*.py"}})
	write(t, filepath.Join(dir, "README.md"), "x")
	write(t, filepath.Join(dir, "static/app.css"), "x")
	h.none(t)
	write(t, filepath.Join(dir, "static/deep/er/views.py"), "x")
	c := h.next(t)
	if diff := cmp.Diff([]string{filepath.Join(dir, "static/deep/er/views.py")}, c.Paths); diff != "" {
		t.Errorf("change paths (-want +got):\n%s", diff)
	}
}

func TestNewSubdirectoryIsWatched(t *testing.T) {
	dir := t.TempDir()
	h := start(t, Options{Paths: []string{dir}, Include: []string{"**/*.txt"}})
	// The file is written right after mkdir, usually before the watch of
	// a/b/c exists: only the listing after adding the watch finds it.
	mkdir(t, filepath.Join(dir, "a/b/c"))
	write(t, filepath.Join(dir, "a/b/c/f.txt"), "x")
	c := h.next(t)
	if diff := cmp.Diff([]string{filepath.Join(dir, "a/b/c/f.txt")}, c.Paths); diff != "" {
		t.Errorf("change paths (-want +got):\n%s", diff)
	}
	if got := h.State().Watches; got != 4 {
		t.Errorf("%d watches, want 4", got)
	}
	write(t, filepath.Join(dir, "a/b/c/g.txt"), "x")
	if c := h.next(t); !slices.Equal(c.Paths, []string{filepath.Join(dir, "a/b/c/g.txt")}) {
		t.Errorf("change paths %q, want a/b/c/g.txt", c.Paths)
	}

	// A renamed directory is watched under its new name, not the old one.
	if err := os.Rename(filepath.Join(dir, "a"), filepath.Join(dir, "z")); err != nil {
		t.Fatal(err)
	}
	// Moving a directory in moves the files in it: they are changes.
	if c := h.next(t); !slices.Contains(c.Paths, filepath.Join(dir, "z/b/c/f.txt")) {
		t.Errorf("change paths %q lack z/b/c/f.txt", c.Paths)
	}
	write(t, filepath.Join(dir, "z/b/c/h.txt"), "x")
	if c := h.next(t); !slices.Equal(c.Paths, []string{filepath.Join(dir, "z/b/c/h.txt")}) {
		t.Errorf("change paths %q, want z/b/c/h.txt", c.Paths)
	}
	if got := h.State().Watches; got != 4 {
		t.Errorf("%d watches after the rename, want 4", got)
	}
}

func TestTriggerFile(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "src/app.py"), "x")
	mkdir(t, filepath.Join(dir, "static/css"))
	h := start(t, Options{Paths: []string{dir}, Trigger: "tmp/restart.txt"})
	if got := h.State().Watches; got != 1 { // only the root: tmp/ does not exist yet
		t.Errorf("%d watches, want 1", got)
	}
	write(t, filepath.Join(dir, "src/app.py"), "y")
	write(t, filepath.Join(dir, "new.py"), "y")
	mkdir(t, filepath.Join(dir, "tmp"))
	write(t, filepath.Join(dir, "tmp/other.txt"), "y")
	h.none(t)

	trigger := filepath.Join(dir, "tmp/restart.txt")
	write(t, trigger, "")
	if c := h.next(t); !slices.Equal(c.Paths, []string{trigger}) {
		t.Errorf("change paths %q, want %s", c.Paths, trigger)
	}
	// touch(1) of an existing file changes only its times.
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(trigger, later, later); err != nil {
		t.Fatal(err)
	}
	if c := h.next(t); !slices.Equal(c.Paths, []string{trigger}) {
		t.Errorf("change paths %q, want %s", c.Paths, trigger)
	}
}

func TestTriggerFileAbsoluteOutsideRoots(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	trigger := filepath.Join(other, "restart.txt")
	h := start(t, Options{Paths: []string{dir}, Trigger: trigger})
	write(t, filepath.Join(dir, "app.py"), "x")
	h.none(t)
	write(t, trigger, "")
	if c := h.next(t); !slices.Equal(c.Paths, []string{trigger}) {
		t.Errorf("change paths %q, want %s", c.Paths, trigger)
	}
}

// switchLink points link at target atomically, as
// `ln -s target link.tmp && mv -T link.tmp link` does.
func switchLink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link+".tmp"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(link+".tmp", link); err != nil {
		t.Fatal(err)
	}
}

func TestAtomicSymlinkSwitchIsOneChange(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "releases/41/app.py"), "41")
	write(t, filepath.Join(dir, "releases/42/app.py"), "42")
	if err := os.Symlink("releases/41", filepath.Join(dir, "current")); err != nil {
		t.Fatal(err)
	}
	h := start(t, Options{Paths: []string{dir}})
	switchLink(t, "releases/42", filepath.Join(dir, "current"))
	c := h.next(t)
	h.none(t)
	if !slices.Contains(c.Paths, filepath.Join(dir, "current")) {
		t.Errorf("change paths %q lack current", c.Paths)
	}
}

func TestSymlinkRootFollowsItsTarget(t *testing.T) {
	for _, poll := range []string{PollAuto, PollInterval} {
		t.Run(poll, func(t *testing.T) {
			dir := t.TempDir()
			write(t, filepath.Join(dir, "releases/41/app.py"), "41")
			write(t, filepath.Join(dir, "releases/42/app.py"), "42")
			current := filepath.Join(dir, "current")
			if err := os.Symlink("releases/41", current); err != nil {
				t.Fatal(err)
			}
			h := start(t, Options{Paths: []string{current}, Poll: poll, PollEvery: 50 * time.Millisecond})

			write(t, filepath.Join(dir, "releases/41/app.py"), "41b")
			if c := h.next(t); !slices.Equal(c.Paths, []string{filepath.Join(current, "app.py")}) {
				t.Errorf("change paths %q, want current/app.py", c.Paths)
			}

			switchLink(t, "releases/42", current)
			c := h.next(t)
			h.none(t)
			if !slices.Contains(c.Paths, current) {
				t.Errorf("change paths %q lack %s", c.Paths, current)
			}

			write(t, filepath.Join(dir, "releases/41/app.py"), "41c") // the old release
			h.none(t)
			write(t, filepath.Join(dir, "releases/42/app.py"), "42b")
			if c := h.next(t); !slices.Equal(c.Paths, []string{filepath.Join(current, "app.py")}) {
				t.Errorf("change paths %q, want current/app.py", c.Paths)
			}
		})
	}
}

func TestFileRoot(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "app.conf")
	write(t, file, "a")
	h := start(t, Options{Paths: []string{file}})
	write(t, filepath.Join(dir, "other.conf"), "x")
	h.none(t)
	write(t, file+".new", "b") // an editor's atomic save
	if err := os.Rename(file+".new", file); err != nil {
		t.Fatal(err)
	}
	if c := h.next(t); !slices.Equal(c.Paths, []string{file}) {
		t.Errorf("change paths %q, want %s", c.Paths, file)
	}
}

func TestForcedPolling(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "app.py"), "x")
	write(t, filepath.Join(dir, ".git/HEAD"), "x")
	h := start(t, Options{Paths: []string{dir}, Poll: PollInterval, PollEvery: 50 * time.Millisecond})
	if st := h.State(); st.Mode != ModePolling || st.Watches != 0 || !strings.Contains(st.Reason, "interval") {
		t.Errorf("State = %+v, want polling, no watches, a reason", st)
	}
	if !strings.Contains(h.log.String(), "files=1") {
		t.Errorf("log does not count the 1 file polled:\n%s", h.log)
	}
	h.none(t) // the baseline is not a change

	write(t, filepath.Join(dir, ".git/index"), "x")
	h.none(t)
	write(t, filepath.Join(dir, "app.py"), "a longer content")
	if c := h.next(t); !slices.Equal(c.Paths, []string{filepath.Join(dir, "app.py")}) {
		t.Errorf("change paths %q, want app.py", c.Paths)
	}
	write(t, filepath.Join(dir, "new/dir/mod.py"), "x")
	if c := h.next(t); !slices.Contains(c.Paths, filepath.Join(dir, "new/dir/mod.py")) {
		t.Errorf("change paths %q lack new/dir/mod.py", c.Paths)
	}
	if err := os.Remove(filepath.Join(dir, "app.py")); err != nil {
		t.Fatal(err)
	}
	if c := h.next(t); !slices.Equal(c.Paths, []string{filepath.Join(dir, "app.py")}) {
		t.Errorf("change paths %q, want app.py", c.Paths)
	}
	// Same size, same second: only the inode or the nanoseconds differ.
	write(t, filepath.Join(dir, "b.py"), "1")
	h.next(t)
	write(t, filepath.Join(dir, "b.py.new"), "2")
	if err := os.Rename(filepath.Join(dir, "b.py.new"), filepath.Join(dir, "b.py")); err != nil {
		t.Fatal(err)
	}
	if c := h.next(t); !slices.Contains(c.Paths, filepath.Join(dir, "b.py")) {
		t.Errorf("change paths %q lack b.py", c.Paths)
	}
}

func TestPollingTriggerFile(t *testing.T) {
	dir := t.TempDir()
	h := start(t, Options{Paths: []string{dir}, Trigger: "tmp/restart.txt", Poll: PollInterval, PollEvery: 50 * time.Millisecond})
	write(t, filepath.Join(dir, "app.py"), "x")
	h.none(t)
	write(t, filepath.Join(dir, "tmp/restart.txt"), "")
	if c := h.next(t); !slices.Equal(c.Paths, []string{filepath.Join(dir, "tmp/restart.txt")}) {
		t.Errorf("change paths %q, want tmp/restart.txt", c.Paths)
	}
}

func TestAutoPollsWhenSelfTestFails(t *testing.T) {
	dir := t.TempDir()
	var asked []string
	h := start(t, Options{Paths: []string{dir}, PollEvery: 50 * time.Millisecond,
		SelfTest: func(root string) bool { asked = append(asked, root); return false }})
	if diff := cmp.Diff([]string{dir}, asked); diff != "" {
		t.Errorf("self-test roots (-want +got):\n%s", diff)
	}
	st := h.State()
	if st.Mode != ModePolling || st.Watches != 0 || !strings.Contains(st.Reason, "self-test") {
		t.Errorf("State = %+v, want polling because of the self-test", st)
	}
	if !strings.Contains(h.log.String(), "[WARN]  inotify self-test failed") {
		t.Errorf("no warning in the log:\n%s", h.log)
	}
	write(t, filepath.Join(dir, "app.py"), "x")
	if c := h.next(t); !slices.Equal(c.Paths, []string{filepath.Join(dir, "app.py")}) {
		t.Errorf("change paths %q, want app.py", c.Paths)
	}
}

func TestAutoKeepsInotifyWhenSelfTestPasses(t *testing.T) {
	// The real self-test, on the test's own file system (ext4, tmpfs,
	// overlayfs: inotify works there).
	dir := t.TempDir()
	if fs, remote := remoteFS(dir); remote {
		t.Skipf("%s is on %s", dir, fs)
	}
	h := start(t, Options{Paths: []string{dir}})
	if st := h.State(); st.Mode != ModeInotify || st.Reason != "" {
		t.Errorf("State = %+v, want inotify", st)
	}
	h.none(t) // the probe is not a change
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("the probe file was left behind: %v", ents)
	}
	write(t, filepath.Join(dir, "app.py"), "x")
	h.next(t)
}

func TestPollOffKeepsInotifyWhenSelfTestFails(t *testing.T) {
	dir := t.TempDir()
	h := start(t, Options{Paths: []string{dir}, Poll: PollOff, SelfTest: func(string) bool { return false }})
	st := h.State()
	if st.Mode != ModeInotify || !strings.Contains(st.Reason, "poll is off") {
		t.Errorf("State = %+v, want inotify with a reason", st)
	}
	if !strings.Contains(h.log.String(), "[WARN]") {
		t.Errorf("no warning in the log:\n%s", h.log)
	}
	write(t, filepath.Join(dir, "app.py"), "x")
	h.next(t) // inotify does work here
}

// failAfter returns an addWatch hook that lets n watches through, then
// fails like inotify_add_watch at fs.inotify.max_user_watches.
func failAfter(n int64) func(string) error {
	var added atomic.Int64
	return func(string) error {
		if added.Add(1) > n {
			return unix.ENOSPC
		}
		return nil
	}
}

func TestWatchLimitFallsBackToPolling(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"a/b", "c/d", "e"} {
		mkdir(t, filepath.Join(dir, d))
	}
	h := start(t, Options{Paths: []string{dir}, PollEvery: 50 * time.Millisecond, addWatch: failAfter(3)})
	st := h.State()
	if st.Mode != ModePolling || st.Watches != 0 || !strings.Contains(st.Reason, "max_user_watches") {
		t.Errorf("State = %+v, want polling because of max_user_watches", st)
	}
	log := h.log.String()
	if !strings.Contains(log, "[WARN]  inotify limit reached; falling back to polling") ||
		!strings.Contains(log, "sysctl=fs.inotify.max_user_watches") {
		t.Errorf("no clear warning in the log:\n%s", log)
	}
	write(t, filepath.Join(dir, "a/b/app.py"), "x")
	if c := h.next(t); !slices.Equal(c.Paths, []string{filepath.Join(dir, "a/b/app.py")}) {
		t.Errorf("change paths %q, want a/b/app.py", c.Paths)
	}
}

func TestWatchLimitLaterFallsBackToPolling(t *testing.T) {
	dir := t.TempDir()
	h := start(t, Options{Paths: []string{dir}, PollEvery: 50 * time.Millisecond, addWatch: failAfter(1)})
	if st := h.State(); st.Mode != ModeInotify {
		t.Fatalf("State = %+v, want inotify before the limit", st)
	}
	mkdir(t, filepath.Join(dir, "new")) // its watch fails
	write(t, filepath.Join(dir, "new/a.py"), "x")
	h.next(t)
	if st := h.State(); st.Mode != ModePolling || !strings.Contains(st.Reason, "max_user_watches") {
		t.Errorf("State = %+v, want polling because of max_user_watches", st)
	}
	write(t, filepath.Join(dir, "new/b.py"), "x")
	if c := h.next(t); !slices.Equal(c.Paths, []string{filepath.Join(dir, "new/b.py")}) {
		t.Errorf("change paths %q, want new/b.py", c.Paths)
	}
}

func TestRemovedRootIsPolledUntilItReturns(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "app")
	write(t, filepath.Join(dir, "app.py"), "x")
	h := start(t, Options{Paths: []string{dir}, PollEvery: 50 * time.Millisecond})
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	h.next(t)
	if st := h.State(); st.Mode != ModePolling {
		t.Errorf("State = %+v, want polling after the root went away", st)
	}
	write(t, filepath.Join(dir, "app.py"), "y")
	if c := h.next(t); !slices.Contains(c.Paths, filepath.Join(dir, "app.py")) {
		t.Errorf("change paths %q lack app.py", c.Paths)
	}
}

func TestNoChangeBeforeStartOrAfterClose(t *testing.T) {
	dir := t.TempDir()
	var calls atomic.Int32
	w, err := New(Options{Paths: []string{dir}, Debounce: testDebounce, OnChange: func(Change) { calls.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "a.py"), "x")
	time.Sleep(settle)
	if n := calls.Load(); n != 0 {
		t.Errorf("%d calls before Start", n)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w.Start() // after Close: nothing
	write(t, filepath.Join(dir, "b.py"), "x")
	time.Sleep(settle)
	if n := calls.Load(); n != 0 {
		t.Errorf("%d calls after Close", n)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestNewRejectsUnusableOptions(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	write(t, file, "")
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{name: "no paths", o: Options{}, want: "no paths"},
		{name: "missing path", o: Options{Paths: []string{filepath.Join(dir, "nope")}}, want: "no such file"},
		{name: "bad exclude", o: Options{Paths: []string{dir}, Exclude: []string{"[a"}}, want: "exclude"},
		{name: "bad include", o: Options{Paths: []string{dir}, Include: []string{"a/[b"}}, want: "include"},
		{name: "negative debounce", o: Options{Paths: []string{dir}, Debounce: -1}, want: "negative"},
		{name: "max wait below debounce", o: Options{Paths: []string{dir}, Debounce: time.Second, MaxWait: time.Millisecond}, want: "shorter than debounce"},
		{name: "unknown poll", o: Options{Paths: []string{dir}, Poll: "2s"}, want: "poll"},
		{name: "trigger escapes the root", o: Options{Paths: []string{dir}, Trigger: "../x"}, want: "not below"},
		{name: "trigger under a file root", o: Options{Paths: []string{file}, Trigger: "x"}, want: "is a file"},
		{name: "trigger in a missing directory", o: Options{Paths: []string{dir}, Trigger: "/nonexistent/dir/x"}, want: "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, err := New(tc.o)
			if err == nil {
				w.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v; want an error about %q", err, tc.want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	o, err := Options{Paths: []string{"."}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := Options{Paths: []string{"."}, MaxWait: DefaultMaxWait, Poll: PollAuto, PollEvery: DefaultPollEvery, Exclude: DefaultExclude()}
	o.Log = nil
	if diff := cmp.Diff(want, o, cmp.AllowUnexported(Options{})); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if o, _ := (Options{Paths: []string{"."}, Exclude: []string{}}).withDefaults(); o.Exclude == nil || len(o.Exclude) != 0 {
		t.Errorf("an empty Exclude became %q, want it kept empty", o.Exclude)
	}
	if o, _ := (Options{Paths: []string{"."}, Debounce: 10 * time.Second}).withDefaults(); o.MaxWait != 10*time.Second {
		t.Errorf("MaxWait = %s with a 10s debounce, want 10s", o.MaxWait)
	}
}

func TestRemoteFileSystemTypes(t *testing.T) {
	for magic, name := range map[uint32]string{
		0x01021997: "9p", 0x65735546: "fuse", 0x6969: "nfs", 0xff534d42: "cifs",
		0xfe534d42: "smb2", 0x00c36400: "ceph",
	} {
		if got := remoteTypes[magic]; got != name {
			t.Errorf("remoteTypes[%#x] = %q, want %q", magic, got, name)
		}
	}
	for _, local := range []uint32{unix.EXT4_SUPER_MAGIC, unix.TMPFS_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC, unix.OVERLAYFS_SUPER_MAGIC} {
		if name, ok := remoteTypes[local]; ok {
			t.Errorf("local file system %#x listed as remote %q", local, name)
		}
	}
	if got := mountType("/proc/self"); got != "proc" {
		t.Errorf("mountType(/proc/self) = %q, want proc", got)
	}
	if got := unescapeMount(`/mnt/my\040code`); got != "/mnt/my code" {
		t.Errorf("unescapeMount = %q", got)
	}
}

func TestLimitErrorNamesSysctl(t *testing.T) {
	for err, want := range map[error]string{
		errLimit{unix.ENOSPC}: "fs.inotify.max_user_watches",
		errLimit{unix.EMFILE}: "fs.inotify.max_user_instances",
	} {
		var lim errLimit
		if !errors.As(err, &lim) || lim.sysctl() != want {
			t.Errorf("%v names %q, want %q", err, lim.sysctl(), want)
		}
	}
}
