package test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestWorkerFds: a worker of a configured app holds 0, 1, 2 and its
// listener (fd 3), nothing else — not even a descriptor that rotini itself
// inherited without close-on-exec (here fd 3 of rotini, which would land at
// some fd of the worker). The control is the same rotini and file in
// zero-config mode, where inherited descriptors pass through as with tini.
func TestWorkerFds(t *testing.T) {
	t.Parallel()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { devnull.Close() })

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cfg := filepath.Join(t.TempDir(), "rotini.hcl")
	src := fmt.Sprintf(`
listen "http" { address = "tcp://127.0.0.1:%d" }
app "web" {
  command = [%q, "fds"]
  listen  = ["http"]
}
`, port, testappBin)
	if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, procOptions{extraFiles: []*os.File{devnull}}, rotiniBin, "-c", cfg, "--control", filepath.Join(t.TempDir(), "ctl.sock"))
	if got := p.waitLine(t, "fds ", waitDeadline); got != "fds 0,1,2,3" {
		t.Errorf("worker's open fds: %q, want %q (its listener at 3 and nothing else)", got, "fds 0,1,2,3")
	}

	c := start(t, procOptions{extraFiles: []*os.File{devnull}}, rotiniBin, "--", testappBin, "fds")
	if got := c.waitLine(t, "fds ", waitDeadline); got != "fds 0,1,2,3" {
		t.Errorf("control: zero-config child's fds %q, want the inherited fd 3 passed through", got)
	}
}

// TestWorkerWithoutListenerFds: a worker that gets no listener holds 0, 1,
// 2 and nothing else. TestWorkerFds cannot see rotini's inherited fd 3
// there, since the listener is dup'ed over it; here nothing is, so an
// inherited descriptor that is not made close-on-exec before the apps
// start shows as the worker's fd 3.
func TestWorkerWithoutListenerFds(t *testing.T) {
	t.Parallel()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { devnull.Close() })
	cfg := filepath.Join(t.TempDir(), "rotini.hcl")
	src := fmt.Sprintf(`
app "work" {
  command = [%q, "fds"]
}
`, testappBin)
	if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, procOptions{extraFiles: []*os.File{devnull}}, rotiniBin, "-c", cfg, "--control", filepath.Join(t.TempDir(), "ctl.sock"))
	if got := p.waitLine(t, "fds ", waitDeadline); got != "fds 0,1,2" {
		t.Errorf("worker's open fds: %q, want %q (nothing rotini inherited)", got, "fds 0,1,2")
	}
}
