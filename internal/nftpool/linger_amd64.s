#include "textflag.h"

#define SYS_clone 56
#define SYS_exit_group 231
#define CLONE_VM 0x100
#define SIGCHLD 17

// func cloneVM(sp uintptr, keep *lingerArgs) (pid int, errno syscall.Errno)
//
// The child gets every register of this thread but SP (sp) and AX (0), so it
// finds keep in R13. It runs lingerChild, which never returns, and exits
// should it do so all the same.
TEXT ·cloneVM(SB),NOSPLIT,$0-32
	MOVQ	$(CLONE_VM|SIGCHLD), DI
	MOVQ	sp+0(FP), SI
	MOVQ	$0, DX
	MOVQ	$0, R10
	MOVQ	$0, R8
	MOVQ	keep+8(FP), R13
	MOVQ	$SYS_clone, AX
	SYSCALL
	CMPQ	AX, $0
	JEQ	child
	CMPQ	AX, $0xfffffffffffff001
	JLS	ok
	NEGQ	AX
	MOVQ	$0, pid+16(FP)
	MOVQ	AX, errno+24(FP)
	RET
ok:
	MOVQ	AX, pid+16(FP)
	MOVQ	$0, errno+24(FP)
	RET
child:
	MOVQ	R13, 0(SP)
	CALL	·lingerChild(SB)
	MOVQ	$0, DI
	MOVQ	$SYS_exit_group, AX
	SYSCALL
	INT	$3
