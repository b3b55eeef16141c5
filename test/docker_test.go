package test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestDocker proves rotini's promises in real containers, driven by the
// docker CLI as its users drive it: `docker run`, `docker kill
// --signal=HUP`, `docker exec … rotini reload --wait`, `docker stop`,
// `docker inspect`, and the compose tool of the machine (`docker compose`,
// else `docker-compose`). Load comes from the host, against ports published
// on 127.0.0.1 only.
//
// No registry is needed. The test builds static rotini and testapp
// binaries on the host (CGO_ENABLED=0), packs rotini with
// docker/Dockerfile.prebuilt, and makes a FROM scratch test
// image that takes /rotini from it the way users do (COPY --from) and adds
// the testapp and a static busybox as /bin/sh. The gunicorn example builds
// its own Dockerfile FROM python:3.12-slim; where that image cannot be
// pulled, docker/base/build-python-base.sh builds a local stand-in under
// that tag once (about a minute; cached across runs, never removed).
//
// (Examples whose Dockerfile compiles in golang:1.26 are built from the
// Dockerfile.prebuilt beside it instead, whose final stage is the same:
// TestDockerfilesAgree.)
//
// It skips, saying so, when no Docker engine answers — except under
// CI=true, where that is a failure. Everything it creates is named
// rotini-test-<run id>-… and labelled dev.rotini.test=<run id>, and removed
// at the end even when a test fails.
func TestDocker(t *testing.T) {
	requireDocker(t)
	t.Parallel() // its subtests run one after the other, beside the other tests
	start := time.Now()
	e := newDockerEnv(t)
	t.Logf("binaries and images ready in %s", time.Since(start).Round(time.Millisecond))

	t.Run("Version", e.testVersion)
	t.Run("ZeroConfigExitCode", e.testZeroConfigExitCode)
	t.Run("ZombieStorm", e.testZombieStorm)
	t.Run("HUPUnderLoad", e.testHUPUnderLoad)
	t.Run("StopDrainsSlowRequests", e.testStopDrainsSlowRequests)
	t.Run("StopKillsWorkerIgnoringTerm", e.testStopKillsWorkerIgnoringTerm)
	t.Run("StopTimeoutWarning", e.testStopTimeoutWarning)
	t.Run("ExecReloadWait", e.testExecReloadWait)
	t.Run("Health", e.testHealth)
	t.Run("WatchedBindMount", e.testWatchedBindMount)
	t.Run("ExampleGoNotify", e.testExampleGoNotify)
	t.Run("ExampleGunicornCompose", e.testExampleGunicornCompose)
	t.Run("HoldDeploys", e.testHoldDeploys)
	t.Run("HoldRestartTrap", e.testHoldRestartTrap)
	t.Run("HoldCompose", e.testHoldCompose)
	t.Run("HoldKilledMidDeploy", e.testHoldKilledMidDeploy)
	t.Run("HoldHolderKilled", e.testHoldHolderKilled)
	t.Run("HoldTwoNewcomers", e.testHoldTwoNewcomers)
	t.Run("HoldHolderRestarted", e.testHoldHolderRestarted)
}

// rotiniArgs runs rotini on the config mounted at /etc/rotini.
var rotiniArgs = []string{"/rotini", "-c", "/etc/rotini/rotini.hcl"}

// serveApp is the app block of the testapp's serve role with extra flags,
// two workers, ready on READY=1.
func serveApp(extra ...string) []string {
	cmd := append([]string{"/testapp", "serve", "--notify"}, extra...)
	return []string{
		`command = ` + hclList(cmd),
		`workers = 2`,
		`ready {`,
		`  notify     = true`,
		`  min_uptime = "200ms"`,
		`  timeout    = "20s"`,
		`}`,
	}
}

// startServe runs the test image (or image) with rotini on config, port
// 8000 published, and waits until it serves.
func (e *dockerEnv) startServe(t *testing.T, image, config string, flags ...string) (*dockerContainer, string) {
	t.Helper()
	dir := dockerConfigDir(t, config)
	c := e.run(t, dockerRunOpts{
		Image: image, Publish: 8000,
		Flags: append([]string{"-v", dir + ":/etc/rotini:ro"}, flags...),
		Args:  rotiniArgs,
	})
	c.waitServing(time.Minute)
	return c, dir
}

