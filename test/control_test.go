package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rotini-dev/rotini/control"
)

// End-to-end tests of the control socket and the CLI verbs against a
// running `rotini -c FILE` (the rig of reload_test.go, whose control socket
// is ctl.sock in the test's directory): the verbs run as a user would run
// them, and the tests wait on rotini's log lines, not on sleeps.

// controlListeningRE is rotini's log line once the control socket serves.
const controlListeningRE = `rotini\.control: listening: path=`

// cliResult is what one run of a client verb gave.
type cliResult struct {
	code           int
	stdout, stderr string
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s--- stderr:\n%s", r.code, r.stdout, r.stderr)
}

// rotiniCLI runs `rotini ARGS…` to its end with env added to the test's
// environment.
func rotiniCLI(t *testing.T, env []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*reloadTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, rotiniBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("rotini %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("rotini %s: still running after %s", strings.Join(args, " "), 2*reloadTimeout)
	}
	return cliResult{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String()}
}

// ctlRig is a rig whose control socket serves; the socket's path is the
// one rotini logs.
type ctlRig struct {
	*rig
	sock string
}

// startControlRig starts rotini with one app "web" of testapp serve
// workers with flags, and waits until its control socket serves.
func startControlRig(t *testing.T, flags ...string) *ctlRig {
	t.Helper()
	port := freeLoopbackPort(t)
	r := startRig(t, port, rigConfig(port, appSpec{Command: testappServe(append([]string{"--notify"}, flags...)...)}))
	line, _ := r.waitLog(controlListeningRE, 1, startTimeout)
	return &ctlRig{rig: r, sock: logField(line, "path")}
}

// ctl runs a client verb against the rig's control socket.
func (r *ctlRig) ctl(args ...string) cliResult {
	r.t.Helper()
	return rotiniCLI(r.t, nil, append(args, "--control", r.sock)...)
}

// status runs `rotini status --json` and parses it.
func (r *ctlRig) status() *control.Status {
	r.t.Helper()
	res := r.ctl("status", "--json")
	if res.code != 0 {
		r.t.Fatalf("status --json: %s", res)
	}
	var st control.Status
	if err := json.Unmarshal([]byte(res.stdout), &st); err != nil {
		r.t.Fatalf("status --json is not the API's JSON: %v\n%s", err, res.stdout)
	}
	if len(st.Apps) != 1 || st.Apps[0].Name != "web" {
		r.t.Fatalf("status --json: want the app web, got %+v", st.Apps)
	}
	return &st
}

func TestControlVerbs(t *testing.T) {
	r := startControlRig(t)
	r.waitLog(`rotini\.web: generation ready: generation=1\b`, 1, startTimeout)

	st := r.status()
	if web := st.Apps[0]; web.Serving != 1 || !web.Ready || len(web.Generations) != 1 || len(web.Generations[0].Workers) != 2 {
		t.Errorf("status after start: %+v", web)
	}
	if st.Pid != r.p.target(t) || len(st.Listeners) != 1 || st.Listeners[0].Address != fmt.Sprintf("127.0.0.1:%d", r.port) {
		t.Errorf("status: pid %d (rotini is %d), listeners %+v", st.Pid, r.p.target(t), st.Listeners)
	}
	if res := r.ctl("status"); res.code != 0 || !strings.Contains(res.stdout, "web: generation 1 serving, ready, 2 workers") {
		t.Errorf("status: %s", res)
	}
	if res := r.ctl("health"); res.code != 0 || res.stdout != "ok\n" {
		t.Errorf("health when ready: %s", res)
	}

	res := r.ctl("reload", "--wait", "--timeout", "30s")
	if res.code != 0 {
		t.Fatalf("reload --wait: %s", res)
	}
	for _, want := range []string{
		"web: starting generation 2 (2 workers)\n",
		"web: ready 2/2 in ",
		"web: draining generation 1\n",
		"web: done: generation 2 serving, in ",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("reload --wait output lacks %q:\n%s", want, res)
		}
	}
	if web := r.status().Apps[0]; web.Serving != 2 || web.LastReload == nil || !web.LastReload.OK {
		t.Errorf("status after reload: serving %d, last reload %+v", web.Serving, web.LastReload)
	}

	if res := r.ctl("reload", "web"); res.code != 0 || res.stdout != "reload of web accepted\n" {
		t.Errorf("reload web: %s", res)
	}
	r.waitReload(2)

	if res := r.ctl("scale", "web=3"); res.code != 0 {
		t.Fatalf("scale web=3: %s", res)
	}
	r.waitLog(`rotini\.web: worker ready: generation=3 worker=2\b`, 1, startTimeout)
	web := r.status().Apps[0]
	if g := web.Generations[len(web.Generations)-1]; web.Workers != 3 || g.Number != 3 || len(g.Workers) != 3 {
		t.Errorf("status after scale web=3: %d workers, generation %d with %d", web.Workers, g.Number, len(g.Workers))
	}

	if res := r.ctl("scale", "web=0"); res.code != 64 || !strings.Contains(res.stderr, "at least 1") {
		t.Errorf("scale web=0: %s", res)
	}
	if res := r.ctl("reload", "api", "--wait"); res.code != 1 || !strings.Contains(res.stderr, `no app named "api"`) {
		t.Errorf("reload of an unknown app: %s", res)
	}

	if _, err := exec.LookPath("curl"); err == nil {
		out, err := exec.Command("curl", "-sS", "--max-time", "10", "--unix-socket", r.sock, "http://rotini/status").Output()
		var st control.Status
		if err != nil || json.Unmarshal(out, &st) != nil || len(st.Apps) != 1 || st.Apps[0].Serving != 3 {
			t.Errorf("curl status: %v\n%s", err, out)
		}
		out, err = exec.Command("curl", "-sS", "--max-time", "10", "--unix-socket", r.sock, "-w", " %{http_code}", "http://rotini/v1/health").Output()
		if err != nil || string(out) != `{"ok":true}`+"\n 200" {
			t.Errorf("curl health: %v: %q", err, out)
		}
	} else {
		t.Log("no curl: skipping the curl checks")
	}

	if res := r.ctl("stop"); res.code != 0 {
		t.Fatalf("stop: %s", res)
	}
	if code := r.waitExit(stopTimeout); code != 0 {
		t.Errorf("rotini exited with %d after `rotini stop`, want 0", code)
	}
	if _, err := os.Lstat(r.sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the control socket outlived rotini: %v", err)
	}
}

