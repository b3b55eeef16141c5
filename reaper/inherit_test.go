package reaper

import (
	"context"
	"os"
	"strconv"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// A descriptor opened without close-on-exec reaches a started process
// until CloseInheritedOnExec runs, and never after; 0, 1 and 2 keep their
// flags.
func TestCloseInheritedOnExec(t *testing.T) {
	r := New(hclog.NewNullLogger())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)

	fd, err := unix.Open(os.DevNull, unix.O_RDONLY, 0) // no O_CLOEXEC
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	// sh exits 0 when it holds fd.
	holds := func() bool {
		t.Helper()
		script := "[ -e /proc/self/fd/" + strconv.Itoa(fd) + " ]"
		_, exit, err := r.Start("/bin/sh", []string{"sh", "-c", script}, &syscall.ProcAttr{
			Env: os.Environ(), Files: []uintptr{0, 1, 2},
		})
		if err != nil {
			t.Fatal(err)
		}
		r.Notify()
		for {
			select {
			case e := <-exit:
				return e.Code() == 0
			default:
				r.Notify()
				syscall.Nanosleep(&syscall.Timespec{Nsec: 1e6}, nil)
			}
		}
	}
	if !holds() {
		t.Fatalf("a child does not hold inherited descriptor %d even before CloseInheritedOnExec: the test proves nothing", fd)
	}
	var std [3]int
	for i := range std {
		std[i], _ = unix.FcntlInt(uintptr(i), unix.F_GETFD, 0)
	}
	CloseInheritedOnExec()
	if holds() {
		t.Errorf("a child holds descriptor %d after CloseInheritedOnExec", fd)
	}
	for i := range std {
		if f, _ := unix.FcntlInt(uintptr(i), unix.F_GETFD, 0); f != std[i] {
			t.Errorf("descriptor %d: flags %#x, were %#x", i, f, std[i])
		}
	}
}