// startLoads starts one load per connection mode against url and waits
// until each has an answer.
func startLoads(t *testing.T, url string) []*load {
	t.Helper()
	var ls []*load
	for _, mode := range []loadMode{newConn, keepAlive} {
		l := startLoad(t, url, mode, loadClients/2, 10*time.Minute)
		if !l.waitRequests(1, startTimeout) {
			t.Fatalf("the %s load got no answer: %s", mode, l.snapshot())
		}
		ls = append(ls, l)
	}
	return ls
}

// waitLoadsGeneration waits until every load has met generation gen.
func waitLoadsGeneration(t *testing.T, ls []*load, gen int) {
	t.Helper()
	for _, l := range ls {
		if !l.waitGeneration(gen, reloadTimeout) {
			t.Fatalf("generation %d never answered the %s load: %s", gen, l.mode, l.snapshot())
		}
	}
}

// stopLoads stops the loads, requires zero failures of each and returns
// the number of distinct generations they met.
func stopLoads(t *testing.T, ls []*load) int {
	t.Helper()
	gens := map[string]bool{}
	for _, l := range ls {
		s := l.stop()
		requireNoFailures(t, s)
		for g := range s.Generations {
			gens[g] = true
		}
	}
	return len(gens)
}

// lastReloadDone is the generation of the last "reload done" line, 1 when
// there is none.
func lastReloadDone(c *dockerContainer) int {
	gen := 1
	rx := regexp.MustCompile(`reload done: generation=(\d+)`)
	for _, m := range rx.FindAllStringSubmatch(c.logs(), -1) {
		if g, _ := strconv.Atoi(m[1]); g > gen {
			gen = g
		}
	}
	return gen
}

// testVersion: the rotini image prints the version stamped from git.
func (e *dockerEnv) testVersion(t *testing.T) {
	out := mustDocker(t, "run", "--rm", "--label", dockerLabel+"="+e.id, e.rotiniImage)
	if want := "rotini " + e.version; strings.TrimSpace(out) != want {
		t.Errorf("docker run %s printed %q, want %q", e.rotiniImage, strings.TrimSpace(out), want)
	}
}

// testZeroConfigExitCode: `docker run img /rotini -- CMD` exits with the
// command's code, 128+N when signal N killed it, 127 when it is missing.
func (e *dockerEnv) testZeroConfigExitCode(t *testing.T) {
	for _, tc := range []struct {
		name string
		cmd  []string
		want int
	}{
		{"exit3", []string{"sh", "-c", "exit 3"}, 3},
		{"exit0", []string{"sh", "-c", "exit 0"}, 0},
		{"killed", []string{"sh", "-c", "kill -KILL $$"}, 128 + 9},
		{"notfound", []string{"/no/such/command"}, 127},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.run(t, dockerRunOpts{Image: e.testImage, Args: append([]string{"/rotini", "--"}, tc.cmd...)})
			out := strings.TrimSpace(mustDocker(t, "wait", c.name))
			if got, _ := strconv.Atoi(out); got != tc.want || out == "" {
				t.Errorf("docker run %s /rotini -- %q exited %s, want %d", e.testImage, tc.cmd, out, tc.want)
			}
		})
	}
}

// testZombieStorm: 200 orphans re-parented to rotini (PID 1) exit at once
// and leave no zombie, as seen from the host in /proc. The negative
// control runs the same storm with the testapp as PID 1, which reaps only
// its own child: the same check sees the zombies.
func (e *dockerEnv) testZombieStorm(t *testing.T) {
	const n = 200
	storm := []string{"/testapp", "orphans", strconv.Itoa(n), "--now"}

	c := e.run(t, dockerRunOpts{Image: e.testImage, Args: append([]string{"/rotini", "--"}, storm...)})
	c.waitLog(`^spawned \d+$`, 1, time.Minute)
	c.waitLog(`^released$`, 1, time.Minute)
	pid, _ := strconv.Atoi(c.inspect("{{.State.Pid}}"))
	deadline := time.Now().Add(30 * time.Second)
	for {
		ps := nsProcs(t, pid)
		if countZombies(ps) == 0 && len(ps) == 2 { // rotini and the testapp
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30s after the storm the container holds %d processes, %d of them zombies; want 2 and none", len(ps), countZombies(ps))
		}
		time.Sleep(dockerPoll)
	}

	nc := e.run(t, dockerRunOpts{Image: e.testImage, Name: c.name + "-control", Args: storm})
	nc.waitLog(`^released$`, 1, time.Minute)
	pid, _ = strconv.Atoi(nc.inspect("{{.State.Pid}}"))
	deadline = time.Now().Add(30 * time.Second)
	for {
		z := countZombies(nsProcs(t, pid))
		if z >= n {
			t.Logf("negative control: without rotini, %d zombies stay in the container", z)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("negative control: with the testapp as PID 1 the check sees %d zombies, want %d: it cannot see zombies", z, n)
		}
		time.Sleep(dockerPoll)
	}
}

