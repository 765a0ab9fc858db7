//go:build !amd64

package nftpool

import "syscall"

// lingerStack is 0: a forked child runs on its copy of this thread's stack.
const lingerStack = 0

// spawnLinger is fork(2): the child is a copy of this thread alone.
//
//go:norace
//go:nosplit
func spawnLinger(keep *lingerArgs) (int, syscall.Errno) {
	pid, _, errno := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if errno != 0 || pid != 0 {
		return int(pid), errno
	}
	lingerChild(keep)
	return 0, 0
}
