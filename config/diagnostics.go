package config

import (
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// WriteDiagnostics prints diags for a human: each starts with its position
// as file:line,column, followed by hcl's rendering (severity, summary, the
// source line with the range underlined, and the detail).
//
// files maps a filename to its parsed file, whose Bytes are the source
// shown (parsed files also let hcl name the enclosing block). When files
// is nil, the files the diagnostics name are read from disk, which is what
// a caller of Load wants.
func WriteDiagnostics(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics) error {
	if files == nil {
		files = map[string]*hcl.File{}
		for _, diag := range diags {
			if diag.Subject == nil || files[diag.Subject.Filename] != nil {
				continue
			}
			name := diag.Subject.Filename
			if src, err := os.ReadFile(name); err == nil {
				// Parsed, so that hcl can say which block a line is in;
				// a file with syntax errors still has its Bytes.
				file, _ := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
				if file == nil {
					file = &hcl.File{Bytes: src}
				}
				files[name] = file
			}
		}
	}
	tw := hcl.NewDiagnosticTextWriter(w, files, 0, false)
	for _, diag := range diags {
		if s := diag.Subject; s != nil {
			if _, err := fmt.Fprintf(w, "%s:%d,%d: ", s.Filename, s.Start.Line, s.Start.Column); err != nil {
				return err
			}
		}
		if err := tw.WriteDiagnostic(diag); err != nil {
			return err
		}
	}
	return nil
}
