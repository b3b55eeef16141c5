package pid1

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The Go runtime never hands signals 32, 33 and 34 to os/signal (glibc's
// and musl's internal signals: 32 has no handler at all and kills rotini,
// 33 is the runtime's own per-thread syscall signal), nor SIGPROF (taken by
// its profiler). Sent to rotini with kill(2) they are ordinary signals that
// belong to the workload, so rotini installs its own handler for them: a few
// instructions of assembly that write the signal number to a pipe, which a
// goroutine turns into the same channel as every other signal. What the
// runtime itself sends or needs (its tgkill of 33, a profiling timer tick)
// still reaches the runtime's handler.

// uncaughtByGo are the signals rawSigHandler takes over.
var uncaughtByGo = []unix.Signal{32, 33, 34, unix.SIGPROF}

// Read by rawSigHandler; written before it is installed, never after.
var (
	rawSigFD int32       = -1
	rawSigGo [65]uintptr // the runtime's handler of a signal, 0 if none
)

func rawSigHandler()
func rawSigRestorer()
func rawSigAddrs() (handler, restorer uintptr)

// sigaction is the kernel's struct sigaction on amd64.
type sigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

const (
	sigDfl     = 0
	sigIgn     = 1
	saSiginfo  = 0x4
	saRestorer = 0x04000000
	saOnstack  = 0x08000000 // every thread of the runtime has a signal stack
	saRestart  = 0x10000000
)

func rtSigaction(sig unix.Signal, act, old *sigaction) error {
	_, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig),
		uintptr(unsafe.Pointer(act)), uintptr(unsafe.Pointer(old)), 8, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// notifyUncaught delivers uncaughtByGo to sigs. It must run once, after
// signal.Notify (which would not touch these signals anyway).
func notifyUncaught(sigs chan<- os.Signal) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return // the runtime's defaults stay: see README
	}
	r := os.NewFile(uintptr(p[0]), "signals")
	rawSigFD = int32(p[1])
	handler, restorer := rawSigAddrs()
	for _, s := range uncaughtByGo {
		var old sigaction
		if rtSigaction(s, nil, &old) != nil {
			continue
		}
		if old.handler != sigDfl && old.handler != sigIgn {
			rawSigGo[s] = old.handler
		}
		act := sigaction{handler: handler, flags: saSiginfo | saRestorer | saOnstack | saRestart, restorer: restorer, mask: ^uint64(0)}
		_ = rtSigaction(s, &act, nil)
	}
	go func() {
		buf := make([]byte, 64)
		for {
			n, err := r.Read(buf)
			for _, b := range buf[:n] {
				sigs <- unix.Signal(b)
			}
			if err != nil {
				return
			}
		}
	}()
}
