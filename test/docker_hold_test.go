package test

import (
	"context"
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

// startHolder runs rotini's image as `hold`, publishing port 8000, with a
// directory of t's as its /run/rotini (where the hold socket is), which it
// returns for the app containers to mount.
func (e *dockerEnv) startHolder(t *testing.T, flags ...string) (*dockerContainer, string) {
	t.Helper()
	run := t.TempDir()
	if err := os.Chmod(run, 0o755); err != nil {
		t.Fatal(err)
	}
	holder := e.run(t, dockerRunOpts{
		Image: e.rotiniImage, Publish: 8000,
		Flags: append([]string{"-v", run + ":/run/rotini"}, flags...),
		Args:  []string{"hold"},
	})
	holder.waitLog(`holding sockets`, 1, time.Minute)
	return holder, run
}

func (e *dockerEnv) testHoldDeploys(t *testing.T) {
	const deploys = 10 // of each kind
	holder, run := e.startHolder(t)
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
	// In either container, `rotini status` shows the holder and who serves:
	// the control socket is on the shared volume, answered by the newest
	// rotini.
	for _, c := range []*dockerContainer{holder, cur} {
		out, err := dockerOut("exec", c.name, "/rotini", "status")
		if err != nil || !strings.Contains(out, "holder pid") || !strings.Contains(out, "serving http") {
			t.Errorf("rotini status in %s: %v\n%s", c.name, err, out)
		}
	}
	if took, code := cur.stop(30); code != 0 {
		t.Errorf("docker stop: exit %d after %s", code, took)
	}
}

// testHoldRestartTrap: a superseded container with a restart policy is
// restarted by Docker; its rotini must not take the traffic back from its
// successor: it says it was superseded and exits 0, each time.
func (e *dockerEnv) testHoldRestartTrap(t *testing.T) {
	holder, run := e.startHolder(t)
	startApp := func(release string) *dockerContainer {
		return e.run(t, dockerRunOpts{
			Image: e.testImage,
			Flags: []string{"--restart", "always", "--network", "container:" + holder.name, "-v", run + ":/run/rotini", "-v", holdRelease(t, release) + ":/etc/rotini:ro"},
			Args:  rotiniArgs,
		})
	}
	old := startApp("v1")
	old.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
	ls := startLoads(t, holder.url)
	next := startApp("v2")
	next.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
	old.waitLog(`superseded by a newer rotini`, 1, time.Minute)
	// Docker restarts the old container (restart policy): twice, at least.
	old.waitLog(`this container was superseded by`, 2, time.Minute)
	for range 10 {
		if got := releaseAnswer(holder.url); got != "v2" {
			t.Fatalf("release %q answers after the superseded container restarted, want v2", got)
		}
		time.Sleep(dockerPoll)
	}
	stopLoads(t, ls)
	mustDocker(t, "update", "--restart", "no", old.name)
	old.remove()
	if took, code := next.stop(30); code != 0 {
		t.Errorf("docker stop: exit %d after %s", code, took)
	}
}

// testHoldCompose: the compose recipe of docker/examples/hold, with
// Compose v2, under load: 10 stop-first deploys (`up -d web` with a new
// TAG) and 10 start-first ones (scale to 2 without recreating, wait for the
// superseded container to exit, remove it), releases alternating.
func (e *dockerEnv) testHoldCompose(t *testing.T) {
	const deploys = 10
	compose := dockerCompose(t)
	if compose[0] != "docker" {
		if os.Getenv("CI") == "true" {
			t.Fatal("Compose v2 (docker compose) is not installed: scripts/deps.sh installs it")
		}
		t.Skip("needs Compose v2 (docker compose); scripts/deps.sh installs it")
	}
	appImage := e.name("holdapp")
	for _, rel := range []string{"v1", "v2"} {
		ctx := t.TempDir()
		dockerWriteFile(t, filepath.Join(ctx, "rotini.hcl"), "hold {}\n\n"+dockerHCL(
			`command = ["/testapp", "serve", "--notify", "--release-file", "release.txt"]`,
			`dir     = "/etc/rotini"`,
			`workers = 2`,
			`ready {`, `  notify     = true`, `  min_uptime = "200ms"`, `}`,
		))
		dockerWriteFile(t, filepath.Join(ctx, "release.txt"), rel+"\n")
		dockerWriteFile(t, filepath.Join(ctx, "Dockerfile"), "FROM "+e.testImage+`
COPY rotini.hcl release.txt /etc/rotini/
ENTRYPOINT ["/rotini", "-c", "/etc/rotini/rotini.hcl"]
`)
		e.build(t, ctx, "-t", appImage+":"+rel)
	}
	dir := t.TempDir()
	dockerCopyTree(t, filepath.Join(e.root, "docker", "examples", "hold"), dir)
	project := e.name("hold")
	port := freeLoopbackPort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	run := func(tag string, args ...string) (string, error) {
		env := []string{"ROTINI_IMAGE=" + e.rotiniImage, "APP_IMAGE=" + appImage, "TAG=" + tag, "PORT=" + fmt.Sprint(port)}
		args = append([]string{"compose", "-f", filepath.Join(dir, "compose.yaml"), "-p", project}, args...)
		return dockerCommandOut(env, "docker", args...)
	}
	must := func(tag string, args ...string) string {
		t.Helper()
		out, err := run(tag, args...)
		if err != nil {
			t.Fatalf("docker compose %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := run("v1", "logs", "--no-color", "--tail", "100")
			t.Logf("compose logs:\n%s", out)
		}
		if out, err := run("v1", "down", "-v", "--remove-orphans", "-t", "30"); err != nil {
			t.Errorf("cleanup: %v\n%s", err, out)
		}
	})
	waitRelease := func(want string) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for releaseAnswer(url) != want {
			if time.Now().After(deadline) {
				t.Fatalf("release %s never answered (last: %q)", want, releaseAnswer(url))
			}
			time.Sleep(dockerPoll)
		}
	}
	must("v1", "up", "-d")
	waitRelease("v1")
	ls := startLoads(t, url)
	release := func(i int) string { return fmt.Sprintf("v%d", 1+i%2) }
	for i := 1; i <= deploys; i++ {
		must(release(i), "up", "-d", "web")
		waitRelease(release(i))
	}
	for i := 1; i <= deploys; i++ {
		tag := release(i + 1)
		old := strings.TrimSpace(must(tag, "ps", "-q", "web"))
		must(tag, "up", "-d", "--no-deps", "--no-recreate", "--scale", "web=2", "web")
		if out, err := dockerOut("wait", old); err != nil || strings.TrimSpace(out) != "0" {
			t.Errorf("start-first deploy %d: the superseded container exited %q (%v), want 0", i, strings.TrimSpace(out), err)
		}
		must(tag, "rm", "-f", "web")
		waitRelease(tag)
		if n := len(strings.Fields(must(tag, "ps", "-q", "web"))); n != 1 {
			t.Fatalf("start-first deploy %d: %d web containers, want 1", i, n)
		}
	}
	stopLoads(t, ls)
}

