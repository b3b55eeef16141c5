#include "textflag.h"

// entry: see entry_amd64.s. Same steps with arm64's system call numbers
// (rt_sigprocmask 135, rt_sigaction 134), then the runtime's entry.
TEXT ·entry(SB),NOSPLIT|NOFRAME,$0
	MOVD	$135, R8
	MOVD	$0, R0
	MOVD	$0, R1
	MOVD	$·entryBlocked(SB), R2
	MOVD	$8, R3
	SVC
	MOVD	$1, R19
	MOVD	$0, R20
loop:
	MOVD	$134, R8
	MOVD	R19, R0
	MOVD	$0, R1
	MOVD	$·entryAct(SB), R2
	MOVD	$8, R3
	SVC
	CBNZ	R0, next
	MOVD	$·entryAct(SB), R4
	MOVD	(R4), R4
	CMP	$1, R4
	BNE	next
	SUB	$1, R19, R5
	MOVD	$1, R6
	LSL	R5, R6, R6
	ORR	R6, R20, R20
next:
	ADD	$1, R19, R19
	CMP	$65, R19
	BLT	loop
	MOVD	$·entryIgnored(SB), R4
	MOVD	R20, (R4)
	MOVD	$·entryCaptured(SB), R4
	MOVD	$1, R5
	MOVD	R5, (R4)
	B	_rt0_arm64_linux(SB)
