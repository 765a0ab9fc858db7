package nftpool

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The last close of a netfilter netlink socket waits for the kernel.
//
// A transaction that removes anything (a heal, the rules and set elements a
// change replaces, a table rewritten for a port forward, a guest's IPv6
// binding) leaves its objects on the kernel's destroy list, freed after an
// RCU grace period. Releasing the last reference to an nf_tables socket
// (nft_rcv_nl_event) takes the namespace's commit mutex and waits for that
// list to drain: ~10 ms here, measured from exit_group to the end of
// `pontoon partition heal`, more than all the rest of the command. A process
// that exits right after its change pays it on the user's time.
//
// Linger moves that wait off it: a child inherits the sockets and holds them
// until this process has exited (it reads a pipe whose only writer is this
// process), then exits and waits for the kernel unobserved. The child runs a
// few raw system calls and never execs: starting a Go program for it cost
// this process ~0.5 ms and the next command the child's start-up on a shared
// CPU. On amd64 it shares this process's memory (clone with CLONE_VM, on a
// stack of its own; linger_amd64.s): a fork copied the page tables, ~90 µs,
// and this process's exit then tore its memory down, both on the user's time,
// where the child now drops the memory last, unobserved. Elsewhere it is a
// bare fork(2). The bridge namespace, which the sockets reference, lives that
// much longer, as it would while the kernel finished any namespace removal.

// removed records that this process committed a batch that removes something,
// or saw a change that may still be on the kernel's destroy list (see above);
// only then is a lingering child worth its start. Release clears it: with no
// socket open there is nothing to hand over.
var removed atomic.Bool

// MarkRemoved records that a batch committed (or about to be) on a pooled
// connection removes something: rules, set elements, chains or a table.
func MarkRemoved() { removed.Store(true) }

// recentChange is how long after a change that removed something the close of
// any nftables socket may still wait for it: a grace period, with margin.
const recentChange = time.Second

// NoteChange records that the namespace's last change was made at when: a
// command right after another one (a script of changes, a heal then a
// partition) would otherwise wait at its exit for the destroy work of the
// change before it, although it removes nothing itself.
func NoteChange(when time.Time) {
	if !when.IsZero() && time.Since(when) < recentChange {
		removed.Store(true)
	}
}

// Pending reports whether Linger would hand sockets to a child now.
func Pending() bool { return removed.Load() && len(pooledConns()) > 0 }

// membarrierCmdGlobal is MEMBARRIER_CMD_GLOBAL of linux/membarrier.h.
const membarrierCmdGlobal = 1

// maxLingerFds bounds the descriptors the child keeps: the pipe and one socket
// per bridge namespace this process changed.
const maxLingerFds = 64

// Linger hands the nftables sockets this process keeps open (see With) to a
// child that closes them once this process has exited, when a batch that
// removes something was committed or a change came shortly before (see
// removed); else it does nothing. The process must not use the pool
// afterwards: call it just before exiting.
func Linger() error {
	pid, w, err := startLinger()
	if pid == 0 {
		return err
	}
	// The write end stays open, unreferenced, until this process exits: that
	// EOF is the child's signal. Nobody waits for the child; it is re-parented
	// when this process exits.
	lingerPipe = w
	return nil
}

// startLinger starts Linger's child and returns its pid with the write end of
// the pipe it waits on; pid 0 when there is nothing to hand over.
func startLinger() (int, *os.File, error) {
	if !removed.Load() {
		return 0, nil, nil
	}
	keep := new(lingerArgs)
	// Every connection stays locked until the child has its copies, so none is
	// closed (after Idle) and its number reused in between.
	for _, e := range pooledConns() {
		e.mu.Lock() // after the pool's lock, never under it: closeConn takes them the other way
		defer e.mu.Unlock()
		if e.conn != nil && keep.n < maxLingerFds-1 {
			if rc, err := e.conn.File().SyscallConn(); err == nil {
				_ = rc.Control(func(fd uintptr) { keep.add(int32(fd)) })
			}
		}
	}
	if keep.n == 0 {
		return 0, nil, nil
	}
	// Bare descriptors: os.Pipe would register both ends with the runtime's
	// poller, and Fd take the read end out again.
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return 0, nil, fmt.Errorf("linger nftables sockets: %w", err)
	}
	r, w := p[0], os.NewFile(uintptr(p[1]), "linger")
	defer unix.Close(r)
	keep.add(int32(r))
	keep.sort()
	keep.r = r
	lingerHeld.Lock()
	lingerHeld.args = append(lingerHeld.args, keep)
	lingerHeld.Unlock()
	pid, errno := forkLinger(keep)
	if errno != 0 {
		w.Close()
		return 0, nil, fmt.Errorf("linger nftables sockets: fork: %w", errno)
	}
	return pid, w, nil
}

