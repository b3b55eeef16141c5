#include "textflag.h"

// rawSigHandler is the kernel's entry for the signals the Go runtime keeps
// from os/signal (see rawsig_linux_amd64.go), called with the C ABI:
// DI = signal, SI = siginfo, DX = ucontext, on the thread's signal stack.
// A signal sent by a process (kill, sigqueue) is written as one byte to
// the pipe rawSigFD; any other goes to the runtime's own handler when it
// has one (a profiling tick, its per-thread syscalls). It touches no Go
// state: no g, no stack growth, one write(2).
TEXT ·rawSigHandler(SB),NOSPLIT|NOFRAME,$0-0
	MOVL	8(SI), AX	// si_code
	CMPL	AX, $0		// SI_USER: kill(2)
	JEQ	queue
	CMPL	AX, $-1		// SI_QUEUE: sigqueue(3)
	JEQ	queue
	MOVL	DI, AX
	ANDL	$0x7f, AX
	LEAQ	·rawSigGo(SB), CX
	MOVQ	(CX)(AX*8), CX
	TESTQ	CX, CX
	JEQ	queue
	JMP	CX		// same registers and stack: as if the kernel had called it
queue:
	SUBQ	$16, SP
	MOVB	DI, 0(SP)
	MOVL	·rawSigFD(SB), DI
	MOVQ	SP, SI
	MOVL	$1, DX
	MOVL	$1, AX		// SYS_write; a full pipe (EAGAIN) drops the signal
	SYSCALL
	ADDQ	$16, SP
	RET

// rawSigRestorer returns from the handler (sa_restorer).
TEXT ·rawSigRestorer(SB),NOSPLIT|NOFRAME,$0-0
	MOVL	$15, AX		// SYS_rt_sigreturn
	SYSCALL
	INT	$3

// rawSigAddrs gives the entry points themselves, not Go's ABI wrappers.
TEXT ·rawSigAddrs(SB),NOSPLIT,$0-16
	LEAQ	·rawSigHandler(SB), AX
	MOVQ	AX, handler+0(FP)
	LEAQ	·rawSigRestorer(SB), AX
	MOVQ	AX, restorer+8(FP)
	RET
