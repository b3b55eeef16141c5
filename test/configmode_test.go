package test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests cover config-mode features one at a time, each with the
// contrast that shows the feature is what made the difference.

// TestBeforeReload: a failing before_reload aborts the reload and generation
// 1 keeps serving; once it passes, the reload goes through. It runs in the
// app's code directory.
func TestBeforeReload(t *testing.T) {
	t.Parallel()
	port := freeLoopbackPort(t)
	code := t.TempDir()
	r := startRig(t, port, rigConfig(port, appSpec{
		Command: testappServe("--notify"),
		Extra:   []string{`dir = ` + hclString(code), `before_reload = ["sh", "-c", "test -f release-ok"]`},
	}))
	r.waitLog(`generation ready: generation=1\b`, 1, reloadTimeout)

	line, ok := r.hupAndWait(1)
	if ok || !strings.Contains(line, "before_reload") {
		t.Fatalf("reload with a failing before_reload: %q, want a failure naming before_reload", line)
	}
	if gen, _ := r.get(); gen != "1" {
		t.Errorf("generation %s answers after the refused reload, want 1", gen)
	}
	if n := r.countLog(`generation starting: generation=2\b`); n != 0 {
		t.Errorf("generation 2 was started although before_reload failed")
	}

	if err := os.WriteFile(filepath.Join(code, "release-ok"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if line, ok := r.hupAndWait(2); !ok {
		t.Fatalf("reload with a passing before_reload failed: %s", line)
	}
	r.waitLog(`generation drained: generation=1\b`, 1, reloadTimeout)
	if gen, _ := r.get(); gen != "2" {
		t.Errorf("generation %s answers, want 2", gen)
	}
}

// TestReloadModeSignal: reload = "signal" forwards reload_signal to the
// serving workers and starts no generation. Without listeners, signal is
// the default and the signal is HUP.
func TestReloadModeSignal(t *testing.T) {
	t.Parallel()
	t.Run("explicit with listeners", func(t *testing.T) {
		t.Parallel()
		port := freeLoopbackPort(t)
		r := startRig(t, port, rigConfig(port, appSpec{
			Command: testappServe("--notify"), Workers: 1,
			Extra: []string{`reload = "signal"`, `reload_signal = "USR2"`},
		}))
		r.waitLog(`generation ready: generation=1\b`, 1, reloadTimeout)
		if line, ok := r.hupAndWait(1); !ok {
			t.Fatalf("signal reload: %s", line)
		}
		r.waitOut(`^signal USR2$`, 1, reloadTimeout)
		if gen, _ := r.get(); gen != "1" || r.countLog(`generation starting: generation=2\b`) != 0 {
			t.Errorf("a signal reload started a new generation (serving %s)", gen)
		}
	})
	t.Run("default without listeners", func(t *testing.T) {
		t.Parallel()
		cfg := filepath.Join(t.TempDir(), "rotini.hcl")
		src := fmt.Sprintf("app \"bg\" {\n  command = [%q, \"signals\"]\n  ready {\n    min_uptime = \"100ms\"\n  }\n}\n", testappBin)
		if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		p := rotini(t, subreaper, "--control", filepath.Join(t.TempDir(), "ctl.sock"), "-c", cfg)
		p.waitStderrLine(t, regexp.MustCompile(`generation ready`), waitDeadline)
		// min_uptime says nothing of the app's handlers: on a loaded
		// machine 100 ms can pass before it has installed them, and
		// the HUP would kill it. It prints "ready" once they are in.
		p.waitLine(t, "ready", waitDeadline)
		p.signal(t, syscall.SIGHUP)
		p.waitLine(t, "signal HUP", waitDeadline)
		p.signal(t, syscall.SIGTERM)
		if code := p.wait(t, waitDeadline); code != 0 {
			t.Errorf("rotini exited %d after TERM, want 0", code)
		}
	})
}

// TestReloadModeRestart: reload = "restart" stops generation 1 before it
// starts generation 2; meanwhile clients wait in the backlog of rotini's
// socket instead of being refused. The contrast is rotate mode, where
// generation 2 starts while 1 still serves.
func TestReloadModeRestart(t *testing.T) {
	t.Parallel()
	port := freeLoopbackPort(t)
	r := startRig(t, port, rigConfig(port, appSpec{
		Command: testappServe("--notify", "--boot-delay", "300ms"),
		Extra:   []string{`reload = "restart"`},
	}))
	r.waitLog(`generation ready: generation=1\b`, 1, reloadTimeout)
	l := startLoad(t, r.url, newConn, 4, time.Minute)
	if line, ok := r.hupAndWait(1); !ok {
		t.Fatalf("restart reload: %s", line)
	}
	l.waitGeneration(2, reloadTimeout)
	requireNoFailures(t, l.stop())
	_, drained := r.waitLog(`generation drained: generation=1\b`, 1, reloadTimeout)
	_, started := r.waitLog(`generation starting: generation=2\b`, 1, reloadTimeout)
	if drained > started {
		t.Errorf("restart mode started generation 2 (log line %d) before generation 1 drained (line %d)", started, drained)
	}
}

// TestUserDropsPrivileges: `user = "nobody"` runs the worker as nobody; the
// contrast is the same app without it, which runs as root like rotini.
func TestUserDropsPrivileges(t *testing.T) {
	t.Parallel()
	if os.Getuid() != 0 {
		t.Skip("needs root to drop privileges")
	}
	for _, tt := range []struct {
		name, extra, want string
	}{
		{name: "nobody", extra: `user = "nobody"`, want: "uid=65534"},
		{name: "no user (control)", extra: "", want: "uid=0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := filepath.Join(t.TempDir(), "rotini.hcl")
			src := fmt.Sprintf("app \"who\" {\n  command = [\"/bin/sh\", \"-c\", \"echo uid=$(id -u); exec sleep 1000\"]\n  %s\n}\n", tt.extra)
			if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			p := rotini(t, subreaper, "--control", filepath.Join(t.TempDir(), "ctl.sock"), "-c", cfg)
			if got := p.waitLine(t, "uid=", waitDeadline); got != tt.want {
				t.Errorf("worker says %q, want %q", got, tt.want)
			}
		})
	}
}

// TestUnixListener: a unix socket listener gets its mode, and the worker
// serves HTTP on it through LISTEN_FDS.
func TestUnixListener(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "app.sock")
	cfg := filepath.Join(t.TempDir(), "rotini.hcl")
	src := fmt.Sprintf(`
listen "sock" {
  address = "unix://%s"
  mode    = "0660"
}
app "web" {
  command = [%q, "serve", "--notify"]
  listen  = ["sock"]
  ready {
    notify = true
  }
}
`, sock, testappBin)
	if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	p := rotini(t, subreaper, "--control", filepath.Join(t.TempDir(), "ctl.sock"), "-c", cfg)
	p.waitStderrLine(t, regexp.MustCompile(`generation ready`), waitDeadline)
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket file mode %v, want a socket with 0660", fi.Mode())
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	resp, err := c.Get("http://app/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(string(body), "gen=1 ") {
		t.Errorf("answer over the unix socket: %q, want gen=1 …", body)
	}
}

