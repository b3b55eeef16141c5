package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"
)

// End-to-end tests of the app's watch block: the real rotini watches a
// temporary directory while a load client keeps requests in flight, the test
// writes files as a deploy would, and waits on rotini's log lines
// ("change detected", "reload requested", "reload done"). Not one request
// may fail. The only fixed wait is watchQuiet, where a test must show that
// nothing happened; each such check is followed by a marker write whose
// reload must be the next one and name the marker alone.

// Log lines of the watch path.
const (
	changeRE    = `rotini\.web\.watch: change detected: `
	requestedRE = `rotini\.web: reload requested: by="?watch: `
	doneRE      = `rotini\.web: reload done: generation=`
)

// watchQuiet bounds the quiet-period checks: longer than the debounce
// (300ms) with a wide margin, shorter than max_wait would matter.
const watchQuiet = 1500 * time.Millisecond

// watchLoadClients is the load client's concurrency in these tests.
const watchLoadClients = 4

// watchBlock renders a watch block as lines for appSpec.Extra.
func watchBlock(lines ...string) []string {
	out := []string{"watch {"}
	for _, l := range lines {
		out = append(out, "  "+l)
	}
	return append(out, "}")
}

// watchRig is a rig whose app is watched, with a load on it.
type watchRig struct {
	*rig
	load *load
}

// startWatchRig starts rotini with the app "web" (the testapp's serve role
// with extra flags), extra app lines, waits for generation 1 and starts a
// newConn load.
func startWatchRig(t *testing.T, serveFlags []string, extra []string) *watchRig {
	t.Helper()
	port := freeLoopbackPort(t)
	r := startRig(t, port, rigConfig(port, appSpec{
		Command: testappServe(append([]string{"--notify"}, serveFlags...)...),
		Extra:   extra,
	}))
	r.waitLog(`generation ready: generation=1\b`, 1, startTimeout)
	r.waitLog(`rotini\.web\.watch: watching: `, 1, startTimeout)
	l := startLoad(t, r.url, newConn, watchLoadClients, 2*time.Minute)
	if !l.waitGeneration(1, startTimeout) {
		t.Fatalf("generation 1 never answered the load")
	}
	return &watchRig{rig: r, load: l}
}

// finish stops the load, requires it saw no failure, and stops rotini.
func (w *watchRig) finish() {
	w.t.Helper()
	requireNoFailures(w.t, w.load.stop())
	w.stop()
}

// change waits for the n-th "change detected" line and returns its paths
// count and first path.
func (w *watchRig) change(n int) (count int, first string) {
	w.t.Helper()
	line, _ := w.waitLog(changeRE, n, reloadTimeout)
	c, err := strconv.Atoi(logField(line, "paths"))
	if err != nil {
		w.t.Fatalf("no paths= count in %q", line)
	}
	return c, logField(line, "first")
}

// reloadDone waits for the n-th reload outcome and requires a success.
func (w *watchRig) reloadDone(n int) {
	w.t.Helper()
	if line, ok := w.waitReload(n); !ok {
		w.t.Fatalf("reload #%d failed: %s", n, line)
	}
}

// requireRequested requires exactly n "reload requested" lines from the
// watcher so far.
func (w *watchRig) requireRequested(n int) {
	w.t.Helper()
	if got := w.countLog(requestedRE); got != n {
		w.t.Errorf("%d reloads requested by the watcher, want %d", got, n)
	}
}

// requireQuiet is the bounded quiet period: no "change detected" line
// beyond the `seen` so far may appear within watchQuiet.
func (w *watchRig) requireQuiet(seen int, why string) {
	w.t.Helper()
	line, _, err := nthMatch(w.p.stderr, regexp.MustCompile(changeRE), seen+1, watchQuiet)
	if err == nil {
		w.t.Fatalf("%s: a change was detected within %v: %s", why, watchQuiet, line)
	}
	if got := w.countLog(requestedRE); got != seen {
		w.t.Fatalf("%s: %d reloads requested by the watcher, want %d", why, got, seen)
	}
}

