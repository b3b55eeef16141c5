package exitcode

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

func TestOf(t *testing.T) {
	for _, tc := range []struct {
		name          string
		err           error
		want          int
		notExecutable bool
	}{
		{"lookup", &exec.Error{Name: "nope", Err: exec.ErrNotFound}, NotFound, false},
		{"exec ENOENT", syscall.ENOENT, NotFound, false},
		{"start ENOENT", &os.PathError{Op: "fork/exec", Path: "/nope", Err: syscall.ENOENT}, NotFound, false},
		{"wrapped ENOENT", fmt.Errorf("start worker: %w", syscall.ENOENT), NotFound, false},
		{"EACCES", syscall.EACCES, NotExecutable, true},
		{"EPERM", syscall.EPERM, NotExecutable, true},
		{"ENOEXEC", &os.PathError{Op: "fork/exec", Path: "/x", Err: syscall.ENOEXEC}, NotExecutable, true},
		{"EISDIR", syscall.EISDIR, NotExecutable, true},
		// Neither: still not run, so a shell's 126, but a caller that
		// tells rotini's own failures apart (a usage error, a fork that
		// failed) can see it is neither.
		{"E2BIG", syscall.E2BIG, NotExecutable, false},
		{"other", errors.New("boom"), NotExecutable, false},
	} {
		if got := Of(tc.err); got != tc.want {
			t.Errorf("%s: Of(%v) = %d, want %d", tc.name, tc.err, got, tc.want)
		}
		if got := IsNotExecutable(tc.err); got != tc.notExecutable {
			t.Errorf("%s: IsNotExecutable(%v) = %v, want %v", tc.name, tc.err, got, tc.notExecutable)
		}
	}
}

// The errors a real start gives, not only the ones in the table.
func TestOfRealStarts(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain") // not executable
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(garbage, []byte{0, 1, 2, 3}, 0o755); err != nil {
		t.Fatal(err)
	}
	_, lookErr := exec.LookPath("rotini-no-such-command")
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"not on PATH", lookErr, NotFound},
		{"no such file", start(filepath.Join(dir, "missing")), NotFound},
		{"no x bit", start(plain), NotExecutable},
		{"not a program", start(garbage), NotExecutable},
		{"a directory", start(dir), NotExecutable},
	} {
		if tc.err == nil {
			t.Errorf("%s: started", tc.name)
			continue
		}
		if got := Of(tc.err); got != tc.want {
			t.Errorf("%s: Of(%v) = %d, want %d", tc.name, tc.err, got, tc.want)
		}
		// Each real failure is one or the other, never neither: a caller
		// that maps the rest to its own failure loses none of these.
		if IsNotFound(tc.err) == IsNotExecutable(tc.err) {
			t.Errorf("%s: %v: IsNotFound %v, IsNotExecutable %v", tc.name, tc.err, IsNotFound(tc.err), IsNotExecutable(tc.err))
		}
	}
}

func start(path string) error {
	p, err := os.StartProcess(path, []string{path}, &os.ProcAttr{})
	if err == nil {
		p.Kill()
		p.Wait()
	}
	return err
}
