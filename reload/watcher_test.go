package reload

import (
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/procfs"
	"github.com/rotini-dev/rotini/watch"
)

// inotifyFDs returns the descriptors of this process that are inotify
// instances: only watchers make them here.
func inotifyFDs(t *testing.T) []int {
	t.Helper()
	all, err := procfs.FDs(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var fds []int
	for _, fd := range all {
		if l, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd)); err == nil && l == "anon_inode:inotify" {
			fds = append(fds, fd)
		}
	}
	return fds
}

// TestWatcherSetUpAfterStopIsClosed: a watcher whose setup outlasts every
// app (rotini stopped meanwhile) is closed, not kept where nobody would
// close it. Its setup is held inside its self-test, once its inotify
// instance exists, until the Manager has finished.
func TestWatcherSetUpAfterStopIsClosed(t *testing.T) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		t.Skipf("no inotify here: %v", err)
	}
	unix.Close(fd)
	entered := make(chan struct{})
	release := make(chan struct{})
	o := fakeApp()
	o.Watch = &watch.Options{Paths: []string{t.TempDir()}, SelfTest: func(string) bool {
		close(entered)
		<-release
		return true
	}}
	w := newWorld(t, o)
	<-entered
	before := inotifyFDs(t)
	if len(before) == 0 {
		t.Fatal("the watcher being set up has no inotify instance")
	}

	w.m.Stop(true)
	w.barrier()
	w.procs.endAll(unix.WaitStatus(syscall.SIGQUIT))
	code := <-w.m.Done()
	w.code = &code // stopped: the world's cleanup has nothing more to stop
	close(release)

	// The setup ends either by keeping the watcher (the leak) or by closing
	// it; the minute guards against neither happening, it measures nothing.
	deadline := time.Now().Add(time.Minute)
	for len(inotifyFDs(t)) > 0 {
		if w.a.watcher.Load() != nil {
			t.Fatal("a watcher set up after rotini stopped was kept, and nobody closes it")
		}
		if time.Now().After(deadline) {
			t.Fatalf("the watcher's inotify instance is still open: fds %v", inotifyFDs(t))
		}
		time.Sleep(time.Millisecond)
	}
	if w.a.watcher.Load() != nil {
		t.Error("a watcher set up after rotini stopped was kept")
	}
}