// testHUPUnderLoad: `docker kill --signal=HUP` every second for 30 s under
// load from the host: not one request fails, and the generations change.
func (e *dockerEnv) testHUPUnderLoad(t *testing.T) {
	const hups = 30
	c, _ := e.startServe(t, e.testImage, dockerHCL(serveApp()...))
	ls := startLoads(t, c.url)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for range hups {
		mustDocker(t, "kill", "--signal=HUP", c.name)
		<-tick.C
	}
	gen := lastReloadDone(c)
	waitLoadsGeneration(t, ls, gen)
	gens := stopLoads(t, ls)
	t.Logf("%d HUPs: last generation %d, %d generations answered the load", hups, gen, gens)
	if gens < 10 {
		t.Errorf("only %d generations answered across %d HUPs, want at least 10", gens, hups)
	}
	if n := c.countLog(`reload failed`); n > 0 {
		t.Errorf("%d reloads failed", n)
	}
	if took, code := c.stop(30); code != 0 {
		t.Errorf("docker stop: exit code %d after %s, want 0", code, took)
	}
}

// testStopDrainsSlowRequests: requests in flight when `docker stop` begins
// complete, and the container exits 0 well before the stop timeout.
func (e *dockerEnv) testStopDrainsSlowRequests(t *testing.T) {
	const (
		slow  = 6
		ms    = 3000
		grace = 30
	)
	c, _ := e.startServe(t, e.testImage, dockerHCL(append(serveApp(), `stop_timeout = "20s"`)...),
		"--stop-timeout", strconv.Itoa(grace), "-e", "ROTINI_STOP_GRACE="+strconv.Itoa(grace)+"s")

	type result struct {
		err  error
		done time.Time
	}
	results := make(chan result, slow)
	var written sync.WaitGroup
	written.Add(slow)
	for range slow {
		go func() {
			var once sync.Once
			trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { once.Do(written.Done) }}
			l := &load{url: c.url + "slow?ms=" + strconv.Itoa(ms)}
			_, _, err := l.once(httptrace.WithClientTrace(context.Background(), trace), newLoadClient(newConn))
			once.Do(written.Done)
			results <- result{err, time.Now()}
		}()
	}
	written.Wait()
	// Written to docker-proxy, which passes each on to a worker: give it a
	// moment, well within the 3 s a request takes.
	time.Sleep(500 * time.Millisecond)
	stopAt := time.Now()
	took, code := c.stop(grace)
	inFlight := 0
	for range slow {
		r := <-results
		switch {
		case r.err != nil:
			t.Errorf("a slow request in flight at docker stop failed: %v", describeErr(r.err))
		case r.done.After(stopAt):
			inFlight++
		}
	}
	t.Logf("docker stop took %s; %d of %d slow requests completed after it began", took.Round(time.Millisecond), inFlight, slow)
	if inFlight == 0 {
		t.Errorf("every slow request had completed before docker stop: the test proved nothing")
	}
	if code != 0 {
		t.Errorf("exit code %d after docker stop, want 0", code)
	}
	if took > grace*time.Second/2 {
		t.Errorf("docker stop took %s, want well under its %ds timeout", took, grace)
	}
}

