//go:build amd64 || arm64

package sigstate

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every place in the repository that builds rotini links it with its entry
// point: a build that forgot EntryFlag would still run, and silently hand
// children less of the inherited signal state.
func TestEveryBuildOfRotiniLinksTheEntryPoint(t *testing.T) {
	files := []string{"../Makefile", "../docker/Dockerfile", "../test/harness_test.go", "../test/docker_helpers_test.go"}
	bench, _ := filepath.Glob("../bench/*.sh")
	files = append(files, bench...)
	// A build of the root package: `go build … .` at the end of a line
	// (shell), or a Go test building "github.com/rotini-dev/rotini" / ".".
	buildsRotini := regexp.MustCompile(`go build .* \.("|$)|CGO_ENABLED=0 \$\(GO\) build .* -o bin/rotini \.`)
	found := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		if strings.HasSuffix(f, "_test.go") {
			if !strings.Contains(text, "sigstate.EntryFlag") {
				t.Errorf("%s builds rotini without sigstate.EntryFlag", f)
			}
			found++
			continue
		}
		for i, line := range strings.Split(text, "\n") {
			if !buildsRotini.MatchString(line) {
				continue
			}
			found++
			if !strings.Contains(line, EntryFlag) && !strings.Contains(line, "$(LDFLAGS)") {
				t.Errorf("%s:%d builds rotini without %s: %s", f, i+1, EntryFlag, strings.TrimSpace(line))
			}
		}
	}
	mk, _ := os.ReadFile("../Makefile")
	if !regexp.MustCompile(`(?m)^ENTRY\s*:= ` + regexp.QuoteMeta(EntryFlag) + `$`).Match(mk) {
		t.Errorf("the Makefile's ENTRY is not %s", EntryFlag)
	}
	if found < 6 {
		t.Errorf("found %d builds of rotini; the patterns above no longer match the build lines", found)
	}
}

// A test binary is linked without the entry point: the state comes from
// /proc, and Whole says so.
func TestWholeOnlyFromEntry(t *testing.T) {
	if Whole() {
		t.Fatal("the test binary has no entry point of rotini's, yet Whole() is true")
	}
}
