package test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rotini-dev/rotini/procfs"
)

// Tests that rotini does what its configuration and messages say: no
// setting parsed and then ignored, no change dropped in silence, no message
// that hides its cause.

// batch = 2 starts a generation of 4 workers two at a time: workers 2 and 3
// start only once 0 and 1 are ready, at start and on a reload.
func TestBatchStartsWorkersInGroups(t *testing.T) {
	port := freeLoopbackPort(t)
	r := startRig(t, port, rigConfig(port, appSpec{
		Command: testappServe("--notify"),
		Workers: 4,
		Extra:   []string{"batch = 2"},
	}))
	r.waitLog(`rotini\.web: generation ready: generation=1\b`, 1, startTimeout)
	if _, ok := r.hupAndWait(1); !ok {
		t.Fatal("reload failed")
	}
	for gen := 1; gen <= 2; gen++ {
		line := func(what string, worker int) int {
			_, i := r.waitLog(fmt.Sprintf(`rotini\.web: worker %s: generation=%d worker=%d\b`, what, gen, worker), 1, startTimeout)
			return i
		}
		lastReadyOfFirst := max(line("ready", 0), line("ready", 1))
		for _, w := range []int{2, 3} {
			if started := line("started", w); started < lastReadyOfFirst {
				t.Errorf("generation %d: worker %d started (log line %d) before workers 0 and 1 were ready (line %d)", gen, w, started, lastReadyOfFirst)
			}
		}
		for _, w := range []int{0, 1} {
			if started, firstOfSecond := line("started", w), min(line("started", 2), line("started", 3)); started > firstOfSecond {
				t.Errorf("generation %d: worker %d started after the second batch", gen, w)
			}
		}
	}
	if n := r.countLog(`rotini\.web: batch starting: generation=2 workers=2-3 of=4`); n != 1 {
		t.Errorf("want one log line for the second batch of generation 2, got %d", n)
	}
}

// --log-format text beats a config's log { format = "json" }, as every other
// flag beats its config twin; without the flag, the config's json holds.
func TestLogFormatFlagBeatsConfig(t *testing.T) {
	for _, tt := range []struct {
		flags []string
		json  bool
	}{
		{flags: []string{"--log-format", "text"}, json: false},
		{flags: nil, json: true},
	} {
		t.Run(fmt.Sprint(tt.flags), func(t *testing.T) {
			port := freeLoopbackPort(t)
			dir := t.TempDir()
			cfg := filepath.Join(dir, "rotini.hcl")
			text := rigConfig(port, appSpec{Command: testappServe("--notify")}) + "\nlog {\n  format = \"json\"\n}\n"
			if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			p := rotini(t, subreaper, append(tt.flags, "--control", filepath.Join(dir, "ctl.sock"), "-c", cfg)...)
			line := p.waitStderrLine(t, regexp.MustCompile(`generation ready`), startTimeout)
			if isJSON := strings.HasPrefix(line, "{"); isJSON != tt.json {
				t.Errorf("log line %q: json %t, want %t", line, isJSON, tt.json)
			}
			p.signal(t, syscall.SIGTERM)
			p.wait(t, stopTimeout)
		})
	}
}

