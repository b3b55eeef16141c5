package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rotini-dev/rotini/signame"
)

// ran is what one `rotini …` printed and its exit code.
type ran struct {
	code           int
	stdout, stderr string
}

// now is the clock of the status view in tests.
var now = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// isolate keeps the environment of the test process out of the verbs.
func isolate(t *testing.T) {
	t.Setenv("ROTINI_CONTROL", "")
	t.Setenv("ROTINI_CONFIG", "")
	t.Setenv("ROTINI_HOLD", "")
}

// rotini runs the CLI as `rotini args…` would, with no signals arriving.
func rotini(t *testing.T, args ...string) ran {
	t.Helper()
	return rotiniWith(t, &CLI{}, args...)
}

func rotiniWith(t *testing.T, c *CLI, args ...string) ran {
	t.Helper()
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr, c.now = &out, &errb, func() time.Time { return now }
	if c.Version == "" {
		c.Version = "v1.2.3-test"
	}
	code := c.Run(args)
	return ran{code, out.String(), errb.String()}
}

// usageOut is what a usage error prints.
func usageOut(msg string) string { return "rotini: " + msg + "\nrotini: see `rotini help`\n" }

// Every usage error names what is wrong on stderr and exits 64, before
// anything starts: no process, no socket, no request.
func TestUsageErrors(t *testing.T) {
	isolate(t)
	t.Setenv("PATH", t.TempDir()) // no command is named like a verb
	_, badSignal := signame.Parse("NOPE")
	for _, tt := range []struct {
		args []string
		msg  string
	}{
		{[]string{"statsu"}, "unknown verb statsu; did you mean status? (to run a command of that name: rotini -- statsu)"},
		{[]string{"relaod", "web"}, "unknown verb relaod; did you mean reload? (to run a command of that name: rotini -- relaod)"},
		{nil, "no command given: use `rotini -- command args…` or `rotini -c config.hcl`"},
		{[]string{"run"}, "no command given: use `rotini -- command args…` or `rotini -c config.hcl`"},
		{[]string{"--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"--stop-signal", "NOPE", "--", "true"}, "bad --stop-signal: " + badSignal.Error()},
		{[]string{"--stop-timeout", "-1s", "--", "true"}, "bad --stop-timeout -1s: must not be negative (0 sends SIGKILL right after the stop signal)"},
		{[]string{"--rewrite", "TERM", "--", "true"}, `bad --rewrite "TERM": want FROM:TO, e.g. TERM:QUIT or 15:3 (TO=0 drops)`},
		{[]string{"--rewrite", "NOPE:TERM", "--", "true"}, `bad --rewrite "NOPE:TERM": ` + badSignal.Error()},
		{[]string{"--rewrite", "TERM:QUIT", "--", "true"}, "rewrite of TERM has no effect: rotini does not forward TERM, it means stop; to choose the signal a stop sends, use --stop-signal"},
		{[]string{"--log-level", "loud", "--", "true"}, `unknown log level "loud" (want trace, debug, info, warn or error)`},
		{[]string{"--log-format", "xml", "--", "true"}, `unknown log format "xml" (want text or json)`},
		{[]string{"-c", "rotini.hcl", "--", "true"}, "give either a config file (-c) or a command after --, not both"},
		{[]string{"check"}, "check: no file given (and ROTINI_CONFIG is not set)"},
		{[]string{"check", "a.hcl", "b.hcl"}, "check takes one file, got 2 arguments"},
		{[]string{"reload", "--wait", "--timeout", "0s"}, "--timeout must be above 0, not 0s"},
		{[]string{"reload", "--bogus"}, "flag provided but not defined: -bogus (usage: rotini reload [APP…] [--wait] [--timeout D] [--control PATH])"},
		{[]string{"reload", "--timeout", "soon"}, `invalid value "soon" for flag -timeout: parse error (usage: rotini reload [APP…] [--wait] [--timeout D] [--control PATH])`},
		{[]string{"status", "web"}, `status takes no operand, got "web" (usage: rotini status [--json] [--control PATH])`},
		{[]string{"status", "--yaml"}, "flag provided but not defined: -yaml (usage: rotini status [--json] [--control PATH])"},
		{[]string{"scale"}, "scale takes one operand, [APP=]N (usage: rotini scale [APP=]N [--control PATH])"},
		{[]string{"scale", "web=1", "api=2"}, "scale takes one operand, [APP=]N (usage: rotini scale [APP=]N [--control PATH])"},
		{[]string{"scale", "web=0"}, `scale: want N or APP=N with N a whole number of at least 1, not "web=0"`},
		{[]string{"scale", "=3"}, `scale: want N or APP=N with N a whole number of at least 1, not "=3"`},
		{[]string{"scale", "many"}, `scale: want N or APP=N with N a whole number of at least 1, not "many"`},
		{[]string{"health", "web"}, `health takes no operand, got "web" (usage: rotini health [--control PATH])`},
		{[]string{"stop", "now"}, `stop takes no operand, got "now" (usage: rotini stop [--control PATH])`},
		{[]string{"hold", "extra"}, `hold takes no arguments, got ["extra"]`},
		{[]string{"hold", "--log-level", "loud"}, `unknown log level "loud" (want trace, debug, info, warn or error)`},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := rotini(t, tt.args...)
			if r.code != ExitUsage || r.stderr != usageOut(tt.msg) || r.stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit %d, stderr:\n%s", r.code, r.stdout, r.stderr, ExitUsage, usageOut(tt.msg))
			}
		})
	}
}