// markerReload writes path (absolute) and requires that the next change
// detected (the n-th) names it alone, and that its reload is the n-th.
func (w *watchRig) markerReload(path string, n int) {
	w.t.Helper()
	writeFile(w.t, path, "marker "+strconv.Itoa(n))
	count, first := w.change(n)
	if count != 1 || first != path {
		w.t.Errorf("change #%d after the marker: paths=%d first=%q, want paths=1 first=%q", n, count, first, path)
	}
	w.waitLog(requestedRE, n, reloadTimeout)
	w.reloadDone(n)
	w.requireRequested(n)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// watchStatus runs `rotini status --json` against the rig's control socket.
func (w *watchRig) watchStatus() map[string]any {
	w.t.Helper()
	sock := filepath.Join(filepath.Dir(w.cfgPath), "ctl.sock")
	ctx, cancel := context.WithTimeout(context.Background(), waitDeadline)
	defer cancel()
	out, err := exec.CommandContext(ctx, rotiniBin, "status", "--json", "--control", sock).Output()
	if err != nil {
		w.t.Fatalf("rotini status --json: %v\n%s", err, out)
	}
	var st map[string]any
	if err := json.Unmarshal(out, &st); err != nil {
		w.t.Fatalf("rotini status --json: %v\n%s", err, out)
	}
	return st
}

// statusApp0 returns apps[0] of a status answer.
func statusApp0(t *testing.T, st map[string]any) map[string]any {
	t.Helper()
	apps, _ := st["apps"].([]any)
	if len(apps) == 0 {
		t.Fatalf("status has no apps: %v", st)
	}
	app, _ := apps[0].(map[string]any)
	return app
}

// TestWatchBurstIsOneReload: a deploy writing 500 files (in new
// subdirectories too) at once is one reload.
func TestWatchBurstIsOneReload(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	w := startWatchRig(t, nil, watchBlock(
		`paths = `+hclList([]string{root}),
		`debounce = "300ms"`,
		`max_wait = "5s"`,
	))

	began := time.Now()
	for i := range 500 {
		writeFile(t, filepath.Join(root, "src", fmt.Sprintf("pkg%02d", i%20), fmt.Sprintf("mod%03d.py", i)), "x = 1\n")
	}
	t.Logf("burst of 500 files written in %v", time.Since(began).Round(time.Millisecond))

	count, _ := w.change(1)
	if count < 500 {
		t.Errorf("the burst's change counts %d paths, want at least 500", count)
	}
	w.waitLog(requestedRE, 1, reloadTimeout)
	w.reloadDone(1)
	w.requireRequested(1)
	// The marker's reload must be the second: nothing of the burst came
	// late as a reload of its own.
	w.markerReload(filepath.Join(root, "marker.txt"), 2)
	if !w.load.waitGeneration(3, reloadTimeout) {
		t.Errorf("generation 3 never answered the load")
	}
	w.finish()
}

// TestWatchTrickleReloads: a change every 150ms never leaves the 300ms
// debounce quiet, yet max_wait (2s) reloads at least twice in 5s.
func TestWatchTrickleReloads(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	w := startWatchRig(t, nil, watchBlock(
		`paths = `+hclList([]string{root}),
		`debounce = "300ms"`,
		`max_wait = "2s"`,
	))

	tick := time.NewTicker(150 * time.Millisecond)
	defer tick.Stop()
	began := time.Now()
	for i := 0; time.Since(began) < 5*time.Second; i++ {
		writeFile(t, filepath.Join(root, fmt.Sprintf("f%03d.txt", i)), "x")
		<-tick.C
	}
	during := w.countLog(requestedRE)
	t.Logf("%d reloads requested during the 5s trickle", during)
	if during < 2 {
		t.Errorf("%d reloads requested during a 5s trickle with max_wait 2s, want at least 2", during)
	}
	// The trickle's tail is reloaded after the debounce.
	w.waitLog(changeRE, during+1, reloadTimeout)
	w.reloadDone(during + 1)
	for _, l := range w.logLines() {
		if !regexp.MustCompile(changeRE).MatchString(l) {
			continue
		}
		b, err := time.ParseDuration(logField(l, "burst"))
		if err != nil {
			t.Errorf("no burst= duration in %q", l)
		} else if b > 2500*time.Millisecond {
			t.Errorf("a burst lasted %v, beyond max_wait 2s: %s", b, l)
		}
	}
	w.finish()
}

// TestWatchExcluded: writes under .git/ and __pycache__/ (the default
// excludes), in directories that existed at start and in a __pycache__
// created later, reload nothing; a marker written after them is the one reload.
func TestWatchExcluded(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFile(t, filepath.Join(root, ".git", "HEAD"), "ref: refs/heads/main\n")
	writeFile(t, filepath.Join(root, "app", "__pycache__", "old.cpython-311.pyc"), "pyc")
	writeFile(t, filepath.Join(root, "lib", "util.py"), "x = 1\n")
	w := startWatchRig(t, nil, watchBlock(
		`paths = `+hclList([]string{root}),
		`debounce = "300ms"`,
		`max_wait = "2s"`,
	))

	writeFile(t, filepath.Join(root, ".git", "HEAD"), "ref: refs/heads/deploy\n")
	writeFile(t, filepath.Join(root, ".git", "objects", "ab", "cdef0123"), "blob")
	writeFile(t, filepath.Join(root, ".git", "refs", "heads", "deploy"), "0123abcd\n")
	writeFile(t, filepath.Join(root, "app", "__pycache__", "views.cpython-311.pyc"), "pyc")
	writeFile(t, filepath.Join(root, "lib", "__pycache__", "util.cpython-311.pyc"), "pyc") // a new __pycache__, as Python makes them
	w.requireQuiet(0, "after writes under .git/ and __pycache__/")

	w.markerReload(filepath.Join(root, "marker.txt"), 1)
	w.finish()
}

// TestWatchTrigger: with a trigger, other writes reload nothing; writing
// the trigger reloads once, and touching it again (mtime only) reloads
// again.
func TestWatchTrigger(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	w := startWatchRig(t, nil, watchBlock(
		`paths = `+hclList([]string{root}),
		`debounce = "300ms"`,
		`max_wait = "2s"`,
		`trigger = "tmp/restart.txt"`,
	))

	writeFile(t, filepath.Join(root, "app.py"), "print(1)\n")
	writeFile(t, filepath.Join(root, "lib", "util.py"), "x = 1\n")
	writeFile(t, filepath.Join(root, "tmp", "other.txt"), "x")
	w.requireQuiet(0, "after writes other than the trigger")

	trigger := filepath.Join(root, "tmp", "restart.txt")
	w.markerReload(trigger, 1)

	// touch(1) on the existing trigger: only its times change.
	now := time.Now().Add(time.Second)
	if err := os.Chtimes(trigger, now, now); err != nil {
		t.Fatal(err)
	}
	count, first := w.change(2)
	if count != 1 || first != trigger {
		t.Errorf("change #2 after touching the trigger: paths=%d first=%q, want paths=1 first=%q", count, first, trigger)
	}
	w.reloadDone(2)
	w.requireRequested(2)
	w.finish()
}

// releaseRE matches an answer of the testapp's /slow or /release with
// --release-file.
var releaseRE = regexp.MustCompile(`^gen=(\S*) worker=\S* pid=\d+ release=(\S*)\s*$`)

// getRelease fetches path on a fresh connection and returns the answer's
// generation and release.
func getRelease(ctx context.Context, url string) (gen, release string, err error) {
	c := newLoadClient(newConn)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("status %d: %.200q", resp.StatusCode, body)
	}
	m := releaseRE.FindSubmatch(body)
	if m == nil {
		return "", "", fmt.Errorf("unexpected body %.200q", body)
	}
	return string(m[1]), string(m[2]), nil
}