// A reload that meets changes it cannot apply while rotini runs (control,
// signals, log format, watch) names each in the log and in `reload --wait`;
// a changed log level is applied.
func TestReloadNamesWhatItDoesNotApply(t *testing.T) {
	r := startControlRig(t)
	r.waitLog(`rotini\.web: generation ready: generation=1\b`, 1, startTimeout)
	if n := r.countLog(`\[DEBUG\]`); n != 0 {
		t.Fatalf("debug lines at level info: the test proves nothing")
	}
	watched := t.TempDir()
	r.writeConfig(rigConfig(r.port, appSpec{
		Command: testappServe("--notify"),
		Extra:   []string{fmt.Sprintf("watch {\n    paths = [%q]\n  }", watched)},
	}) + fmt.Sprintf(`
log {
  level  = "debug"
  format = "json"
}
control {
  socket = %q
}
signals {
  rewrite = { USR1 = "USR2" }
}
`, filepath.Join(t.TempDir(), "elsewhere.sock")))

	res := r.ctl("reload", "--wait")
	if res.code != 0 {
		t.Fatalf("reload --wait: %s", res)
	}
	for _, what := range []string{"control block", `signals { rewrite }`, "log { format }", "watch block of app web"} {
		want := "rotini: not applied: " + what + " changed; "
		if !strings.Contains(res.stdout, want) {
			t.Errorf("reload --wait does not say %q:\n%s", want, res)
		}
		if r.countLog(`reload: change not applied: what="`+regexp.QuoteMeta(what)+`"`) != 1 {
			t.Errorf("the log does not say that %s was not applied", what)
		}
	}
	if strings.Contains(res.stdout, "log { level }") {
		t.Errorf("reload --wait says the log level was not applied:\n%s", res)
	}
	// Applied: rotini now logs at debug level (a status request is one).
	r.ctl("status")
	r.waitLog(`\[DEBUG\]`, 1, reloadTimeout)
}

