package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rotini-dev/rotini/control"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the output of this code")

// statusFixtures are the answers of GET /v1/status that the golden tests
// show: testdata/status-NAME.json, as rotini sends it.
var statusFixtures = []string{
	"plain",    // an app with 2 workers, a watcher, a reload that went well
	"rotation", // a rotation in progress: two generations, a worker not started, a failed reload, a polled watch
	"holder",   // behind a holder: its tenants, and sockets of the standby and of another container
	"proxy",    // proxy mode: relayed connections and ports of a draining and a serving generation
}

// `rotini status` shows each fixture as testdata/status-NAME.golden says,
// on a clock stopped at now. Run with -update to rewrite the golden files,
// then read their diff.
func TestStatusGolden(t *testing.T) {
	isolate(t)
	for _, name := range statusFixtures {
		t.Run(name, func(t *testing.T) {
			raw := readFixture(t, name)
			f := startFake(t, map[string]http.HandlerFunc{"GET /v1/status": func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Write(raw)
			}})
			r := rotini(t, "status", "--control", f.path)
			if r.code != ExitOK || r.stderr != "" {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			// The socket's path varies; the golden files show the default.
			got := strings.Replace(r.stdout, "  control "+f.path+"\n", "  control /run/rotini/rotini.sock\n", 1)
			golden := filepath.Join("testdata", "status-"+name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("rotini status (-%s +got):\n%s", golden, diff)
			}

			// --json passes the answer on, indented.
			r = rotini(t, "status", "--json", "--control", f.path)
			var in, out any
			if err := json.Unmarshal(raw, &in); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(r.stdout), &out); r.code != ExitOK || err != nil || !reflect.DeepEqual(in, out) || !strings.HasPrefix(r.stdout, "{\n  \"version\": ") {
				t.Errorf("status --json: exit %d, %v:\n%s", r.code, err, r.stdout)
			}
		})
	}
}

// Each fixture is exactly what control's types send: decoded and encoded
// again it is unchanged, so that a renamed or lost field of the wire types
// fails here (users script `rotini status --json`), and the golden files
// show what rotini can really answer.
func TestStatusFixturesAreTheWireShape(t *testing.T) {
	for _, name := range statusFixtures {
		raw := readFixture(t, name)
		var st control.Status
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		again, err := json.MarshalIndent(&st, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(bytes.TrimSpace(raw)), string(again)); diff != "" {
			t.Errorf("testdata/status-%s.json through control.Status (-fixture +again):\n%s", name, diff)
		}
	}
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "status-"+name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