// testStopKillsWorkerIgnoringTerm: a worker that ignores TERM is killed by
// rotini's own stop_timeout (3 s), so rotini exits 0 long before Docker's
// SIGKILL (20 s), which would show as 137.
func (e *dockerEnv) testStopKillsWorkerIgnoringTerm(t *testing.T) {
	const grace = 20
	c, _ := e.startServe(t, e.testImage, dockerHCL(append(serveApp("--ignore-term"), `stop_timeout = "3s"`)...),
		"--stop-timeout", strconv.Itoa(grace))
	took, code := c.stop(grace)
	t.Logf("docker stop took %s, exit code %d", took.Round(time.Millisecond), code)
	if code == 128+9 {
		t.Errorf("exit code 137: Docker's SIGKILL ended the container, not rotini's stop_timeout")
	} else if code != 0 {
		t.Errorf("exit code %d after docker stop, want 0", code)
	}
	if took < 3*time.Second {
		t.Errorf("docker stop took %s, shorter than the stop_timeout of 3s the workers needed", took)
	}
	if took > 12*time.Second {
		t.Errorf("docker stop took %s: rotini did not kill the workers at stop_timeout (3s)", took)
	}
	if c.countLog(`^signal TERM$`) == 0 {
		t.Errorf("the workers never logged the TERM they ignored")
	}
	if c.countLog(`stop timeout: killing`) == 0 {
		t.Errorf("rotini never logged that it killed the workers at stop_timeout")
	}
}

// testStopTimeoutWarning: rotini warns at start about an app whose
// stop_timeout exceeds Docker's default 10 s grace (docker stop would
// SIGKILL it mid-drain), not about one that fits, and not when
// ROTINI_STOP_GRACE says the container's grace is longer.
func (e *dockerEnv) testStopTimeoutWarning(t *testing.T) {
	config := dockerHCL(append(serveApp(), `stop_timeout = "15s"`)...) + `
app "quick" {
  command      = ["/testapp", "signals"]
  stop_timeout = "5s"
  ready {
    min_uptime = "200ms"
  }
}
`
	warning := regexp.MustCompile(`(\[WARN\]|"@level":"warn").*stop_timeout`)
	warnings := func(c *dockerContainer) []string {
		c.waitLog(`rotini\.web: generation ready: generation=1\b`, 1, time.Minute)
		c.waitLog(`rotini\.quick: generation ready: generation=1\b`, 1, time.Minute)
		var ws []string
		for _, l := range strings.Split(c.logs(), "\n") {
			if warning.MatchString(l) {
				ws = append(ws, l)
			}
		}
		return ws
	}

	c, _ := e.startServe(t, e.testImage, config)
	ws := warnings(c)
	if len(ws) != 1 || !strings.Contains(ws[0], "10s") || !strings.Contains(ws[0], "web") {
		t.Errorf("want one Warn line naming app web, stop_timeout and 10s; got %d: %q", len(ws), ws)
	} else {
		t.Logf("the warning: %s", ws[0])
	}
	for _, w := range ws {
		if strings.Contains(w, "quick") {
			t.Errorf("warned about app quick, whose stop_timeout (5s) fits in 10s: %s", w)
		}
	}

	c, _ = e.startServe(t, e.testImage, config, "--stop-timeout", "30", "-e", "ROTINI_STOP_GRACE=30s")
	if ws := warnings(c); len(ws) != 0 {
		t.Errorf("warned although ROTINI_STOP_GRACE=30s: %q", ws)
	}
}

// testExecReloadWait: `docker exec c rotini reload --wait` exits 0 once the
// new generation serves, and non-zero with the reason on a broken release,
// which is refused while the old generation serves on and the container
// stays healthy. No request fails throughout.
func (e *dockerEnv) testExecReloadWait(t *testing.T) {
	c, dir := e.startServe(t, e.healthImage, dockerHCL(serveApp()...))
	ls := startLoads(t, c.url)

	out, err := dockerOut("exec", c.name, "/rotini", "reload", "--wait")
	if err != nil {
		t.Fatalf("reload --wait of a good release: %v", err)
	}
	t.Logf("reload --wait (good release) said:\n%s", strings.TrimSpace(out))
	waitLoadsGeneration(t, ls, 2)

	dockerWriteConfig(t, dir, dockerHCL(serveApp("--fail-start", "3")...))
	out, err = dockerOut("exec", c.name, "/rotini", "reload", "--wait")
	t.Logf("reload --wait (broken release) exited %d and said:\n%s", dockerExitCode(err), strings.TrimSpace(out))
	if err == nil {
		t.Errorf("reload --wait of a broken release exited 0")
	} else if dockerExitCode(err) < 1 {
		t.Errorf("reload --wait of a broken release did not run: %v", err)
	}
	if !strings.Contains(out, "exit status 3") || !strings.Contains(out, "generation 2") {
		t.Errorf("reload --wait of a broken release did not say why (the worker's exit status 3) and which generation serves (2)")
	}
	if gen, _, err := getBody(c.url); err != nil || gen != "2" {
		t.Errorf("after the refused release: generation %q answers (err %v), want 2", gen, err)
	}
	c.waitHealth("healthy", 30*time.Second)

	dockerWriteConfig(t, dir, dockerHCL(serveApp()...))
	if out, err := dockerOut("exec", c.name, "/rotini", "reload", "--wait"); err != nil {
		t.Fatalf("reload --wait of the fixed release: %v\n%s", err, out)
	}
	gen := lastReloadDone(c)
	if gen < 3 {
		t.Errorf("after the fixed release the last reload done is generation %d, want 3 or more", gen)
	}
	waitLoadsGeneration(t, ls, gen)
	stopLoads(t, ls)
}

