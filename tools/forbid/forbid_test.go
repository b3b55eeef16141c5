// Package forbid holds one test: rotini's code does not use the APIs that
// the single-reaper rule forbids (only package reaper waits for processes).
//
// Invariant: exactly one place in the program waits for children — package
// reaper — and nothing ever sets a signal to "ignored". Every other waiter
// races the reaper for the same exit status (one of them gets ECHILD and the
// exit code is lost), and an ignored disposition is inherited by every
// worker rotini execs.
//
// Forbidden outside package reaper (and its subpackages):
//
//	(*os/exec.Cmd).Wait, .Run, .Output, .CombinedOutput   (they all wait)
//	(*os.Process).Wait
//	syscall.Wait4, golang.org/x/sys/unix.Wait4, unix.Waitid
//
// Forbidden everywhere: os/signal.Ignore.
//
// How: the module's non-test packages are loaded with
// golang.org/x/tools/go/packages, so every selector is resolved by go/types
// to the function it denotes. That catches calls, method values
// (f := cmd.Wait), method expressions ((*exec.Cmd).Wait), embedded fields
// (struct{ *exec.Cmd }) and renamed imports, and it does not confuse
// sync.WaitGroup.Wait or a local Run method with the forbidden ones. What
// it cannot see: a call through an interface (var w interface{ Wait() error }
// = cmd), reflection, raw syscall.Syscall(SYS_WAIT4, …), and files excluded
// by build constraints for linux/GOARCH.
//
// Not checked: test/, bench/, tools/, testdata/ (test drivers and benchmark
// programs that are not rotini and must wait for what they start), and
// _test.go files.
package forbid

import (
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"golang.org/x/tools/go/packages"
)

// rule is one forbidden function, named as types.Func.FullName prints it.
type rule struct {
	why      string
	inReaper bool // allowed inside package reaper
}

var rules = map[string]rule{
	"(*os/exec.Cmd).Wait":           {why: "waits for the child; only the reaper waits (start it with Start and register the pid with the reaper)", inReaper: true},
	"(*os/exec.Cmd).Run":            {why: "calls Cmd.Wait; only the reaper waits", inReaper: true},
	"(*os/exec.Cmd).Output":         {why: "calls Cmd.Wait; only the reaper waits", inReaper: true},
	"(*os/exec.Cmd).CombinedOutput": {why: "calls Cmd.Wait; only the reaper waits", inReaper: true},
	"(*os.Process).Wait":            {why: "waits for the child; only the reaper waits", inReaper: true},
	"syscall.Wait4":                 {why: "only the reaper calls wait4", inReaper: true},
	"golang.org/x/sys/unix.Wait4":   {why: "only the reaper calls wait4", inReaper: true},
	"golang.org/x/sys/unix.Waitid":  {why: "only the reaper calls waitid", inReaper: true},
	"os/signal.Ignore":              {why: "an ignored signal stays ignored in every exec'd worker; handle it (signal.Notify) and drop it instead"},
}

const modulePath = "github.com/rotini-dev/rotini"

// finding is one use of a forbidden API.
type finding struct {
	pos token.Position
	api string
	why string
}

func (f finding) String() string {
	return f.pos.String() + ": " + f.api + " is forbidden here: " + f.why
}

// isReaper reports whether pkgPath is package reaper or below it.
func isReaper(pkgPath string) bool {
	r := modulePath + "/reaper"
	return pkgPath == r || strings.HasPrefix(pkgPath, r+"/")
}

// check returns the uses of forbidden APIs in files, which belong to the
// package pkgPath and were type-checked into info.
func check(fset *token.FileSet, pkgPath string, files []*ast.File, info *types.Info) []finding {
	var out []finding
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			fn, ok := info.Uses[sel.Sel].(*types.Func)
			if !ok {
				return true
			}
			name := fn.Origin().FullName()
			r, ok := rules[name]
			if !ok || (r.inReaper && isReaper(pkgPath)) {
				return true
			}
			out = append(out, finding{pos: fset.Position(sel.Sel.Pos()), api: name, why: r.why})
			return true
		})
	}
	return out
}