// A release whose workers exit at once: `reload --wait` exits non-zero with
// the reason, and the old generation goes on serving.
func TestControlReloadWaitBrokenRelease(t *testing.T) {
	r := startControlRig(t)
	r.waitLog(`rotini\.web: generation ready: generation=1\b`, 1, startTimeout)
	r.writeConfig(rigConfig(r.port, appSpec{Command: testappServe("--notify", "--fail-start", "3")}))

	res := r.ctl("reload", "--wait")
	if res.code != 1 {
		t.Fatalf("reload --wait of a broken release: %s", res)
	}
	reason := regexp.MustCompile(`rotini: reload of web failed: worker \d \(pid \d+\) of generation 2 exit status 3 before it was ready`)
	if !reason.MatchString(res.stderr) || !strings.Contains(res.stdout, "web: failed: ") || !strings.Contains(res.stdout, "generation 1 still serving") {
		t.Errorf("reload --wait does not tell why:\n%s", res)
	}
	if gen, _ := r.get(); gen != "1" {
		t.Errorf("generation %s answered after the failed reload, want 1", gen)
	}
	web := r.status().Apps[0]
	if web.Serving != 1 || web.LastReload == nil || web.LastReload.OK || !strings.Contains(web.LastReload.Reason, "exit status 3") {
		t.Errorf("status after the failed reload: serving %d, last reload %+v", web.Serving, web.LastReload)
	}
	if res := r.ctl("health"); res.code != 0 {
		t.Errorf("health after a rolled-back reload: %s", res)
	}
	if res := r.ctl("status"); !strings.Contains(res.stdout, "last reload FAILED after") {
		t.Errorf("status does not show the failed reload:\n%s", res)
	}
}

// health is non-zero while no generation is ready, then flips to 0.
func TestControlHealthFlips(t *testing.T) {
	r := startControlRig(t, "--boot-delay", "3s")
	// The first generation sleeps 3s before it serves: not ready yet.
	res := r.ctl("health")
	if res.code != 1 || res.stdout != "unhealthy: app web: generation 1 is not ready\n" {
		t.Errorf("health while booting: %s", res)
	}
	if r.countLog(`generation ready`) != 0 {
		t.Fatalf("the generation was ready before the check: the test proves nothing")
	}
	r.waitLog(`rotini\.web: generation ready: generation=1\b`, 1, startTimeout)
	if res := r.ctl("health"); res.code != 0 || res.stdout != "ok\n" {
		t.Errorf("health once ready: %s", res)
	}
}