// TestWatchSymlinkSwitch: an atomic switch of `current` from releases/1 to
// releases/2 is one reload; the new generation runs release 2 while a slow
// request in flight in generation 1 completes from release 1.
func TestWatchSymlinkSwitch(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for _, rel := range []string{"1", "2"} {
		writeFile(t, filepath.Join(root, "releases", rel, "RELEASE"), rel+"\n")
	}
	if err := os.Symlink("releases/1", filepath.Join(root, "current")); err != nil {
		t.Fatal(err)
	}
	w := startWatchRig(t, []string{"--release-file", "RELEASE"}, append(
		[]string{`dir = ` + hclString(filepath.Join(root, "current"))},
		watchBlock(
			`paths = `+hclList([]string{root}),
			`debounce = "300ms"`,
			`max_wait = "2s"`,
		)...))
	if gen, rel, err := getRelease(context.Background(), w.url+"release"); err != nil || gen != "1" || rel != "1" {
		t.Fatalf("before the switch: gen=%q release=%q err=%v, want gen 1 release 1", gen, rel, err)
	}

	type result struct {
		gen, release string
		err          error
	}
	slow := make(chan result, 1)
	var written sync.WaitGroup
	written.Add(1)
	go func() {
		var once sync.Once
		trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { once.Do(written.Done) }}
		gen, rel, err := getRelease(httptrace.WithClientTrace(context.Background(), trace), w.url+"slow?ms=2000")
		once.Do(written.Done)
		slow <- result{gen, rel, err}
	}()
	written.Wait()

	tmp := filepath.Join(root, "current.tmp")
	if err := os.Symlink("releases/2", tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(root, "current")); err != nil {
		t.Fatal(err)
	}
	count, first := w.change(1)
	t.Logf("the switch: paths=%d first=%s", count, first)
	w.waitLog(requestedRE, 1, reloadTimeout)
	w.reloadDone(1)
	w.requireRequested(1)

	if gen, rel, err := getRelease(context.Background(), w.url+"release"); err != nil || gen != "2" || rel != "2" {
		t.Errorf("after the switch: gen=%q release=%q err=%v, want gen 2 release 2", gen, rel, err)
	}
	select {
	case res := <-slow:
		if res.err != nil {
			t.Errorf("slow request in flight during the switch failed: %v", describeErr(res.err))
		} else if res.gen != "1" || res.release != "1" {
			t.Errorf("slow request in flight during the switch: gen=%q release=%q, want gen 1 release 1", res.gen, res.release)
		}
	case <-time.After(reloadTimeout):
		t.Errorf("slow request in flight during the switch never completed")
	}

	// status: generation 2 runs in the resolved releases/2.
	app := statusApp0(t, w.watchStatus())
	want, _ := filepath.EvalSymlinks(filepath.Join(root, "releases", "2"))
	gens, _ := app["generations"].([]any)
	found := false
	for _, g := range gens {
		g, _ := g.(map[string]any)
		if n, _ := g["generation"].(float64); n == 2 {
			found = true
			if d, _ := g["dir"].(string); d != want {
				t.Errorf("status: generation 2 dir %q, want %q", d, want)
			}
		}
	}
	if !found {
		t.Errorf("status: no generation 2 in %v", gens)
	}

	// The switch was one reload: the marker's is the second.
	w.markerReload(filepath.Join(root, "marker.txt"), 2)
	w.finish()
}

