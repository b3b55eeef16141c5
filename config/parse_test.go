package config

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hashicorp/hcl/v2"
	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/watch"
)

// expectedDiag is a diagnostic as a fixture states it: on its line, an
// inline comment `# ERROR: <summary>` or `# WARNING: <summary>`.
type expectedDiag struct {
	Line     int
	Severity string
	Summary  string
}

var marker = regexp.MustCompile(`#\s*(ERROR|WARNING):\s*(.+?)\s*$`)

func expectedDiags(t *testing.T, src []byte) []expectedDiag {
	t.Helper()
	var want []expectedDiag
	sc := bufio.NewScanner(bytes.NewReader(src))
	for line := 1; sc.Scan(); line++ {
		if m := marker.FindStringSubmatch(sc.Text()); m != nil {
			want = append(want, expectedDiag{Line: line, Severity: m[1], Summary: m[2]})
		}
	}
	return want
}

func gotDiags(diags hcl.Diagnostics) []expectedDiag {
	var got []expectedDiag
	for _, d := range diags {
		e := expectedDiag{Severity: "ERROR", Summary: d.Summary}
		if d.Severity == hcl.DiagWarning {
			e.Severity = "WARNING"
		}
		if d.Subject != nil {
			e.Line = d.Subject.Start.Line
		}
		got = append(got, e)
	}
	return got
}

func sortDiags(a, b expectedDiag) int {
	if a.Line != b.Line {
		return a.Line - b.Line
	}
	return strings.Compare(a.Severity+a.Summary, b.Severity+b.Summary)
}

// Each fixture in testdata/invalid marks the diagnostics it must produce;
// every one must be reported, and nothing else.
func TestInvalidFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.hcl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, name := range files {
		t.Run(filepath.Base(name), func(t *testing.T) {
			src, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			want := expectedDiags(t, src)
			cfg, diags := Parse(src, name)
			if cfg != nil {
				t.Errorf("Parse returned a config along with errors")
			}
			got := gotDiags(diags)
			slices.SortFunc(want, sortDiags)
			slices.SortFunc(got, sortDiags)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s\nall diagnostics:\n%s", diff, diags.Error())
			}
		})
	}
}

func TestValidFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/valid/*.hcl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, name := range files {
		t.Run(filepath.Base(name), func(t *testing.T) {
			cfg, diags := Load(name)
			if len(diags) > 0 {
				var buf bytes.Buffer
				WriteDiagnostics(&buf, nil, diags)
				t.Fatalf("unexpected diagnostics:\n%s", buf.String())
			}
			if cfg == nil {
				t.Fatal("no config")
			}
		})
	}
}

// The file that `make run` runs and that documents every field is valid.
func TestExampleConfig(t *testing.T) {
	cfg, diags := Load("../config.hcl.example")
	if len(diags) > 0 {
		var buf bytes.Buffer
		WriteDiagnostics(&buf, nil, diags)
		t.Fatalf("unexpected diagnostics:\n%s", buf.String())
	}
	if got, want := cfg.Summary(), "config OK: 1 listener, 1 app (web: 2 workers)"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
}

// ignoreExprs leaves the unevaluated expressions to TestSpawn*.
var ignoreExprs = cmpopts.IgnoreFields(App{}, "Command", "Env", "Dir")

func TestFull(t *testing.T) {
	cfg, diags := Load("testdata/valid/full.hcl")
	if len(diags) > 0 {
		t.Fatalf("unexpected diagnostics: %s", diags.Error())
	}
	want := &Config{
		Filename: "testdata/valid/full.hcl",
		Listeners: []Listener{
			{Name: "http", Network: "tcp", Address: "0.0.0.0:8000", Backlog: 1024, Steer: true},
			{Name: "admin", Network: "tcp6", Address: "[::1]:9000", Backlog: 64, Steer: true},
			{Name: "sock", Network: "unix", Address: "/run/app.sock", Backlog: 1024, Mode: 0o660, Owner: "www", Group: "www", Steer: true},
		},
		Apps: []App{
			{
				Name:                "web",
				Workers:             4,
				Listen:              []string{"http", "admin"},
				User:                "app",
				Group:               "app",
				StopSignal:          unix.SIGQUIT,
				StopTimeout:         25 * time.Second,
				Reload:              ReloadRotate,
				ReloadSignal:        unix.SIGUSR2,
				BeforeReload:        []string{"python", "-m", "compileall", "."},
				BeforeReloadTimeout: 2 * time.Minute,
				RestartBackoff:      500 * time.Millisecond,
				RestartBackoffMax:   time.Minute,
				CrashLimit:          10,
				CrashWindow:         5 * time.Minute,
				Batch:               2,
				LogPrefix:           true,
				Ready: Ready{
					Notify:    true,
					HTTP:      "/healthz",
					TCP:       "127.0.0.1:8000",
					Exec:      []string{"./check"},
					Timeout:   30 * time.Second,
					MinUptime: 2 * time.Second,
					Interval:  250 * time.Millisecond,
				},
				Watch: Watch{
					Paths:     []string{"/srv/app"},
					Exclude:   []string{".git/**", "**/__pycache__/**"},
					Include:   []string{"**/*.py"},
					Debounce:  time.Second,
					MaxWait:   10 * time.Second,
					Trigger:   "/srv/app/restart.txt",
					Poll:      watch.PollInterval,
					PollEvery: 2 * time.Second,
				},
			},
			{
				// Every default.
				Name:                "jobs",
				Workers:             1,
				StopSignal:          unix.SIGTERM,
				StopTimeout:         10 * time.Second,
				Reload:              ReloadSignal,
				ReloadSignal:        unix.SIGHUP,
				BeforeReloadTimeout: time.Minute,
				RestartBackoff:      time.Second,
				RestartBackoffMax:   30 * time.Second,
				CrashLimit:          5,
				CrashWindow:         time.Minute,
				Ready:               Ready{Timeout: time.Minute, MinUptime: time.Second, Interval: 100 * time.Millisecond},
				Watch:               Watch{Debounce: 500 * time.Millisecond, MaxWait: 5 * time.Second, Poll: watch.PollAuto},
			},
			{
				Name:                "nginx",
				Workers:             1,
				Listen:              []string{"sock"},
				StopSignal:          unix.SIGQUIT,
				StopTimeout:         10 * time.Second,
				Reload:              ReloadSignal,
				ReloadSignal:        unix.SIGHUP,
				BeforeReloadTimeout: time.Minute,
				RestartBackoff:      time.Second,
				RestartBackoffMax:   30 * time.Second,
				CrashLimit:          0,
				CrashWindow:         time.Minute,
				Ready:               Ready{Timeout: time.Minute, MinUptime: time.Second, Interval: 100 * time.Millisecond},
				Watch:               Watch{Paths: []string{"/etc/nginx"}, Debounce: 500 * time.Millisecond, MaxWait: 5 * time.Second, Poll: watch.PollOff},
			},
		},
		Log:     Log{Level: "debug", Format: "json"},
		Control: Control{Socket: "/tmp/rotini.sock", Mode: 0o660, Group: "ops"},
		Rewrite: map[unix.Signal]unix.Signal{unix.SIGTERM: unix.SIGQUIT, unix.SIGWINCH: 0},
	}
	if diff := cmp.Diff(want, cfg, ignoreExprs); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	if got, want := cfg.Summary(), "config OK: 3 listeners, 3 apps (web: 4 workers, jobs: 1 worker, nginx: 1 worker)"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
}