// TestNotifyFromDescendant: READY=1 sent by a worker's child (here the
// worker is a shell that runs the server as a child, not by exec) is
// attributed to the worker by the sender's credentials. The server binds
// its own port: LISTEN_PID names the shell, so the child may not take
// rotini's sockets. The contrast is TestReloadBrokenRelease's hang case,
// where no READY=1 comes and the generation never becomes ready.
func TestNotifyFromDescendant(t *testing.T) {
	t.Parallel()
	port := freeLoopbackPort(t)
	cfg := filepath.Join(t.TempDir(), "rotini.hcl")
	src := fmt.Sprintf(`
app "web" {
  command = ["/bin/sh", "-c", "%s serve --notify --addr 127.0.0.1:%d; exit 0"]
  ready {
    notify     = true
    min_uptime = "0s"
    timeout    = "20s"
  }
}
`, testappBin, port)
	if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	p := rotini(t, subreaper, "--control", filepath.Join(t.TempDir(), "ctl.sock"), "-c", cfg)
	p.waitStderrLine(t, regexp.MustCompile(`generation ready: generation=1\b`), waitDeadline)
	if gen, _, err := getBody(fmt.Sprintf("http://127.0.0.1:%d/", port)); err != nil || gen != "1" {
		t.Errorf("the server answers gen=%q (%v), want 1", gen, err)
	}
}

// TestCheckVerb: `rotini check` prints a one-line summary for a valid file
// and, for an invalid one, file:line,col and the source line, exiting 78.
func TestCheckVerb(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.hcl")
	bad := filepath.Join(dir, "bad.hcl")
	os.WriteFile(good, []byte("app \"web\" {\n  command = [\"true\"]\n}\n"), 0o644)
	os.WriteFile(bad, []byte("app \"web\" {\n  command = [\"true\"]\n  stop_timeout = \"soon\"\n}\n"), 0o644)

	code, _, err := runToExit(rotiniBin, "check", good)
	if err != nil || code != 0 {
		t.Errorf("check of a valid file: exit %d (%v), want 0", code, err)
	}
	code, stderr, err := runToExit(rotiniBin, "check", bad)
	if err != nil {
		t.Fatal(err)
	}
	if code != 78 {
		t.Errorf("check of an invalid file: exit %d, want 78", code)
	}
	for _, want := range []string{bad + ":3,", `stop_timeout = "soon"`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("check's diagnostics lack %q:\n%s", want, stderr)
		}
	}
}