func TestControlUnreachable(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nobody.sock")
	want := "rotini: cannot reach rotini at " + path + ": no such file or directory (is rotini running with a config? set --control PATH or ROTINI_CONTROL)\n"
	for _, tt := range []struct {
		name string
		env  []string
		args []string
	}{
		{name: "flag", args: []string{"status", "--control", path}},
		{name: "env", env: []string{"ROTINI_CONTROL=" + path}, args: []string{"health"}},
		{name: "config", args: []string{"reload", "--wait", "-c", writeControlConfig(t, dir, path)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := rotiniCLI(t, tt.env, tt.args...)
			if res.code != 1 || res.stderr != want {
				t.Errorf("got %s\nwant exit 1 and stderr %q", res, want)
			}
		})
	}
	// A socket file nobody listens on (rotini was killed).
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	res := rotiniCLI(t, nil, "stop", "--control", path)
	if res.code != 1 || !strings.Contains(res.stderr, "cannot reach rotini at "+path+": connection refused (") {
		t.Errorf("stale socket: %s", res)
	}
}

func writeControlConfig(t *testing.T, dir, socket string) string {
	t.Helper()
	p := filepath.Join(dir, "rotini.hcl")
	cfg := rigConfig(freeLoopbackPort(t), appSpec{Command: testappServe()}) + fmt.Sprintf("\ncontrol {\n  socket = %q\n}\n", socket)
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Garbage on the control socket — raw bytes, a 10 MB body, 200 clients at
// once, clients that connect and never send — costs those clients errors
// and timeouts; rotini keeps serving HTTP traffic without a failure and
// `status` still answers.
func TestControlGarbage(t *testing.T) {
	r := startControlRig(t)
	r.waitLog(`rotini\.web: generation ready: generation=1\b`, 1, startTimeout)
	ld := startLoad(t, r.url, newConn, 4, 2*time.Minute)
	sock := r.sock
	dial := func() (net.Conn, error) { return net.DialTimeout("unix", sock, 10*time.Second) }

	// Clients that connect and never send a byte: more than the server
	// serves at once. They are held open while the other attacks run.
	var idle []net.Conn
	for range 80 {
		c, err := dial()
		if err != nil {
			t.Fatalf("idle client: %v", err)
		}
		idle = append(idle, c)
	}
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, 500)
	// Raw bytes, and a request line of garbage.
	for _, junk := range [][]byte{bytes.Repeat([]byte{0, 0xff, '\r', '\n'}, 4096), []byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), []byte("GET /v1/status HTTP/9.9\r\n\r\n"), []byte("POST /v1/reload?app=%ZZ HTTP/1.1\r\nHost: x\r\n\r\n")} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dial()
			if err != nil {
				errs <- fmt.Errorf("raw: %w", err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			c.Write(junk)
			io.Copy(io.Discard, c) // the server answers 400 or hangs up
		}()
	}
	// A 10 MB body.
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := dial()
		if err != nil {
			errs <- fmt.Errorf("10 MB body: %w", err)
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		const size = 10 << 20
		fmt.Fprintf(c, "POST /v1/reload HTTP/1.1\r\nHost: rotini\r\nContent-Length: %d\r\n\r\n", size)
		c.Write(make([]byte, size)) // fails once the server gives up reading
		b, _ := io.ReadAll(c)
		if len(b) > 0 && !bytes.HasPrefix(b, []byte("HTTP/1.1 413 ")) {
			errs <- fmt.Errorf("10 MB body: answer %.100q, want 413", b)
		}
	}()
	// 200 clients at once: they queue behind the connection limit and
	// all get their answer.
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DialContext:       func(context.Context, string, string) (net.Conn, error) { return dial() },
		DisableKeepAlives: true,
	}}
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := hc.Get("http://rotini/v1/status")
			if err != nil {
				errs <- fmt.Errorf("concurrent client: %w", err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				errs <- fmt.Errorf("concurrent client: %s", resp.Status)
			}
		}()
	}
	t0 := time.Now()
	wg.Wait()
	t.Logf("every attacker answered or cut off within %s", time.Since(t0).Round(time.Millisecond))
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// The idle clients were cut off by the server.
	for i, c := range idle {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			t.Errorf("idle client %d still connected: %v", i, err)
			break
		}
	}
	if res := r.ctl("status"); res.code != 0 || !strings.Contains(res.stdout, "web: generation 1 serving, ready") {
		t.Errorf("status after the garbage: %s", res)
	}
	if !ld.waitRequests(20, reloadTimeout) {
		t.Errorf("HTTP traffic stalled")
	}
	s := ld.stop()
	requireNoFailures(t, s)
	if !r.running() {
		t.Fatalf("rotini exited")
	}
	t.Logf("load during the garbage: %s", s)
}
