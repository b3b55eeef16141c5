#include "textflag.h"

// entry is rotini's process entry point when it is linked with
// -ldflags=-E=github.com/rotini-dev/rotini/sigstate.entry (see entry.go).
// It runs before the Go runtime, which replaces most inherited signal
// dispositions and unblocks many signals before any Go code runs: it
// records the blocked mask and the set of ignored signals exactly as they
// were handed to rotini, then jumps to the runtime's own entry with the
// stack and registers the kernel gave it.
TEXT ·entry(SB),NOSPLIT|NOFRAME,$0
	// rt_sigprocmask(SIG_BLOCK, NULL, &entryBlocked, 8)
	MOVQ	$14, AX
	MOVQ	$0, DI
	MOVQ	$0, SI
	LEAQ	·entryBlocked(SB), DX
	MOVQ	$8, R10
	SYSCALL
	// for sig := 1; sig <= 64; sig++: rt_sigaction(sig, NULL, &entryAct, 8),
	// and bit sig-1 of R13 when its handler is SIG_IGN (1).
	MOVQ	$1, R12
	XORQ	R13, R13
loop:
	MOVQ	$13, AX
	MOVQ	R12, DI
	MOVQ	$0, SI
	LEAQ	·entryAct(SB), DX
	MOVQ	$8, R10
	SYSCALL
	CMPQ	AX, $0
	JNE	next
	MOVQ	·entryAct(SB), AX
	CMPQ	AX, $1
	JNE	next
	MOVQ	R12, CX
	DECQ	CX
	MOVQ	$1, AX
	SHLQ	CX, AX
	ORQ	AX, R13
next:
	INCQ	R12
	CMPQ	R12, $65
	JLT	loop
	MOVQ	R13, ·entryIgnored(SB)
	MOVQ	$1, ·entryCaptured(SB)
	JMP	_rt0_amd64_linux(SB)
