package test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
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