// testHealth: docker inspect's health status follows `rotini health` (the
// image's HEALTHCHECK): healthy once the app serves, unhealthy while its
// first generation never gets ready.
func (e *dockerEnv) testHealth(t *testing.T) {
	good, _ := e.startServe(t, e.healthImage, dockerHCL(serveApp()...))
	bad := e.run(t, dockerRunOpts{
		Image: e.healthImage, Name: good.name + "-hang",
		Flags: []string{"-v", dockerConfigDir(t, dockerHCL(
			`command = ["/testapp", "serve", "--hang"]`,
			`ready {`, `  notify  = true`, `  timeout = "10m"`, `}`)) + ":/etc/rotini:ro"},
		Args: rotiniArgs,
	})
	good.waitHealth("healthy", time.Minute)
	bad.waitHealth("unhealthy", time.Minute)
}

// testWatchedBindMount: the code lives in a host directory mounted at
// /srv/app (releases/N/testapp, current -> releases/N) and rotini watches
// it. Writing a new release and switching the symlink on the host reloads
// it under load, with zero failures; the new release's binary serves.
func (e *dockerEnv) testWatchedBindMount(t *testing.T) {
	app := t.TempDir()
	deploy := func(rel int) {
		dir := filepath.Join(app, "releases", strconv.Itoa(rel))
		dockerMkdir(t, dir)
		dockerCopyFile(t, filepath.Join(e.bin, "testapp"), filepath.Join(dir, ".testapp.tmp"), 0o755)
		if err := os.Rename(filepath.Join(dir, ".testapp.tmp"), filepath.Join(dir, "testapp")); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(app, ".current.tmp")
		os.Remove(link)
		if err := os.Symlink(filepath.Join("releases", strconv.Itoa(rel)), link); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(link, filepath.Join(app, "current")); err != nil {
			t.Fatal(err)
		}
	}
	deploy(1)
	config := dockerHCL(
		`command = ["/srv/app/current/testapp", "serve", "--notify"]`,
		`dir     = "/srv/app/current"`,
		`workers = 2`,
		`ready {`, `  notify     = true`, `  min_uptime = "200ms"`, `  timeout    = "20s"`, `}`,
		`watch {`, `  paths    = ["/srv/app"]`, `  debounce = "300ms"`, `}`,
	)
	c, _ := e.startServe(t, e.testImage, config, "-v", app+":/srv/app")
	ls := startLoads(t, c.url)
	for rel := 2; rel <= 3; rel++ {
		deploy(rel)
		want := fmt.Sprintf("/srv/app/releases/%d/testapp", rel)
		deadline := time.Now().Add(time.Minute)
		for {
			exe, gen := servingExe(t, c)
			if exe == want {
				t.Logf("release %d serves as generation %s", rel, gen)
				g, _ := strconv.Atoi(gen)
				waitLoadsGeneration(t, ls, g)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("release %d written a minute ago; %s still serves (generation %s)", rel, exe, gen)
			}
			time.Sleep(dockerPoll)
		}
	}
	if gens := stopLoads(t, ls); gens < 3 {
		t.Errorf("%d generations answered the load across 2 releases, want 3 or more", gens)
	}
}