// lingerArgs is all the child reads and writes besides its stack: the
// descriptors it keeps, ascending, the pipe's read end among them, and the
// buffer of its system calls. Each child has its own, on the heap, which a
// child sharing this process's memory needs (see lingerKept).
type lingerArgs struct {
	fd    [maxLingerFds]int32
	n     int
	r     int
	buf   [512]byte
	stack [lingerStack]byte
}

// lingerHeld keeps every child's lingerArgs reachable for as long as this
// process runs: a child that shares its memory uses them after Linger returns.
var lingerHeld struct {
	sync.Mutex
	args []*lingerArgs
}

func (k *lingerArgs) add(fd int32) { k.fd[k.n] = fd; k.n++ }

func (k *lingerArgs) sort() { slices.Sort(k.fd[:k.n]) }

// forkLinger starts the child, which runs lingerChild and never returns; the
// parent gets its pid. Signals are blocked around the start, so the child,
// which has Go's handlers but none of its runtime, starts with all of them
// blocked (SIGKILL still ends it). The thread's mask is changed and restored
// within one nosplit function making raw system calls only, which nothing can
// move to another thread (see ns.Socket): locking the thread instead would
// start the runtime's template thread, ~0.2 ms, in a command that has no
// other use for it.
//
//go:norace
//go:nosplit
func forkLinger(keep *lingerArgs) (int, syscall.Errno) {
	all, old := ^uint64(0), uint64(0)
	if _, _, errno := syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&all)), uintptr(unsafe.Pointer(&old)), 8, 0, 0); errno != 0 {
		return 0, errno
	}
	pid, errno := spawnLinger(keep)
	syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&old)), 0, 8, 0, 0)
	return pid, errno
}

// lingerChild closes every descriptor but keep's (the standard streams too:
// whoever reads this command's output must see its end when it exits), waits
// for EOF on keep.r, which comes when the parent has exited, then closes each
// socket once its namespace is quiet (see quietGen) and exits. No Go runtime
// runs in the child: it may only call nosplit functions that make raw system
// calls, allocate nothing and write no pointer.
//
//go:norace
//go:nosplit
func lingerChild(keep *lingerArgs) {
	r := keep.r
	lo := uintptr(0)
	for i := 0; i < keep.n; i++ {
		fd := uintptr(keep.fd[i])
		if fd > lo {
			closeRange(lo, fd-1)
		}
		lo = fd + 1
	}
	closeRange(lo, ^uintptr(0)>>33) // up to the largest descriptor number (INT_MAX)
	for {
		n, _, errno := syscall.RawSyscall(syscall.SYS_READ, uintptr(r), uintptr(unsafe.Pointer(&keep.buf[0])), uintptr(len(keep.buf)))
		if errno == syscall.EINTR || (errno == 0 && n > 0) {
			continue
		}
		break
	}
	for i := 0; i < keep.n; i++ {
		if fd := int(keep.fd[i]); fd != r {
			quietGen(fd, &keep.buf)
			syscall.RawSyscall(syscall.SYS_CLOSE, uintptr(fd), 0, 0)
		}
	}
	for {
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
	}
}

