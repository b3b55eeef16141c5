// Command testapp is the fake worker of rotini's black-box tests: one
// program, many roles, chosen by the first argument. Every role reports what
// happens to it as lines on stdout (each written with one write, so tests can
// wait on lines instead of sleeping):
//
//	signals [--ignore NAME,...] [--exit-on NAME]   print "ready", then "signal NAME" per signal
//	exit N                                         exit with code N
//	kill NAME                                      die by signal NAME (128+N as a shell sees it)
//	orphans N [--now]                              orphan storm of N processes (see orphans.go)
//	fds                                            print "fds 0,1,2,…", "ready", then like signals
//	tty                                            print "tty pgrp=X fg=Y foreground=true|false"
//	group                                          start `sleep 1000` in its own process group, print "grandchild PID", then like signals
//	serve [flags]                                  an HTTP server (see serve.go)
//	helper [--ignore NAME,...]                     print "helper pid=P gen=G", then like signals
//	forge --app NAME, forge-send, flood            attacks on the notify socket (see forge.go)
//
// Roles that print signals re-exec themselves once with
// GODEBUG=asyncpreemptoff=1: the Go runtime preempts goroutines by sending
// its own threads SIGURG, and those would otherwise show up as spurious
// "signal URG" lines, which the tests use to prove that rotini does NOT
// forward SIGURG.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// signalRoles are the roles that print the signals they receive.
var signalRoles = []string{"signals", "fds", "group", "orphans", "serve", "helper", "forge", "flood"}

func main() {
	if len(os.Args) < 2 {
		fatalf("usage: testapp ROLE [args…]")
	}
	role, args := os.Args[1], os.Args[2:]
	if slices.Contains(signalRoles, role) {
		reexecWithoutAsyncPreemption()
	}
	runtime.UnlockOSThread()
	switch role {
	case "signals":
		signalsRole(args)
	case "exit":
		exitRole(args)
	case "kill":
		killRole(args)
	case "orphans":
		orphansRole(args)
	case "orphan-spawner":
		orphanSpawnerRole(args)
	case "orphan-child":
		orphanChildRole()
	case "fds":
		fdsRole(args)
	case "tty":
		ttyRole()
	case "group":
		groupRole(args)
	case "serve":
		serveRole(args)
	case "helper":
		helperRole(args)
	case "forge":
		forgeRole(args)
	case "forge-send":
		forgeSendRole(args)
	case "flood":
		floodRole(args)
	default:
		fatalf("unknown role %q", role)
	}
}

// init keeps main on the main thread, so that the re-exec below happens
// there: Linux keeps PR_SET_PDEATHSIG per thread, and a process that execs
// from another thread carries on as that thread, without the parent-death
// signal rotini gave it. main unlocks once past the re-exec.
func init() { runtime.LockOSThread() }

// reexecWithoutAsyncPreemption replaces the process (same pid) by itself
// with asynchronous preemption off, unless that is already the case.
func reexecWithoutAsyncPreemption() {
	const setting = "asyncpreemptoff=1"
	godebug := os.Getenv("GODEBUG")
	if slices.Contains(strings.Split(godebug, ","), setting) {
		return
	}
	if godebug != "" {
		godebug += ","
	}
	os.Setenv("GODEBUG", godebug+setting)
	exe, err := os.Executable()
	if err != nil {
		fatalf("find own executable: %v", err)
	}
	err = syscall.Exec(exe, os.Args, os.Environ())
	fatalf("re-exec %s: %v", exe, err)
}

var outMu sync.Mutex

// say prints one line on stdout with a single write.
func say(format string, a ...any) {
	line := fmt.Sprintf(format, a...) + "\n"
	outMu.Lock()
	defer outMu.Unlock()
	os.Stdout.WriteString(line)
}

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "testapp: "+format+"\n", a...)
	os.Exit(2)
}

// signalName is the short name of sig: "TERM", "USR1", or its number.
func signalName(sig syscall.Signal) string {
	if name := unix.SignalName(sig); name != "" {
		return strings.TrimPrefix(name, "SIG")
	}
	return strconv.Itoa(int(sig))
}

// parseSignal accepts "TERM", "SIGTERM", "term" or "15".
func parseSignal(s string) syscall.Signal {
	if n, err := strconv.Atoi(s); err == nil {
		return syscall.Signal(n)
	}
	sig := unix.SignalNum("SIG" + strings.TrimPrefix(strings.ToUpper(s), "SIG"))
	if sig == 0 {
		fatalf("unknown signal %q", s)
	}
	return sig
}

// signalPrinter prints every signal it gets and exits on one of them.
type signalPrinter struct {
	c      chan os.Signal
	ignore map[syscall.Signal]bool
	exitOn syscall.Signal // 0: never exit
}

// notifyAll subscribes to every signal. It must run before "ready" is
// printed, so that a test never signals a process that has no handler yet.
func notifyAll() chan os.Signal {
	c := make(chan os.Signal, 256)
	signal.Notify(c)
	return c
}

// newSignalPrinter parses --ignore and --exit-on from fs's values.
func newSignalPrinter(c chan os.Signal, ignore, exitOn string) *signalPrinter {
	p := &signalPrinter{c: c, ignore: map[syscall.Signal]bool{}}
	for _, name := range strings.Split(ignore, ",") {
		if name != "" {
			p.ignore[parseSignal(name)] = true
		}
	}
	switch {
	case exitOn != "":
		p.exitOn = parseSignal(exitOn)
	case !p.ignore[syscall.SIGTERM]:
		p.exitOn = syscall.SIGTERM
	}
	return p
}

