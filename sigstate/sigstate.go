// Package sigstate hands every process rotini starts the signal state that
// rotini itself inherited, as tini does: `nohup rotini -- app` must leave
// the app immune to HUP.
//
// Invariant: a process started through Wrap execs with the signals that
// were ignored when rotini started still ignored, and with rotini's
// inherited blocked mask, whatever rotini's own handlers are. Go cannot
// run code between fork and exec, so when there is something to restore
// the process is started as a shim (rotini's own binary, /proc/self/exe)
// that sets the dispositions and the mask with raw system calls and execs
// the real command, keeping the pid.
//
// rotini sees its inheritance whole when its binary is linked with
// EntryFlag: its own entry point (entry_$GOARCH.s) records the blocked mask
// and the ignored signals before the Go runtime starts, and every signal
// is restored as it was handed over, as tini does. Without that flag (a
// plain `go build`, or an architecture without an entry point), rotini
// sees what the runtime left of it by the time package init runs: the
// runtime installs its own handler on most signals first, keeping an
// inherited SIG_IGN only for HUP and INT, and it unblocks HUP, INT, QUIT,
// ILL, TRAP, ABRT, BUS, FPE, SEGV, STKFLT, TERM, CHLD, PROF, SYS and 32-34
// in every thread. Then the ignored HUP, INT, CONT, TSTP, TTIN, TTOU, 32
// and 34, and the blocked signals outside that list, are restored; the
// rest reach children with their default disposition, unblocked.
package sigstate

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/exitcode"
	"github.com/rotini-dev/rotini/procfs"
)

// Env carries the state to restore to the shim: "IGNORED:BLOCKED", two
// hexadecimal masks where bit N-1 is signal N, as in /proc/PID/status.
const Env = "ROTINI_SIGNALS"

// SelfExe is rotini's own binary, which every shim of rotini runs,
// resolved in the child after fork, so it is rotini even when its file was
// replaced on disk. Wrap recognises a command that already starts as a
// shim by this path.
const SelfExe = "/proc/self/exe"

// shimName is argv[0] of the shim; argv[1] is the command's path, the
// rest its argv.
const shimName = "rotini-sigshim"

// State is a set of ignored and of blocked signals.
type State struct {
	Ignored, Blocked uint64
}

// inherited is what rotini found at start, before any handler of its own,
// and whether it is whole (recorded at the process's entry).
var inherited, whole = capture()

// Inherited returns the signal state rotini inherited.
func Inherited() State { return inherited }

// Whole reports whether Inherited is the state exactly as rotini was
// started with, recorded before the Go runtime ran (see the package doc).
func Whole() bool { return whole }

// capture returns the state recorded at entry, or else SigIgn and SigBlk
// of the main thread: package init runs before main installs rotini's
// handlers (signal.Notify), after the runtime's.
func capture() (State, bool) {
	if s, ok := fromEntry(); ok {
		return s, true
	}
	return fromProc(), false
}

// fromProc reads SigIgn and SigBlk of the calling process's main thread.
func fromProc() State {
	st, err := procfs.Status(os.Getpid())
	if err != nil {
		return State{}
	}
	var s State
	s.Ignored, _ = strconv.ParseUint(st["SigIgn"], 16, 64)
	s.Blocked, _ = strconv.ParseUint(st["SigBlk"], 16, 64)
	return s
}

func (s State) empty() bool { return s.Ignored == 0 && s.Blocked == 0 }

func (s State) String() string { return fmt.Sprintf("%x:%x", s.Ignored, s.Blocked) }

// Wrap returns how to start path with argv and env so that it gets the
// inherited state: unchanged when there is nothing to restore, else
// through the shim. A command that already starts as rotini's own binary
// (another shim) only gets the variable: every shim of rotini restores.
func Wrap(path string, argv, env []string) (string, []string, []string) {
	if inherited.empty() {
		return path, argv, env
	}
	env = append(env[:len(env):len(env)], Env+"="+inherited.String())
	if path == SelfExe {
		return path, argv, env
	}
	return SelfExe, append([]string{shimName, path}, argv...), env
}

// ExecShimIfAsked turns this process into the command when it was started
// as the shim, and otherwise returns at once. main calls it first.
func ExecShimIfAsked() {
	if len(os.Args) < 1 || os.Args[0] != shimName {
		return
	}
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "rotini-sigshim: no command")
		os.Exit(exitcode.NotFound)
	}
	env := Restore(os.Environ())
	err := unix.Exec(os.Args[1], os.Args[2:], env)
	fmt.Fprintf(os.Stderr, "rotini: exec %s: %v\n", os.Args[1], err)
	os.Exit(exitcode.Of(err))
}

// Restore applies the state that env carries (Env) to this process and
// returns env without it. The caller must exec right after: the state
// replaces the Go runtime's for the rest of the process's life, and the
// mask is set on the calling thread, locked here, which is the thread
// that execs.
func Restore(env []string) []string {
	out := env[:0:0]
	var spec string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, Env+"="); ok {
			spec = v
			continue
		}
		out = append(out, kv)
	}
	ign, blk, ok := strings.Cut(spec, ":")
	if !ok {
		return out
	}
	var s State
	s.Ignored, _ = strconv.ParseUint(ign, 16, 64)
	s.Blocked, _ = strconv.ParseUint(blk, 16, 64)
	runtime.LockOSThread()
	for sig := 1; sig <= 64; sig++ {
		if s.Ignored&(1<<(sig-1)) != 0 {
			act := sigaction{handler: sigIgn}
			_, _, _ = unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
		}
	}
	mask := s.Blocked
	_, _, _ = unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&mask)), 0, 8, 0, 0)
	return out
}

// sigaction is the kernel's struct sigaction (handler, flags, restorer,
// mask on every architecture rotini builds for but a few; SIG_IGN needs no
// restorer).
type sigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

const sigIgn = 1
