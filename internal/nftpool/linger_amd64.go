package nftpool

import (
	"syscall"
	"unsafe"
)

// lingerStack is the size of the child's own stack: lingerChild and what it
// calls are nosplit, so their frames together stay under the runtime's
// nosplit limit (~800 bytes).
const lingerStack = 8 << 10

// cloneVM is clone(CLONE_VM|SIGCHLD): a process that shares this one's memory,
// not its threads, descriptors or signal handlers. The child starts on sp and
// runs lingerChild(keep) there (linger_amd64.s).
//
//go:noescape
func cloneVM(sp uintptr, keep *lingerArgs) (pid int, errno syscall.Errno)

// spawnLinger starts the child on its stack in keep. Nothing of this
// process's memory is copied; the child writes only keep's buffer and stack.
//
//go:norace
//go:nosplit
func spawnLinger(keep *lingerArgs) (int, syscall.Errno) {
	// The top of the stack, 16-byte aligned, less a slot for lingerChild's
	// argument.
	top := uintptr(unsafe.Pointer(&keep.stack[0])) + lingerStack
	return cloneVM(top&^15-16, keep)
}
