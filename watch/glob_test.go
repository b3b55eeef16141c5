package watch

import "testing"

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern string
		rel     string
		want    bool
	}{
		{pattern: ".git/**", rel: ".git", want: true},
		{pattern: ".git/**", rel: ".git/objects/ab/cdef", want: true},
		{pattern: ".git/**", rel: "sub/.git/HEAD", want: false},
		{pattern: "**/.git/**", rel: "sub/.git/HEAD", want: true},
		{pattern: "**/.git/**", rel: ".git", want: true},
		{pattern: "**/__pycache__/**", rel: "pkg/__pycache__/m.cpython-312.pyc", want: true},
		{pattern: "**/*.pyc", rel: "a.pyc", want: true},
		{pattern: "**/*.pyc", rel: "a/b/c.pyc", want: true},
		{pattern: "**/*.pyc", rel: "a/b/c.py", want: false},
		{pattern: "**/node_modules/**", rel: "web/node_modules", want: true},
		{pattern: "**/node_modules/**", rel: "web/node_modules_x/a.js", want: false},
		{pattern: "**/*~", rel: "a/app.py~", want: true},
		{pattern: "**/.#*", rel: "a/.#app.py", want: true},
		{pattern: "*.py", rel: "app.py", want: true},
		{pattern: "*.py", rel: "pkg/app.py", want: false}, // anchored at the root
		{pattern: "src/**/*.go", rel: "src/main.go", want: true},
		{pattern: "src/**/*.go", rel: "src/a/b/main.go", want: true},
		{pattern: "src/**/*.go", rel: "lib/src/main.go", want: false},
		{pattern: "a/**/b/**/c", rel: "a/x/b/y/z/c", want: true},
		{pattern: "a/**/b/**/c", rel: "a/b/c", want: true},
		{pattern: "a/**/b/**/c", rel: "a/x/c", want: false},
		{pattern: "**", rel: "anything/at/all", want: true},
		{pattern: "./build/", rel: "build", want: true},
		{pattern: "/build", rel: "build", want: true},
		{pattern: "build", rel: "build/x", want: false}, // but the walk never enters an excluded build/
		{pattern: "tmp/*", rel: "tmp/a/b", want: false},
		{pattern: "[ab].txt", rel: "b.txt", want: true},
		{pattern: "**/a/*.py", rel: "x/y/a/b.py", want: true},
		{pattern: "**/a/*.py", rel: "a/b.py", want: true},
		{pattern: "**/a/*.py", rel: "b.py", want: false},
		{pattern: "**/a/*.py", rel: "a/x/b.py", want: false},
		{pattern: "**/**/*.py", rel: "b.py", want: true},
		{pattern: "**/te?t/**", rel: "x/test/y", want: true},
		{pattern: "static/*", rel: "static/app.css", want: true},
		{pattern: "*", rel: ".hidden", want: true},
		{pattern: "a*b", rel: "axxb", want: true},
	}
	for _, tc := range tests {
		gs, err := compileGlobs([]string{tc.pattern})
		if err != nil {
			t.Fatalf("compileGlobs(%q): %v", tc.pattern, err)
		}
		if got := matchAny(gs, tc.rel); got != tc.want {
			t.Errorf("%q matches %q = %v, want %v", tc.pattern, tc.rel, got, tc.want)
		}
	}
}

func TestCompileGlobsRejectsBadPatterns(t *testing.T) {
	for _, p := range []string{"[", "a/[b", "/", "."} {
		if _, err := compileGlobs([]string{p}); err == nil {
			t.Errorf("compileGlobs(%q) = nil error", p)
		}
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	gs, err := compileGlobs(DefaultExclude())
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() { matchAny(gs, "src/pkg/module/file.py") })
	if allocs != 0 {
		t.Errorf("matchAny allocates %v times per call", allocs)
	}
}