// servingExe asks the container who answers / and returns that process's
// executable as the container sees it, and its generation.
func servingExe(t *testing.T, c *dockerContainer) (exe, gen string) {
	t.Helper()
	resp, err := newLoadClient(newConn).Get(c.url)
	if err != nil {
		t.Fatalf("GET %s: %v", c.url, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := bodyRE.FindSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("GET %s: %d %q", c.url, resp.StatusCode, body)
	}
	out, err := dockerOut("exec", c.name, "/bin/busybox", "readlink", "/proc/"+string(m[3])+"/exe")
	if err != nil {
		return "", string(m[1]) // the worker exited meanwhile: ask again
	}
	return strings.TrimSpace(out), string(m[1])
}

// testExampleGoNotify builds docker/examples/go-notify from its
// Dockerfile.prebuilt with the app built on the host (its Dockerfile
// compiles it in golang:1.26, which cannot be pulled here; the two agree:
// TestDockerfilesAgree) and reloads it with `docker kill --signal=HUP` under
// load; the image's HEALTHCHECK reports healthy, and `docker stop` with
// Docker's default 10 s drains and exits 0.
func (e *dockerEnv) testExampleGoNotify(t *testing.T) {
	dir := t.TempDir()
	dockerCopyTree(t, filepath.Join(e.root, "docker", "examples", "go-notify"), dir)
	e.goBuild(t, dir, ".", "go-notify", "-s -w")
	dockerCopyFile(t, filepath.Join(e.bin, "go-notify"), filepath.Join(dir, "app"), 0o755)
	image := e.name("go-notify")
	e.build(t, dir, "-f", filepath.Join(dir, "Dockerfile.prebuilt"), "--build-arg", "ROTINI_IMAGE="+e.rotiniImage, "-t", image)

	c := e.run(t, dockerRunOpts{Image: image, Publish: 8000, Flags: []string{"--health-interval", "1s"}})
	c.waitServing(time.Minute)
	c.waitHealth("healthy", time.Minute)
	ls := startLoads(t, c.url)
	for gen := 2; gen <= 6; gen++ {
		mustDocker(t, "kill", "--signal=HUP", c.name)
		c.waitLog(fmt.Sprintf(`reload done: generation=%d\b`, gen), 1, reloadTimeout)
		waitLoadsGeneration(t, ls, gen)
	}
	stopLoads(t, ls)
	took, code := c.stop(10)
	t.Logf("docker stop (10s) took %s", took.Round(time.Millisecond))
	if code != 0 {
		t.Errorf("exit code %d after docker stop, want 0", code)
	}
	if took > 9*time.Second {
		t.Errorf("docker stop took %s, want well under Docker's 10s", took)
	}
}

// testExampleGunicornCompose runs docker/examples/gunicorn with the compose
// tool: `up -d --build` (its Dockerfile FROM python:3.12-slim, a local
// stand-in here), a code change through the bind mount goes live, `kill -s
// HUP` and `exec rotini reload --wait` reload, all under load with zero
// failures; `stop` exits 0 and `down` removes it all.
func (e *dockerEnv) testExampleGunicornCompose(t *testing.T) {
	compose := dockerCompose(t)
	start := time.Now()
	if out, err := dockerCommandOut(nil, "bash", filepath.Join(e.root, "docker", "base", "build-python-base.sh")); err != nil {
		msg := fmt.Sprintf("no python:3.12-slim and its stand-in could not be built: %v", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	} else {
		t.Logf("python:3.12-slim ready in %s: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))
	}

	dir := t.TempDir()
	dockerCopyTree(t, filepath.Join(e.root, "docker", "examples", "gunicorn"), dir)
	project := e.name("gunicorn")
	port := freeLoopbackPort(t)
	env := []string{"ROTINI_IMAGE=" + e.rotiniImage, "PORT=" + strconv.Itoa(port)}
	run := func(args ...string) (string, error) {
		args = append(append(compose[1:len(compose):len(compose)], "-f", filepath.Join(dir, "compose.yaml"), "-p", project), args...)
		return dockerCommandOut(env, compose[0], args...)
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := run("logs", "--no-color", "--tail", "150")
			t.Logf("compose logs:\n%s", out)
		}
		if _, err := run("down", "--rmi", "local", "-v", "--remove-orphans", "-t", "30"); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})

	start = time.Now()
	must("up", "-d", "--build")
	t.Logf("%s up -d --build: %s", strings.Join(compose, " "), time.Since(start).Round(time.Millisecond))
	id := strings.TrimSpace(must("ps", "-q", "web"))
	if id == "" {
		t.Fatalf("compose ps -q web: no container")
	}
	c := &dockerContainer{t: t, name: id, url: fmt.Sprintf("http://127.0.0.1:%d/", port)}
	c.waitServing(2 * time.Minute)
	ls := startLoads(t, c.url)

	// A deploy through the bind mount: the new app.py goes live.
	src, err := os.ReadFile(filepath.Join(dir, "app", "app.py"))
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(src), `RELEASE = "1"`, `RELEASE = "2"`, 1)
	if edited == string(src) {
		t.Fatalf("app.py has no line RELEASE = \"1\"")
	}
	dockerWriteFile(t, filepath.Join(dir, "app", ".app.py.tmp"), edited)
	if err := os.Rename(filepath.Join(dir, "app", ".app.py.tmp"), filepath.Join(dir, "app", "app.py")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := newLoadClient(newConn).Get(c.url + "release")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.TrimSpace(string(body)) == "release=2" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("a minute after app.py changed on the host, /release does not say release=2")
		}
		time.Sleep(dockerPoll)
	}
	gen := lastReloadDone(c)
	waitLoadsGeneration(t, ls, gen)

	must("kill", "-s", "HUP", "web")
	c.waitLog(fmt.Sprintf(`reload done: generation=%d\b`, gen+1), 1, time.Minute)
	waitLoadsGeneration(t, ls, gen+1)

	if out, err := run("exec", "-T", "web", "rotini", "reload", "--wait"); err != nil {
		t.Errorf("compose exec web rotini reload --wait: %v", err)
	} else {
		t.Logf("compose exec web rotini reload --wait said:\n%s", strings.TrimSpace(out))
		waitLoadsGeneration(t, ls, lastReloadDone(c))
	}
	stopLoads(t, ls)

	start = time.Now()
	must("stop")
	took := time.Since(start)
	if code := c.inspect("{{.State.ExitCode}}"); code != "0" {
		t.Errorf("compose stop: exit code %s after %s, want 0", code, took)
	}
	t.Logf("compose stop: %s", took.Round(time.Millisecond))
	must("down", "--rmi", "local", "-v", "--remove-orphans")
	if out, _ := dockerOut("ps", "-aq", "--filter", "label=com.docker.compose.project="+project); strings.TrimSpace(out) != "" {
		t.Errorf("containers left after compose down: %s", out)
	}
	if out, _ := dockerOut("network", "ls", "-q", "--filter", "name="+project); strings.TrimSpace(out) != "" {
		t.Errorf("networks left after compose down: %s", out)
	}
}