// testHoldKilledMidDeploy: during a start-first deploy, the serving
// container is SIGKILLed (an OOM kill) while its successor boots: the
// holder steers new connections to its standby at once; when the
// successor is ready it takes over, and what waited in the standby moves
// to it (tcp_migrate_req, set on the holder's namespace as the compose
// example does). Only requests the killed workers held fail.
func (e *dockerEnv) testHoldKilledMidDeploy(t *testing.T) {
	holder, run := e.startHolder(t, "--sysctl", "net.ipv4.tcp_migrate_req=1")
	startApp := func(release string, bootDelay string) *dockerContainer {
		dir := holdRelease(t, release)
		if bootDelay != "" {
			dockerWriteConfig(t, dir, "hold {}\n\n"+dockerHCL(
				`command = ["/testapp", "serve", "--notify", "--boot-delay", "`+bootDelay+`", "--release-file", "release.txt"]`,
				`dir     = "/etc/rotini"`,
				`workers = 2`,
				`ready {`, `  notify     = true`, `  min_uptime = "200ms"`, `}`,
			))
		}
		return e.run(t, dockerRunOpts{
			Image: e.testImage,
			Flags: []string{"--network", "container:" + holder.name, "-v", run + ":/run/rotini", "-v", dir + ":/etc/rotini:ro"},
			Args:  rotiniArgs,
		})
	}
	old := startApp("v1", "")
	old.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
	ls := startLoads(t, holder.url)
	next := startApp("v2", "2s")
	next.waitLog(`generation starting: generation=1\b`, 1, time.Minute)
	mustDocker(t, "kill", "--signal=KILL", old.name)
	holder.waitLog(`tenant gone`, 1, time.Minute)
	// Requests sent now wait in the standby socket until v2 takes over.
	const gap = 5
	errs := make(chan error, gap)
	for range gap {
		go func() {
			l := &load{url: holder.url}
			_, _, err := l.once(context.Background(), newLoadClient(newConn))
			errs <- err
		}()
	}
	next.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
	for range gap {
		if err := <-errs; err != nil {
			t.Errorf("a request sent while no container served: %v", describeErr(err))
		}
	}
	deadline := time.Now().Add(time.Minute)
	for releaseAnswer(holder.url) != "v2" {
		if time.Now().After(deadline) {
			t.Fatalf("v2 never answered after the kill")
		}
		time.Sleep(dockerPoll)
	}
	failed, connect := 0, 0
	for _, l := range ls {
		if !l.waitRequests(100, startTimeout) {
			t.Fatalf("the %s load got no answers after the deploy: %s", l.mode, l.snapshot())
		}
		s := l.stop()
		t.Logf("load across a kill mid-deploy: %s", s)
		failed += s.Failures
		connect += s.Kinds[failConnect]
	}
	if connect > 0 || failed > loadClients {
		t.Errorf("%d failed, %d at connect: want at most the %d requests the killed workers held", failed, connect, loadClients)
	}
	if took, code := next.stop(30); code != 0 {
		t.Errorf("docker stop: exit %d after %s", code, took)
	}
}