// A file without any block other than an app gets every default.
func TestDefaults(t *testing.T) {
	cfg, diags := Parse([]byte(`app "a" { command = ["true"] }`), "min.hcl")
	if len(diags) > 0 {
		t.Fatalf("unexpected diagnostics: %s", diags.Error())
	}
	want := Config{
		Log:     Log{Level: "info", Format: "text"},
		Control: Control{Socket: DefaultControlSocket, Mode: 0o600},
	}
	if diff := cmp.Diff(want, *cfg, cmpopts.IgnoreFields(Config{}, "Filename", "Apps")); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

func TestLoadMissingFile(t *testing.T) {
	cfg, diags := Load(filepath.Join(t.TempDir(), "nope.hcl"))
	if cfg != nil || !diags.HasErrors() || diags[0].Summary != "Failed to read config file" {
		t.Fatalf("Load = %v, %v", cfg, diags)
	}
}

func TestProxy(t *testing.T) {
	cfg, diags := Load("testdata/valid/proxy.hcl")
	if len(diags) > 0 {
		t.Fatalf("unexpected diagnostics: %s", diags.Error())
	}
	want := []*Proxy{
		{ProxyProtocol: "v2", PortMin: 20000, PortMax: 20999, MaxConnections: 500, IdleTimeout: 30 * time.Second, DialTimeout: time.Second},
		{MaxConnections: 10000, IdleTimeout: 5 * time.Minute, DialTimeout: 5 * time.Second},
	}
	var got []*Proxy
	for _, a := range cfg.Apps {
		got = append(got, a.Proxy)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("proxy blocks (-want +got):\n%s", diff)
	}
	if p := cfg.Apps[0].Proxy; p == nil || cfg.Apps[0].Reload != ReloadRotate {
		t.Errorf("an app with listeners and a proxy block rotates: got reload %q", cfg.Apps[0].Reload)
	}
	cfg, diags = Parse([]byte(`listen "l" { address = "tcp://:1" }
app "a" {
  command = ["x"]
  listen = ["l"]
}`), "noproxy.hcl")
	if diags.HasErrors() || cfg.Apps[0].Proxy != nil {
		t.Errorf("an app without a proxy block: Proxy = %+v, %v", cfg.Apps[0].Proxy, diags)
	}
}

func TestPortRange(t *testing.T) {
	for s, want := range map[string][2]int{
		"20000-20999": {20000, 20999}, "1-65535": {1, 65535}, "8000": {8000, 8000}, " 1 - 2 ": {1, 2},
		"0-10": {}, "10-9": {}, "1-65536": {}, "a-b": {}, "": {}, "-": {}, "1-2-3": {},
	} {
		lo, hi, ok := parsePortRange(s)
		if ok != (want != [2]int{}) || [2]int{lo, hi} != want {
			t.Errorf("parsePortRange(%q) = %d, %d, %v; want %v", s, lo, hi, ok, want)
		}
	}
}

// The proxy block that config.hcl.example shows commented out is valid as
// written once uncommented, and states the defaults.
func TestExampleProxyBlock(t *testing.T) {
	src, err := os.ReadFile("../config.hcl.example")
	if err != nil {
		t.Fatal(err)
	}
	var block []string
	for _, line := range strings.Split(string(src), "\n") {
		l := strings.TrimPrefix(strings.TrimSpace(line), "# ")
		if strings.HasPrefix(l, "proxy {") || len(block) > 0 {
			block = append(block, l)
			if l == "}" {
				break
			}
		}
	}
	if len(block) == 0 {
		t.Fatal("no commented proxy block in config.hcl.example")
	}
	cfg, diags := Parse([]byte(`listen "http" { address = "tcp://127.0.0.1:8000" }
app "web" {
  command = ["./server"]
  listen  = ["http"]
  `+strings.Join(block, "\n")+"\n}\n"), "example-proxy.hcl")
	if diags.HasErrors() {
		t.Fatalf("the example's proxy block: %s", diags.Error())
	}
	if diff := cmp.Diff(&Proxy{MaxConnections: DefaultMaxConnections, IdleTimeout: DefaultIdleTimeout, DialTimeout: DefaultDialTimeout}, cfg.Apps[0].Proxy); diff != "" {
		t.Errorf("the example's proxy block is not at the defaults (-want +got):\n%s", diff)
	}
}
