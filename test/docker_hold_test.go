package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Image updates behind `rotini hold`, with the Docker engine: a holder
// container (rotini's own FROM scratch image, `hold`) owns the network
// namespace and the published port; app containers join it
// (--network container:HOLDER) and a shared directory for the hold socket,
// and take their sockets from the holder. Releases alternate v1 and v2;
// each answers /release with its name.

// holdRelease writes an app container's config directory: the hold block,
// the testapp serving with --release-file, and the release's name.
func holdRelease(t *testing.T, release string) string {
	t.Helper()
	dir := dockerConfigDir(t, "hold {}\n\n"+dockerHCL(
		`command = ["/testapp", "serve", "--notify", "--release-file", "release.txt"]`,
		`dir     = "/etc/rotini"`,
		`workers = 2`,
		`ready {`, `  notify     = true`, `  min_uptime = "200ms"`, `}`,
	))
	dockerWriteFile(t, filepath.Join(dir, "release.txt"), release+"\n")
	return dir
}

// releaseAnswer is what /release answers now ("" on error).
func releaseAnswer(url string) string {
	l := &load{url: url + "release"}
	c := newLoadClient(newConn)
	resp, err := c.Get(l.url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b := make([]byte, 256)
	n, _ := resp.Body.Read(b)
	s := strings.TrimSpace(string(b[:n]))
	if i := strings.Index(s, "release="); i >= 0 {
		return s[i+len("release="):]
	}
	return ""
}

func (e *dockerEnv) testHoldDeploys(t *testing.T) {
	const deploys = 10 // of each kind
	run := t.TempDir() // the shared /run/rotini: the hold socket
	if err := os.Chmod(run, 0o755); err != nil {
		t.Fatal(err)
	}
	holder := e.run(t, dockerRunOpts{
		Image: e.rotiniImage, Publish: 8000,
		Flags: []string{"-v", run + ":/run/rotini"},
		Args:  []string{"hold"},
	})
	holder.waitLog(`holding sockets`, 1, time.Minute)
	startApp := func(release string) *dockerContainer {
		return e.run(t, dockerRunOpts{
			Image: e.testImage,
			Flags: []string{"--network", "container:" + holder.name, "-v", run + ":/run/rotini", "-v", holdRelease(t, release) + ":/etc/rotini:ro"},
			Args:  rotiniArgs,
		})
	}
	waitRelease := func(want string) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for releaseAnswer(holder.url) != want {
			if time.Now().After(deadline) {
				t.Fatalf("release %s never answered (last: %q)", want, releaseAnswer(holder.url))
			}
			time.Sleep(dockerPoll)
		}
	}
	cur := startApp("v1")
	cur.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
	waitRelease("v1")
	ls := startLoads(t, holder.url)
	release := func(i int) string { return fmt.Sprintf("v%d", 1+i%2) }
	for i := 1; i <= deploys; i++ {
		// Start-first: the new container boots beside the serving one,
		// takes over once ready; the old one drains and exits 0.
		next := startApp(release(i))
		next.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
		deadline := time.Now().Add(time.Minute)
		for cur.running() {
			if time.Now().After(deadline) {
				t.Fatalf("start-first deploy %d: the superseded container still runs", i)
			}
			time.Sleep(dockerPoll)
		}
		if code := cur.inspect("{{.State.ExitCode}}"); code != "0" {
			t.Errorf("start-first deploy %d: the superseded container exited %s, want 0", i, code)
		}
		cur.remove()
		waitRelease(release(i))
		cur = next
	}
	for i := 1; i <= deploys; i++ {
		// Stop-first, as `docker compose up -d` does: stop, then start.
		if took, code := cur.stop(30); code != 0 {
			t.Errorf("stop-first deploy %d: docker stop: exit %d after %s", i, code, took)
		}
		cur.remove()
		cur = startApp(release(i + 1))
		cur.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
		waitRelease(release(i + 1))
	}
	stopLoads(t, ls)
	if took, code := cur.stop(30); code != 0 {
		t.Errorf("docker stop: exit %d after %s", code, took)
	}
}