// A reload refused because the file cannot be used names the generation
// that goes on serving (not "generation 0"), and tells an unreadable file
// from an invalid one.
func TestReloadRefusedSaysWhyAndWhatServes(t *testing.T) {
	r := startControlRig(t)
	r.waitLog(`rotini\.web: generation ready: generation=1\b`, 1, startTimeout)
	good, err := os.ReadFile(r.cfgPath)
	if err != nil {
		t.Fatal(err)
	}

	r.writeConfig(string(good) + "\napp \"broken\" {\n  command = [\n")
	res := r.ctl("reload", "--wait")
	if res.code != 1 || !strings.Contains(res.stdout, "web: failed: config invalid: ") || !strings.Contains(res.stdout, "; generation 1 still serving\n") {
		t.Errorf("reload --wait of an invalid config:\n%s", res)
	}

	// Unreadable rather than invalid: a directory where the file was.
	if err := os.Remove(r.cfgPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(r.cfgPath, 0o755); err != nil {
		t.Fatal(err)
	}
	res = r.ctl("reload", "--wait")
	if res.code != 1 || !strings.Contains(res.stdout, "web: failed: cannot read config file "+r.cfgPath+": ") || !strings.Contains(res.stdout, "; generation 1 still serving\n") {
		t.Errorf("reload --wait of an unreadable config:\n%s", res)
	}
	r.waitLog(`cannot read config file: file=`, 1, reloadTimeout)
	if n := r.countLog(`rotini: config invalid: file=`); n != 1 {
		t.Errorf("%d log lines say config invalid, want 1 (the invalid file, not the unreadable one)", n)
	}
	if err := os.Remove(r.cfgPath); err != nil {
		t.Fatal(err)
	}
	r.writeConfig(string(good))
}

// A mistyped verb is a usage error naming the verb, not a command that ends
// in 127; `rotini -- NAME` still runs NAME, and a real command close to a
// verb (stat, for status) still runs.
func TestMistypedVerbSuggestsTheVerb(t *testing.T) {
	res := rotiniCLI(t, nil, "statsu")
	if res.code != 64 || !strings.Contains(res.stderr, "rotini: unknown verb statsu; did you mean status?") {
		t.Errorf("rotini statsu: %s", res)
	}
	if res := rotiniCLI(t, nil, "--", "statsu"); res.code != 127 || !strings.Contains(res.stderr, "statsu: command not found") {
		t.Errorf("rotini -- statsu: %s", res)
	}
	if res := rotiniCLI(t, nil, "stat", "/"); res.code != 0 {
		t.Errorf("rotini stat / (a real command close to a verb): %s", res)
	}
	if res := rotiniCLI(t, nil, "helth"); res.code != 64 || !strings.Contains(res.stderr, "did you mean health?") {
		t.Errorf("rotini helth: %s", res)
	}
}

// --stop-timeout refuses a negative duration, as the config's stop_timeout
// does, instead of SIGKILLing at once.
func TestNegativeStopTimeoutIsAUsageError(t *testing.T) {
	res := rotiniCLI(t, nil, "--stop-timeout", "-1s", "--", "true")
	if res.code != 64 || !strings.Contains(res.stderr, "bad --stop-timeout -1s: must not be negative") {
		t.Errorf("rotini --stop-timeout -1s -- true: %s", res)
	}
}

// `rotini check` warns, with file:line, about an env.NAME that is not set
// where it runs: it may be set where rotini will run, so the file is not
// refused.
func TestCheckWarnsAboutUnsetEnv(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rotini.hcl")
	cfg := "app \"web\" {\n  command = [\"server\", \"${env.ROTINI_TEST_UNSET}\"]\n}\n"
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	res := rotiniCLI(t, nil, "check", p)
	if res.code != 0 || !strings.Contains(res.stderr, p+":2,") || !strings.Contains(res.stderr, "Warning: Environment variable not set") ||
		!strings.Contains(res.stderr, "env.ROTINI_TEST_UNSET is not set here") {
		t.Errorf("check of a config that reads an unset variable: %s", res)
	}
	if res := rotiniCLI(t, []string{"ROTINI_TEST_UNSET=1"}, "check", p); res.code != 0 || res.stderr != "" {
		t.Errorf("check with the variable set: %s", res)
	}
}

// A worker that cannot be started at all — a missing command, a dangling
// `current` symlink, an unset env.NAME — is reported with its cause in
// `reload --wait` and `status`, not as "worker 0 (pid 0) … exit status 127".
func TestStartFailureNamesItsCause(t *testing.T) {
	r := startControlRig(t)
	r.waitLog(`rotini\.web: generation ready: generation=1\b`, 1, startTimeout)
	releases := t.TempDir()
	current := filepath.Join(releases, "current")
	if err := os.Symlink(filepath.Join(releases, "42"), current); err != nil {
		t.Fatal(err)
	}
	for i, tt := range []struct {
		name  string
		spec  appSpec
		cause string
	}{
		{"missing command", appSpec{Command: []string{"rotini-test-no-such-command"}},
			"could not start: command rotini-test-no-such-command: executable file not found in $PATH"},
		{"dangling current", appSpec{Command: testappServe("--notify"), Extra: []string{"dir = " + hclString(current)}},
			"could not start: dir " + current + " is a symlink to " + filepath.Join(releases, "42") + ", which does not exist"},
		{"unset env", appSpec{Command: append(testappServe("--notify"), "${env.ROTINI_TEST_UNSET}")},
			"could not start: evaluate command: app web: " + r.cfgPath + ":6,"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r.writeConfig(rigConfig(r.port, tt.spec))
			res := r.ctl("reload", "--wait")
			if res.code != 1 || !strings.Contains(res.stdout, tt.cause) || !strings.Contains(res.stderr, tt.cause) || strings.Contains(res.stdout, "pid 0") {
				t.Errorf("reload --wait does not name the cause %q:\n%s", tt.cause, res)
			}
			if tt.name == "unset env" && !strings.Contains(res.stdout, "env.ROTINI_TEST_UNSET is not set in rotini's environment") {
				t.Errorf("reload --wait does not name the unset variable:\n%s", res)
			}
			st := r.ctl("status")
			if !strings.Contains(st.stdout, tt.cause) || !strings.Contains(st.stdout, fmt.Sprintf("could not start: ")) {
				t.Errorf("status does not name the cause %q:\n%s", tt.cause, st)
			}
			if gen, _ := r.get(); gen != "1" {
				t.Errorf("reload %d: generation %s answers, want 1", i+1, gen)
			}
		})
	}
}