// moduleRoot walks up from the test's directory to the go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// skipped reports whether a file, relative to the module root, is outside
// the checked code.
func skipped(rel string) bool {
	rel = filepath.ToSlash(rel)
	for _, top := range []string{"test/", "bench/", "tools/"} {
		if strings.HasPrefix(rel, top) {
			return true
		}
	}
	return strings.HasPrefix(rel, "testdata/") || strings.Contains(rel, "/testdata/") ||
		strings.HasSuffix(rel, "_test.go")
}

func TestNoForbiddenAPIs(t *testing.T) {
	root := moduleRoot(t)
	cfg := &packages.Config{
		Mode: packages.NeedName | packages.NeedFiles | packages.NeedCompiledGoFiles |
			packages.NeedImports | packages.NeedTypes | packages.NeedTypesInfo | packages.NeedSyntax,
		Dir:   root,
		Fset:  token.NewFileSet(),
		Tests: false,
	}
	pkgs, err := packages.Load(cfg, "./...")
	if err != nil {
		t.Fatalf("load packages: %v", err)
	}

	var found []finding
	checkedPkgs := map[string]bool{}
	nfiles := 0
	for _, p := range pkgs {
		var files []*ast.File
		for _, f := range p.Syntax {
			name := cfg.Fset.Position(f.Package).Filename
			rel, err := filepath.Rel(root, name)
			if err != nil || skipped(rel) {
				continue
			}
			files = append(files, f)
		}
		if len(files) == 0 {
			continue
		}
		// Without complete type information a forbidden call could go
		// unseen; a package that does not compile fails here too.
		for _, e := range p.Errors {
			t.Errorf("%s: cannot type-check, so it cannot be checked for forbidden APIs: %v", p.PkgPath, e)
		}
		checkedPkgs[p.PkgPath] = true
		nfiles += len(files)
		found = append(found, check(cfg.Fset, p.PkgPath, files, p.TypesInfo)...)
	}

	// Guard against a vacuous pass (a load that found nothing).
	if !checkedPkgs[modulePath] {
		t.Fatalf("package %s (main) was not among the %d checked packages; the loader found nothing to check", modulePath, len(checkedPkgs))
	}

	sort.Slice(found, func(i, j int) bool {
		a, b := found[i].pos, found[j].pos
		if a.Filename != b.Filename {
			return a.Filename < b.Filename
		}
		return a.Line < b.Line
	})
	for _, f := range found {
		if rel, err := filepath.Rel(root, f.pos.Filename); err == nil {
			f.pos.Filename = rel
		}
		t.Error(f)
	}
	t.Logf("checked %d files in %d packages", nfiles, len(checkedPkgs))
}

// snippet marks each line that must be reported with "// FORBIDDEN: api".
const snippet = `package snippet

import (
	ex "os/exec"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

type job struct{ *ex.Cmd }

type runner struct{}

func (runner) Run() error { return nil }
func (runner) Wait()      {}

func Wait4() {}

func bad(p *os.Process) {
	cmd := ex.Command("true")
	_ = cmd.Start()
	_ = cmd.Wait() // FORBIDDEN: (*os/exec.Cmd).Wait
	signal.Ignore(syscall.SIGPIPE) // FORBIDDEN: os/signal.Ignore
	_ = cmd.Run() // FORBIDDEN: (*os/exec.Cmd).Run
	_, _ = cmd.Output() // FORBIDDEN: (*os/exec.Cmd).Output
	_, _ = cmd.CombinedOutput() // FORBIDDEN: (*os/exec.Cmd).CombinedOutput
	_, _ = p.Wait() // FORBIDDEN: (*os.Process).Wait
	_, _ = cmd.Process.Wait() // FORBIDDEN: (*os.Process).Wait
	var ws syscall.WaitStatus
	_, _ = syscall.Wait4(-1, &ws, syscall.WNOHANG, nil) // FORBIDDEN: syscall.Wait4
	wait := cmd.Wait // FORBIDDEN: (*os/exec.Cmd).Wait
	_ = wait
	_ = (*ex.Cmd).Run // FORBIDDEN: (*os/exec.Cmd).Run
	j := job{cmd}
	_ = j.Wait() // FORBIDDEN: (*os/exec.Cmd).Wait
}

func fine() {
	cmd := ex.Command("true")
	_ = cmd.Start()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	var wg sync.WaitGroup
	wg.Wait()
	_ = runner{}.Run()
	runner{}.Wait()
	Wait4()
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
}
`