// TestDockerfilesAgree: each Dockerfile.prebuilt under docker/ (what
// TestDocker builds, and what machines without a registry use) ends in the
// same final stage as the Dockerfile beside it (what users build, compiling
// in golang:1.26), but for where the binary comes from. Needs no Docker.
func TestDockerfilesAgree(t *testing.T) {
	for _, tc := range []struct {
		dir                 string
		fromBuild, prebuilt string // the one line that differs
	}{
		{"../docker", "COPY --from=build /rotini /rotini", "COPY bin/rotini /rotini"},
		{"../docker/examples/go-notify", "COPY --from=build /app /app", "COPY app /app"},
	} {
		want := dockerfileFinalStage(t, filepath.Join(tc.dir, "Dockerfile"))
		got := dockerfileFinalStage(t, filepath.Join(tc.dir, "Dockerfile.prebuilt"))
		for i := range want {
			if want[i] == tc.fromBuild {
				want[i] = tc.prebuilt
			}
		}
		if !slices.Equal(want, got) {
			t.Errorf("%s: the final stages of Dockerfile and Dockerfile.prebuilt differ:\nDockerfile (%q as %q):\n  %s\nDockerfile.prebuilt:\n  %s",
				tc.dir, tc.fromBuild, tc.prebuilt, strings.Join(want, "\n  "), strings.Join(got, "\n  "))
		}
	}
}

// dockerfileFinalStage returns the instructions of a Dockerfile's last
// stage, from its FROM on: comments dropped, continuation lines joined,
// runs of blanks made one space.
func dockerfileFinalStage(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var instrs []string
	cont := false
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && !cont) {
			continue
		}
		joined := strings.HasSuffix(trimmed, "\\")
		trimmed = strings.Join(strings.Fields(strings.TrimSuffix(trimmed, "\\")), " ")
		if cont {
			instrs[len(instrs)-1] += " " + trimmed
		} else {
			instrs = append(instrs, trimmed)
		}
		cont = joined
	}
	last := -1
	for i, in := range instrs {
		if strings.HasPrefix(strings.ToUpper(in), "FROM ") {
			last = i
		}
	}
	if last < 0 {
		t.Fatalf("%s: no FROM", path)
	}
	return instrs[last:]
}