// run prints "signal NAME" for each signal but SIGCHLD (children of the
// role come and go), and exits with 128+N on the exit-on signal N.
func (p *signalPrinter) run() {
	for s := range p.c {
		sig := s.(syscall.Signal)
		if sig == syscall.SIGCHLD {
			continue
		}
		say("signal %s", signalName(sig))
		if sig == p.exitOn && !p.ignore[sig] {
			os.Exit(128 + int(sig))
		}
	}
}

func addSignalFlags(fs *flag.FlagSet) (ignore, exitOn *string) {
	ignore = fs.String("ignore", "", "comma-separated `signals` printed but never exited on")
	exitOn = fs.String("exit-on", "", "`signal` to exit on with 128+N (default TERM unless ignored)")
	return ignore, exitOn
}

func signalsRole(args []string) {
	c := notifyAll()
	fs := flag.NewFlagSet("signals", flag.ExitOnError)
	ignore, exitOn := addSignalFlags(fs)
	fs.Parse(args)
	p := newSignalPrinter(c, *ignore, *exitOn)
	say("ready")
	p.run()
}

func exitRole(args []string) {
	if len(args) != 1 {
		fatalf("usage: testapp exit N")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil {
		fatalf("exit code: %v", err)
	}
	os.Exit(n)
}

// killRole dies by a signal with its default action. signal.Reset is not
// enough: for SIGQUIT the Go runtime's default is a stack dump and exit 2,
// so the kernel's SIG_DFL is installed directly.
func killRole(args []string) {
	if len(args) != 1 {
		fatalf("usage: testapp kill NAME")
	}
	sig := parseSignal(args[0])
	unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}) // QUIT, ABRT…: no core file in the test directory
	runtime.LockOSThread()
	if sig != syscall.SIGKILL && sig != syscall.SIGSTOP {
		var act [4]uint64 // struct sigaction, all zero: SIG_DFL, no flags, empty mask
		if _, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0); errno != 0 {
			fatalf("rt_sigaction %s: %v", signalName(sig), errno)
		}
		var set unix.Sigset_t
		set.Val[(sig-1)/64] |= 1 << ((uint(sig) - 1) % 64)
		unix.PthreadSigmask(unix.SIG_UNBLOCK, &set, nil)
	}
	if err := unix.Tgkill(unix.Getpid(), unix.Gettid(), sig); err != nil {
		fatalf("tgkill %s: %v", signalName(sig), err)
	}
	time.Sleep(5 * time.Second)
	fatalf("still alive 5s after SIG%s", signalName(sig))
}

// fdsRole lists the fds it inherited: those open without close-on-exec.
// The Go runtime opens its own after exec, all close-on-exec: the cgroup
// CPU quota files it watches for GOMAXPROCS (Go 1.25+), the network
// poller's epoll and event fds, and here the directory being read.
func fdsRole(args []string) {
	c := notifyAll()
	dir, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		fatalf("open /proc/self/fd: %v", err)
	}
	var fds []int
	buf := make([]byte, 8192)
	for {
		n, err := unix.ReadDirent(dir, buf)
		if err != nil {
			fatalf("read /proc/self/fd: %v", err)
		}
		if n == 0 {
			break
		}
		var names []string
		_, _, names = syscall.ParseDirent(buf[:n], -1, names)
		for _, name := range names {
			fd, err := strconv.Atoi(name)
			if err != nil {
				continue
			}
			if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC == 0 {
				fds = append(fds, fd)
			}
		}
	}
	unix.Close(dir)
	slices.Sort(fds)
	list := make([]string, len(fds))
	for i, fd := range fds {
		list[i] = strconv.Itoa(fd)
	}
	fs := flag.NewFlagSet("fds", flag.ExitOnError)
	ignore, exitOn := addSignalFlags(fs)
	fs.Parse(args)
	p := newSignalPrinter(c, *ignore, *exitOn)
	say("fds %s", strings.Join(list, ","))
	say("ready")
	p.run()
}

// ttyRole reports whether its process group is the foreground group of the
// terminal on stdin. Without a terminal, fg is -1 and foreground false.
func ttyRole() {
	pgrp := unix.Getpgrp()
	fg, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	if err != nil {
		fg = -1
	}
	say("tty pgrp=%d fg=%d foreground=%t", pgrp, fg, err == nil && fg == pgrp)
	os.Exit(0)
}

// groupRole starts a grandchild in its own process group (no Setpgid), so
// a test can check that whoever kills the group kills the grandchild too.
func groupRole(args []string) {
	c := notifyAll()
	fs := flag.NewFlagSet("group", flag.ExitOnError)
	ignore, exitOn := addSignalFlags(fs)
	fs.Parse(args)
	p := newSignalPrinter(c, *ignore, *exitOn)
	sleep := exec.Command("sleep", "1000")
	if err := sleep.Start(); err != nil {
		fatalf("start sleep: %v", err)
	}
	go sleep.Wait() // reap it if it dies first; a zombie would look alive to /proc
	say("grandchild %d", sleep.Process.Pid)
	say("ready")
	p.run()
}

// helperRole is a worker's detached helper (see serve --helper): it says
// who it is and which generation's environment it carries, then prints
// signals like the signals role.
func helperRole(args []string) {
	c := notifyAll()
	fs := flag.NewFlagSet("helper", flag.ExitOnError)
	ignore, exitOn := addSignalFlags(fs)
	fs.Parse(args)
	p := newSignalPrinter(c, *ignore, *exitOn)
	say("helper pid=%d gen=%s", os.Getpid(), os.Getenv("ROTINI_GENERATION"))
	p.run()
}