// hold's flags are parsed as the flag package does, usage included.
func TestHoldBadFlag(t *testing.T) {
	isolate(t)
	r := rotini(t, "hold", "--bogus")
	if r.code != ExitUsage || !strings.HasPrefix(r.stderr, "flag provided but not defined: -bogus\nUsage of hold:\n") {
		t.Errorf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

// A command name that is a verb's typo but names a real command runs it:
// a real command always wins over a guess.
func TestMistypedVerbThatIsACommand(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "statsu"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	if v := mistypedVerb("statsu"); v != "" {
		t.Errorf("mistypedVerb(statsu) = %q with statsu on PATH, want none", v)
	}
	t.Setenv("PATH", t.TempDir())
	for name, want := range map[string]string{"statsu": "status", "heath": "health", "-x": "", "./statsu": "", "webserver": ""} {
		if got := mistypedVerb(name); got != want {
			t.Errorf("mistypedVerb(%q) = %q, want %q", name, got, want)
		}
	}
}

// A command that cannot be run exits as a shell would: 127 not found, 126
// found but not executable.
func TestCommandNotRunnable(t *testing.T) {
	isolate(t)
	missing := filepath.Join(t.TempDir(), "no-such-command")
	if r := rotini(t, "--", missing); r.code != ExitNotFound || r.stderr != "rotini: "+missing+": command not found\n" {
		t.Errorf("missing command: exit %d, stderr %q", r.code, r.stderr)
	}
	dir := t.TempDir()
	if r := rotini(t, "--", dir); r.code != ExitNotExecutable || !strings.HasPrefix(r.stderr, "rotini: "+dir+": not executable: ") {
		t.Errorf("a directory: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestVersionAndHelp(t *testing.T) {
	isolate(t)
	if r := rotini(t, "version"); r.code != ExitOK || r.stdout != "rotini v1.2.3-test\n" || r.stderr != "" {
		t.Errorf("version: %+v", r)
	}
	for _, h := range []string{"help", "-h", "--help"} {
		r := rotini(t, h)
		if r.code != ExitOK || !strings.HasPrefix(r.stdout, "usage:\n  rotini [run] [flags]") || !strings.Contains(r.stdout, "-stop-signal signal") {
			t.Errorf("%s: exit %d, stdout:\n%s", h, r.code, r.stdout)
		}
	}
	r := rotini(t, "reload", "-h")
	if r.code != ExitOK || !strings.HasPrefix(r.stdout, "usage: rotini reload [APP…] [--wait] [--timeout D] [--control PATH]\n\nflags:\n") || !strings.Contains(r.stdout, "-wait") {
		t.Errorf("reload -h: exit %d, stdout:\n%s", r.code, r.stdout)
	}
}

// `rotini check` reports a valid file in one line, an invalid one with
// file:line diagnostics and exit 78.
func TestCheck(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.hcl")
	os.WriteFile(good, []byte(`listen "http" { address = "tcp://127.0.0.1:0" }
app "web" {
  command = ["true"]
  listen  = ["http"]
}
`), 0o644)
	r := rotini(t, "check", good)
	if r.code != ExitOK || !strings.Contains(r.stdout, "web") || r.stderr != "" {
		t.Errorf("a valid file: %+v", r)
	}
	bad := filepath.Join(dir, "bad.hcl")
	os.WriteFile(bad, []byte("app \"web\" {\n  workers = \"many\"\n}\n"), 0o644)
	r = rotini(t, "check", bad)
	if r.code != ExitConfig || !strings.Contains(r.stderr, "bad.hcl:2,") || r.stdout != "" {
		t.Errorf("an invalid file: %+v", r)
	}
	t.Setenv("ROTINI_CONFIG", good)
	if r := rotini(t, "check"); r.code != ExitOK {
		t.Errorf("check with ROTINI_CONFIG: %+v", r)
	}
}