// quietGen waits until closing the nftables socket fd will not hold up
// anyone: until a grace period has passed in which no transaction committed
// in its namespace, so that the kernel's destroy list is empty and the close
// does not wait on it holding the commit mutex, which the next change of any
// process needs. A change that came right after this command's (a script of
// changes) would otherwise wait for that grace period mid-way. Each round is
// a grace period of its own (membarrier's global command is synchronize_rcu,
// taken without the mutex), bracketed by the namespace's generation; it gives
// up after lingerRounds and closes anyway, as it does when a generation
// cannot be read (then the close just waits).
//
//go:norace
//go:nosplit
func quietGen(fd int, buf *[512]byte) {
	// The parent is gone; the socket's answers need no poller any more.
	fl, _, errno := syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFL, 0)
	if errno == 0 {
		syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_SETFL, fl&^syscall.O_NONBLOCK)
	}
	// An answer that never comes ends the wait, not the child.
	syscall.RawSyscall6(syscall.SYS_SETSOCKOPT, uintptr(fd), syscall.SOL_SOCKET, syscall.SO_RCVTIMEO,
		uintptr(unsafe.Pointer(&lingerTimeout)), unsafe.Sizeof(lingerTimeout), 0)
	for round := 0; round < lingerRounds; round++ {
		before, ok := readGen(fd, buf)
		if _, _, errno := syscall.RawSyscall(unix.SYS_MEMBARRIER, membarrierCmdGlobal, 0, 0); errno != 0 || !ok {
			return
		}
		if after, ok := readGen(fd, buf); !ok || after == before {
			return
		}
	}
}

// lingerRounds bounds quietGen (a grace period is ~10 ms here): under a steady stream of
// changes the namespace is never quiet, and children that waited longer would pile up.
const lingerRounds = 5

// readGen asks the kernel for the nftables generation of fd's namespace
// (NFT_MSG_GETGEN), with b as the only memory it writes.
//
//go:norace
//go:nosplit
func readGen(fd int, b *[512]byte) (uint32, bool) {
	// nlmsghdr (host order) and nfgenmsg: a request, no acknowledgement.
	for i := 0; i < 20; i++ {
		b[i] = 0
	}
	b[0] = 20
	b[4], b[5] = unix.NFT_MSG_GETGEN, unix.NFNL_SUBSYS_NFTABLES
	b[6] = unix.NLM_F_REQUEST
	b[8] = 0x70 // sequence number
	if _, _, errno := syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), 20, 0,
		uintptr(unsafe.Pointer(&lingerKernel)), unsafe.Sizeof(lingerKernel)); errno != 0 {
		return 0, false
	}
	for {
		n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0, 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 || n < 20 {
			return 0, false
		}
		// The answer is one NEWGEN message, or an error; anything else still
		// queued is skipped.
		if b[8] != 0x70 {
			continue
		}
		if b[4] != unix.NFT_MSG_NEWGEN || b[5] != unix.NFNL_SUBSYS_NFTABLES {
			return 0, false
		}
		end := int(b[0]) | int(b[1])<<8 | int(b[2])<<16 | int(b[3])<<24
		if end > int(n) {
			end = int(n)
		}
		// Attributes after the 20 bytes of headers: NFTA_GEN_ID, big-endian.
		for off := 20; off+8 <= end; {
			alen := int(b[off]) | int(b[off+1])<<8
			if alen < 4 {
				break
			}
			if int(b[off+2])|int(b[off+3])<<8&0x3fff == unix.NFTA_GEN_ID && alen >= 8 {
				return uint32(b[off+4])<<24 | uint32(b[off+5])<<16 | uint32(b[off+6])<<8 | uint32(b[off+7]), true
			}
			off += (alen + 3) &^ 3
		}
		return 0, false
	}
}

// lingerKernel and lingerTimeout are what the child passes to its system
// calls by address: globals, since its stack must stay small (nosplit). It
// only reads them.
var (
	lingerKernel  = unix.RawSockaddrNetlink{Family: unix.AF_NETLINK}
	lingerTimeout = syscall.Timeval{Sec: 1}
)

// closeRange closes the descriptors lo..hi: close_range(2), or one by one up
// to the highest one open where that is missing (Linux before 5.9).
//
//go:norace
//go:nosplit
func closeRange(lo, hi uintptr) {
	if _, _, errno := syscall.RawSyscall(unix.SYS_CLOSE_RANGE, lo, hi, 0); errno == 0 {
		return
	}
	if hi > 1<<16 {
		hi = 1 << 16
	}
	for fd := lo; fd <= hi; fd++ {
		syscall.RawSyscall(syscall.SYS_CLOSE, fd, 0, 0)
	}
}

// lingerPipe keeps the write end reachable, so no finalizer closes it early.
var lingerPipe *os.File