// TestWatchPolling: poll = "1s" forces polling; a write is noticed and
// reloads, and `rotini status --json` reports the mode.
func TestWatchPolling(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "app.py"), "print(1)\n")
	w := startWatchRig(t, nil, watchBlock(
		`paths = `+hclList([]string{root}),
		`debounce = "300ms"`,
		`max_wait = "2s"`,
		`poll = "1s"`,
	))

	app := statusApp0(t, w.watchStatus())
	watch, _ := app["watch"].(map[string]any)
	if mode, _ := watch["mode"].(string); mode != "polling" {
		t.Errorf("status: apps[0].watch.mode = %q, want polling (watch: %v)", mode, watch)
	}

	path := filepath.Join(root, "views.py")
	writeFile(t, path, "x = 1\n")
	count, first := w.change(1)
	if count != 1 || first != path {
		t.Errorf("polled change: paths=%d first=%q, want paths=1 first=%q", count, first, path)
	}
	w.waitLog(requestedRE, 1, reloadTimeout)
	w.reloadDone(1)
	w.requireRequested(1)

	app = statusApp0(t, w.watchStatus())
	watch, _ = app["watch"].(map[string]any)
	if mode, _ := watch["mode"].(string); mode != "polling" {
		t.Errorf("status after the reload: apps[0].watch.mode = %q, want polling", mode)
	}
	if n, _ := watch["changes"].(float64); n != 1 {
		t.Errorf("status: apps[0].watch.changes = %v, want 1", watch["changes"])
	}
	w.finish()
}