// TestCheckerReportsForbiddenUses is the negative control: the checker run on
// a snippet that does what the rule forbids reports each use, at its line,
// and nothing in the allowed code beside it.
func TestCheckerReportsForbiddenUses(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "snippet.go", snippet, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	info := &types.Info{Uses: map[*ast.Ident]types.Object{}}
	conf := types.Config{Importer: importer.ForCompiler(fset, "source", nil)}
	if _, err := conf.Check("example.com/snippet", fset, []*ast.File{f}, info); err != nil {
		t.Fatalf("type-check snippet: %v", err)
	}

	marker := regexp.MustCompile(`// FORBIDDEN: (\S+)`)
	type hit struct {
		line int
		api  string
	}
	var all, signalOnly []hit
	for i, l := range strings.Split(snippet, "\n") {
		if m := marker.FindStringSubmatch(l); m != nil {
			all = append(all, hit{i + 1, m[1]})
			if m[1] == "os/signal.Ignore" {
				signalOnly = append(signalOnly, hit{i + 1, m[1]})
			}
		}
	}

	for _, tc := range []struct {
		name    string
		pkgPath string
		want    []hit
	}{
		{name: "outside reaper", pkgPath: modulePath + "/reload", want: all},
		{name: "main package", pkgPath: modulePath, want: all},
		{name: "inside reaper: only signal.Ignore", pkgPath: modulePath + "/reaper", want: signalOnly},
		{name: "reaper subpackage", pkgPath: modulePath + "/reaper/internal", want: signalOnly},
		{name: "lookalike of reaper", pkgPath: modulePath + "/reaperx", want: all},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []hit
			for _, fd := range check(fset, tc.pkgPath, []*ast.File{f}, info) {
				got = append(got, hit{fd.pos.Line, fd.api})
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d findings %v, want %d %v", len(got), got, len(tc.want), tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("finding %d: got %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}

	// The brief's minimal control: both cmd.Wait() and signal.Ignore(...)
	// in the smallest program are reported.
	var apis []string
	for _, fd := range check(fset, modulePath, []*ast.File{f}, info) {
		apis = append(apis, fd.api)
	}
	for _, want := range []string{"(*os/exec.Cmd).Wait", "os/signal.Ignore"} {
		found := false
		for _, a := range apis {
			found = found || a == want
		}
		if !found {
			t.Errorf("checker did not report %s in the snippet", want)
		}
	}
}

// TestRulesNameRealFunctions guards against a typo in a rule name, which
// would silently allow the API: each name must be what go/types prints for
// the real function.
func TestRulesNameRealFunctions(t *testing.T) {
	const src = `package p

import (
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

var _ = []any{(*exec.Cmd).Wait, (*exec.Cmd).Run, (*exec.Cmd).Output, (*exec.Cmd).CombinedOutput,
	(*os.Process).Wait, syscall.Wait4, signal.Ignore}
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	info := &types.Info{Uses: map[*ast.Ident]types.Object{}}
	conf := types.Config{Importer: importer.ForCompiler(fset, "source", nil)}
	if _, err := conf.Check("example.com/p", fset, []*ast.File{f}, info); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, obj := range info.Uses {
		if fn, ok := obj.(*types.Func); ok {
			seen[fn.FullName()] = true
		}
	}
	// x/sys/unix is not in the standard library: resolve it through the module.
	pkgs, err := packages.Load(&packages.Config{Mode: packages.NeedName | packages.NeedTypes, Dir: moduleRoot(t)}, "golang.org/x/sys/unix")
	if err != nil || len(pkgs) != 1 || pkgs[0].Types == nil {
		t.Fatalf("load golang.org/x/sys/unix: %v", err)
	}
	for _, n := range []string{"Wait4", "Waitid"} {
		if fn, ok := pkgs[0].Types.Scope().Lookup(n).(*types.Func); ok {
			seen[fn.FullName()] = true
		}
	}
	for name := range rules {
		if !seen[name] {
			t.Errorf("rule %q names no function go/types resolves (seen: %v)", name, seen)
		}
	}
}
