package main

import (
	"bufio"
	"flag"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// The orphan storm, three processes deep:
//
//	testapp orphans N        (main)    holds the write end of the release pipe
//	└─ testapp orphan-spawner N        starts N children, then exits at once
//	   └─ N × testapp orphan-child     block reading the release pipe (fd 3)
//
// When the spawner exits, the kernel re-parents its N children to the
// nearest child subreaper, or else to PID 1 of the PID namespace. The main
// process waits for the spawner (so it leaves no zombie of its own), prints
// "spawned N", and on "go" (or at once with --now) closes the write end:
// all N children read EOF and exit together, and their new parent has N
// zombies to reap. The main process does not reap them: it only ever waits
// for the spawner's pid.

func orphansRole(args []string) {
	c := notifyAll()
	if len(args) < 1 {
		fatalf("usage: testapp orphans N [--now]")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil {
		fatalf("orphans: %v", err)
	}
	fs := flag.NewFlagSet("orphans", flag.ExitOnError)
	now := fs.Bool("now", false, "release the orphans without waiting for \"go\" on stdin")
	ignore, exitOn := addSignalFlags(fs)
	fs.Parse(args[1:])
	p := newSignalPrinter(c, *ignore, *exitOn)

	releaseR, releaseW, err := os.Pipe()
	if err != nil {
		fatalf("pipe: %v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		fatalf("find own executable: %v", err)
	}
	spawner := exec.Command(exe, "orphan-spawner", strconv.Itoa(n))
	spawner.ExtraFiles = []*os.File{releaseR}
	spawner.Stderr = os.Stderr
	if err := spawner.Run(); err != nil {
		fatalf("orphan-spawner: %v", err)
	}
	releaseR.Close()
	// The spawner exited 0 only after each of its N children was exec'd.
	say("spawned %d", n)

	if !*now {
		stdin := bufio.NewReader(os.Stdin)
		for {
			line, err := stdin.ReadString('\n')
			if line == "go\n" {
				break
			}
			if err != nil {
				fatalf("stdin ended before a \"go\" line")
			}
		}
	}
	releaseW.Close()
	say("released")
	p.run()
}

// orphanSpawnerRole starts N orphan children sharing its fd 3 and exits
// without waiting for them. A few goroutines start them concurrently.
func orphanSpawnerRole(args []string) {
	if len(args) != 1 {
		fatalf("usage: testapp orphan-spawner N")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil {
		fatalf("orphan-spawner: %v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		fatalf("find own executable: %v", err)
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		fatalf("open %s: %v", os.DevNull, err)
	}
	attr := &syscall.ProcAttr{
		Env:   append(os.Environ(), "GOMAXPROCS=1"), // fewer threads per child
		Files: []uintptr{devnull.Fd(), devnull.Fd(), 2, 3},
	}
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range jobs {
				if _, err := syscall.ForkExec(exe, []string{exe, "orphan-child"}, attr); err != nil {
					fatalf("start orphan-child: %v", err)
				}
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	runtime.KeepAlive(devnull) // attr holds its fd as a bare number: no finalizer may close it before
	os.Exit(0)
}

// orphanChildRole blocks until the release pipe on fd 3 reaches its end.
func orphanChildRole() {
	unix.SetNonblock(3, false)
	var buf [1]byte
	for {
		n, err := unix.Read(3, buf[:])
		if err == unix.EINTR {
			continue
		}
		if n <= 0 || err != nil {
			os.Exit(0)
		}
	}
}