// testHoldHolderKilled: the holder container is SIGKILLed. Docker removes
// its published port, but the app container, which joined its network
// namespace, keeps it alive and keeps serving inside it on the sockets it
// holds: it does not crash, says the holder is gone, and answers on the
// namespace's loopback. (Recreating the holder makes a new namespace the
// app is not in: README, "the holder dies or is recreated".)
func (e *dockerEnv) testHoldHolderKilled(t *testing.T) {
	holder, run := e.startHolder(t)
	app := e.run(t, dockerRunOpts{
		Image: e.testImage,
		Flags: []string{"--network", "container:" + holder.name, "-v", run + ":/run/rotini", "-v", holdRelease(t, "v1") + ":/etc/rotini:ro"},
		Args:  rotiniArgs,
	})
	app.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
	mustDocker(t, "kill", "--signal=KILL", holder.name)
	app.waitLog(`connection to the holder lost`, 1, time.Minute)
	for range 5 {
		out, err := dockerOut("exec", app.name, "/bin/busybox", "wget", "-qO-", "http://127.0.0.1:8000/release")
		if err != nil || !strings.Contains(out, "release=v1") {
			t.Fatalf("the app stopped serving in its namespace without the holder: %q, %v", out, err)
		}
		time.Sleep(dockerPoll)
	}
	if !app.running() {
		t.Fatal("the app container exited with its holder")
	}
	out, err := dockerOut("exec", app.name, "/rotini", "status")
	if err != nil || !strings.Contains(out, "holder unreachable") {
		t.Errorf("status without the holder: %v\n%s", err, out)
	}
}

// testHoldTwoNewcomers: two containers start at once beside the serving
// one: one wins (the last one ready), the other two are superseded, exit 0
// and say by whom; the load loses nothing.
func (e *dockerEnv) testHoldTwoNewcomers(t *testing.T) {
	holder, run := e.startHolder(t)
	startApp := func(release string) *dockerContainer {
		return e.run(t, dockerRunOpts{
			Image: e.testImage,
			Flags: []string{"--network", "container:" + holder.name, "-v", run + ":/run/rotini", "-v", holdRelease(t, release) + ":/etc/rotini:ro"},
			Args:  rotiniArgs,
		})
	}
	old := startApp("v1")
	old.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
	ls := startLoads(t, holder.url)
	b, c := startApp("v2"), startApp("v2")
	b.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
	c.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
	deadline := time.Now().Add(time.Minute)
	for {
		running := 0
		for _, x := range []*dockerContainer{old, b, c} {
			if x.running() {
				running++
			}
		}
		if running == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d containers still run, want the one winner", running)
		}
		time.Sleep(dockerPoll)
	}
	for _, x := range []*dockerContainer{old, b, c} {
		if x.running() {
			continue
		}
		if code := x.inspect("{{.State.ExitCode}}"); code != "0" || !strings.Contains(x.logs(), "superseded by a newer rotini") {
			t.Errorf("%s: exit %s; superseded containers exit 0 saying so:\n%s", x.name, code, x.logs())
		}
	}
	if got := releaseAnswer(holder.url); got != "v2" {
		t.Errorf("release %q answers, want v2", got)
	}
	stopLoads(t, ls)
}

// testHoldHolderRestarted: the holder container is restarted. Docker gives
// it a new network namespace; the app container stays in the old one. The
// app's rotini registers again with the returning holder, and a reload
// starts a generation on sockets from the new holder, which serve the
// holder's published port again.
func (e *dockerEnv) testHoldHolderRestarted(t *testing.T) {
	holder, run := e.startHolder(t)
	app := e.run(t, dockerRunOpts{
		Image: e.testImage,
		Flags: []string{"--network", "container:" + holder.name, "-v", run + ":/run/rotini", "-v", holdRelease(t, "v1") + ":/etc/rotini:ro"},
		Args:  rotiniArgs,
	})
	app.waitLog(`generation ready: generation=1\b`, 1, time.Minute)
	mustDocker(t, "restart", "-t", "1", holder.name)
	app.waitLog(`registered again with the holder`, 1, time.Minute)
	if out, err := dockerOut("exec", app.name, "/rotini", "reload", "--wait"); err != nil {
		t.Fatalf("reload after the holder came back: %v\n%s", err, out)
	}
	url := "http://" + holder.hostAddr(8000) + "/"
	deadline := time.Now().Add(time.Minute)
	for releaseAnswer(url) != "v1" {
		if time.Now().After(deadline) {
			t.Fatalf("the app is not reachable through the restarted holder")
		}
		time.Sleep(dockerPoll)
	}
}
