package config

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

func TestWriteDiagnostics(t *testing.T) {
	src := []byte("app \"web\" {\n  command      = [\"./server\"]\n  stop_timeout = \"25x\"\n}\n")
	_, diags := Parse(src, "file.hcl")
	if len(diags) != 1 {
		t.Fatalf("want one diagnostic, got %v", diags)
	}
	var buf bytes.Buffer
	if err := WriteDiagnostics(&buf, map[string]*hcl.File{"file.hcl": {Bytes: src}}, diags); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"file.hcl:3,18: ",
		"Invalid duration",
		`3:   stop_timeout = "25x"`,
		`The value "25x" of stop_timeout is not a duration`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// With no files given, the source comes from disk, as after Load.
func TestWriteDiagnosticsReadsFiles(t *testing.T) {
	_, diags := Load("testdata/invalid/no_apps.hcl")
	var buf bytes.Buffer
	if err := WriteDiagnostics(&buf, nil, diags); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.Contains(out, "testdata/invalid/no_apps.hcl:1,1: ") || !strings.Contains(out, "1: # ERROR: Missing app block") {
		t.Errorf("unexpected output:\n%s", out)
	}
}