// dialIdle opens n connections to the unix socket at path that never send
// a byte; they are closed at the end of the test.
func dialIdle(t *testing.T, path string, n int) []net.Conn {
	t.Helper()
	var conns []net.Conn
	for range n {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatalf("connection %d of %d: %v", len(conns)+1, n, err)
		}
		conns = append(conns, c)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	return conns
}

// 1,024 clients that connect to the control socket and send nothing do not
// keep `rotini health` waiting until the header timeout (5 s) frees their
// slots, 64 at a time (it did not answer within the CLI's 30 s): it answers
// while rotini still holds idle connections, that is before they were
// timed out.
func TestControlIdleConnectionsDoNotStarveHealth(t *testing.T) {
	r := startControlRig(t)
	r.waitLog(`rotini\.web: generation ready: generation=1\b`, 1, startTimeout)
	before := countFDs(r.p.target(t))
	dialIdle(t, r.sock, 1024)
	if res := r.ctl("health"); res.code != 0 || res.stdout != "ok\n" {
		t.Fatalf("health behind 1024 idle connections: %s", res)
	}
	if held := countFDs(r.p.target(t)) - before; held < 32 {
		t.Errorf("rotini holds %d idle connections when health answers: it waited for them to time out", held)
	}
}

// Under a low open-files limit (ulimit -n 64), idle control connections
// cannot take the descriptors supervision needs: a crashed worker is
// restarted while 300 clients keep connecting and idling.
func TestCrashedWorkerRestartsUnderLowFDLimitAndIdleClients(t *testing.T) {
	port := freeLoopbackPort(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "rotini.hcl")
	if err := os.WriteFile(cfg, []byte(rigConfig(port, appSpec{Command: testappServe("--notify"), Workers: 1})), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "ctl.sock")
	p := start(t, procOptions{}, "sh", "-c", `ulimit -n 64 && exec "$@"`, "sh", rotiniBin, "--control", sock, "-c", cfg)
	r := &rig{t: t, p: p, cfgPath: cfg, port: port}
	t.Cleanup(r.cleanup)
	r.waitLog(controlListeningRE, 1, startTimeout)
	line, _ := r.waitLog(`rotini\.web: worker ready: generation=1 worker=0\b`, 1, startTimeout)
	pid, err := strconv.Atoi(logField(line, "pid"))
	if err != nil {
		t.Fatal(err)
	}

	// 300 idle clients, re-dialled as the server closes them, until the
	// end of the test.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := net.Dial("unix", sock)
				if err == nil {
					go func() { <-stop; c.Close() }()
					io.Copy(io.Discard, c) // until the server closes it
					c.Close()
				}
				select {
				case <-stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	eventually(t, waitDeadline, "rotini to hold idle control connections", func() (bool, string) {
		n := countFDs(p.target(t))
		return n > 20, fmt.Sprintf("%d fds open", n)
	})

	syscall.Kill(pid, syscall.SIGKILL)
	r.waitLog(`rotini\.web: worker started: generation=1 worker=0\b`, 2, startTimeout)
	r.waitLog(`rotini\.web: worker ready: generation=1 worker=0\b`, 2, startTimeout)
	if n := r.countLog(`cannot start worker`); n != 0 {
		t.Errorf("%d failed worker starts under the fd limit", n)
	}
	if res := rotiniCLI(t, nil, "health", "--control", sock); res.code != 0 {
		t.Errorf("health with idle clients under the fd limit: %s", res)
	}
}

func countFDs(pid int) int {
	fds, _ := procfs.FDs(pid)
	return len(fds)
}

// A control socket whose file was deleted is made again on HUP, and the
// verbs reach rotini through it.
func TestDeletedControlSocketIsRecreatedOnHUP(t *testing.T) {
	r := startControlRig(t)
	r.waitLog(`rotini\.web: generation ready: generation=1\b`, 1, startTimeout)
	if err := os.Remove(r.sock); err != nil {
		t.Fatal(err)
	}
	if res := r.ctl("health"); res.code != 1 || !strings.Contains(res.stderr, "cannot reach rotini") {
		t.Fatalf("health with the socket deleted: %s", res)
	}
	r.signal(syscall.SIGHUP)
	r.waitLog(`rotini\.control: socket file was removed or replaced; made it again: path=`+regexp.QuoteMeta(r.sock), 1, reloadTimeout)
	if res := r.ctl("health"); res.code != 0 || res.stdout != "ok\n" {
		t.Errorf("health after HUP: %s", res)
	}
	r.waitReload(1)
	r.stop()
	if _, err := os.Lstat(r.sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the re-created socket outlived rotini: %v", err)
	}
}

// log_prefix = true passes each worker's output through rotini, every line
// prefixed with app/generation/worker.
func TestLogPrefix(t *testing.T) {
	port := freeLoopbackPort(t)
	r := startRig(t, port, rigConfig(port, appSpec{
		Command: []string{"/bin/sh", "-c", `echo "to stderr" >&2; exec "$@"`, "sh", testappBin, "serve", "--notify"},
		Extra:   []string{"log_prefix = true"},
	}))
	r.waitLog(`rotini\.web: generation ready: generation=1\b`, 1, startTimeout)
	for _, w := range []string{"0", "1"} {
		r.waitOut(`^web/1/`+w+` \| listening 127\.0\.0\.1:`, 1, startTimeout)
		r.waitLog(`^web/1/`+w+` \| to stderr$`, 1, startTimeout)
	}
	if _, ok := r.hupAndWait(1); !ok {
		t.Fatal("reload failed")
	}
	r.waitOut(`^web/2/0 \| listening `, 1, startTimeout)
}

// A reader of rotini's stdout that stops reading while workers flood their
// prefixed output stalls neither rotini nor the workers: reloads and health
// go on, lines are dropped, and the count of dropped lines is written when
// the reader comes back.
func TestLogPrefixSlowReaderDropsLines(t *testing.T) {
	port := freeLoopbackPort(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "rotini.hcl")
	flood := `(yes flood | head -n 30000; exec sleep 1000) & exec "$@"`
	text := rigConfig(port, appSpec{
		Command: []string{"/bin/sh", "-c", flood, "sh", testappBin, "serve", "--notify"},
		Extra:   []string{"log_prefix = true"},
	})
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe() // rotini's stdout; nobody reads it for now
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	sock := filepath.Join(dir, "ctl.sock")
	p := start(t, procOptions{extraFiles: []*os.File{pw}}, "sh", "-c", `exec "$@" >&3 3>&-`, "sh", rotiniBin, "--control", sock, "-c", cfg)
	pw.Close()
	r := &rig{t: t, p: p, cfgPath: cfg, port: port, url: fmt.Sprintf("http://127.0.0.1:%d/", port)}
	t.Cleanup(r.cleanup)
	r.waitLog(`rotini\.web: generation ready: generation=1\b`, 1, startTimeout)
	if _, ok := r.hupAndWait(1); !ok {
		t.Fatal("reload failed while stdout was not read")
	}
	if res := rotiniCLI(t, nil, "health", "--control", sock); res.code != 0 {
		t.Errorf("health while stdout is not read: %s", res)
	}
	if gen, _ := r.get(); gen != "2" {
		t.Errorf("generation %s answers after the reload, want 2", gen)
	}

	// The reader comes back.
	found := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(pr)
		for s.Scan() {
			if strings.HasPrefix(s.Text(), "rotini: dropped ") {
				found <- s.Text()
				return
			}
		}
	}()
	select {
	case line := <-found:
		t.Logf("%s", line)
	case <-time.After(waitDeadline):
		t.Fatal("no count of dropped lines once stdout was read again")
	}
}
