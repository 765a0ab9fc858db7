package partition

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync/atomic"

	mnl "github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The last close of a netfilter netlink socket waits for the kernel.
//
// A transaction that removes anything (a heal, the rules and set elements a
// change replaces) leaves its objects on the kernel's destroy list, freed
// after an RCU grace period. Releasing the last reference to an nf_tables
// socket (nft_rcv_nl_event) takes the namespace's commit mutex and waits for
// that list to drain: ~10 ms here, measured from exit_group to the end of
// `pontoon partition heal`, more than all the rest of the command. A process
// that exits right after its change pays it on the user's time.
//
// Linger moves that wait off it: a child inherits the sockets and holds them
// until this process has exited (its standard input is a pipe whose only
// writer is this process), then exits and waits for the kernel unobserved.
// The bridge namespace, which the sockets reference, lives that much longer,
// as it would while the kernel finished any namespace removal.

// lingerArg0 is the child's argv[0]: DispatchLinger recognises it.
const lingerArg0 = "pontoon (nftables linger)"

// removed records that this process committed a batch that removes something
// (see above); only then is a lingering child worth its start.
var removed atomic.Bool

// DispatchLinger runs the child Linger starts, when this process is it, and
// never returns then. Call it first thing in main.
func DispatchLinger() {
	if len(os.Args) == 0 || os.Args[0] != lingerArg0 {
		return
	}
	// The descriptors inherited (3 and up) stay open until exit. EOF on stdin:
	// the parent has exited.
	_, _ = io.Copy(io.Discard, os.Stdin)
	// Closing while the kernel's destroy work is still in its grace period
	// would wait for it holding the namespace's commit mutex, and so hold up
	// the next change of any process. A grace period of our own (membarrier's
	// global command is synchronize_rcu) without that mutex lets the work
	// finish first; where membarrier is missing, the close just waits.
	_, _, _ = unix.Syscall(unix.SYS_MEMBARRIER, membarrierCmdGlobal, 0, 0)
	os.Exit(0)
}

// membarrierCmdGlobal is MEMBARRIER_CMD_GLOBAL of linux/membarrier.h.
const membarrierCmdGlobal = 1

// Linger hands the nftables sockets this process keeps open (see withNft) to
// a child that closes them once this process has exited, when a batch that
// removes something was committed; else it does nothing. The process must
// not use partition afterwards: call it just before exiting. The child is the
// running executable (/proc/self/exe), which must call DispatchLinger.
func Linger() error {
	child, w, err := startLinger()
	if child == nil {
		return err
	}
	// The write end stays open, unreferenced, until this process exits: that
	// EOF is the child's signal. Nobody waits for the child; it is re-parented
	// when this process exits.
	lingerPipe = w
	return child.Release()
}

// startLinger starts Linger's child and returns it with the write end of its
// standard input; nil when there is nothing to hand over.
func startLinger() (*os.Process, *os.File, error) {
	if !removed.Load() {
		return nil, nil, nil
	}
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, e := range pooledConns() {
		e.mu.Lock() // after nftPool's lock, never under it: closeConn takes them the other way
		if e.raw != nil {
			if f := dupSocket(e.raw); f != nil {
				files = append(files, f)
			}
		}
		e.mu.Unlock()
	}
	if len(files) == 0 {
		return nil, nil, nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("linger nftables sockets: %w", err)
	}
	defer r.Close()
	cmd := &exec.Cmd{Path: "/proc/self/exe", Args: []string{lingerArg0}, Stdin: r, ExtraFiles: files}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, nil, fmt.Errorf("linger nftables sockets: %w", err)
	}
	return cmd.Process, w, nil
}

// lingerPipe keeps the write end reachable, so no finalizer closes it early.
var lingerPipe *os.File

func dupSocket(c *mnl.Conn) *os.File {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	var f *os.File
	_ = rc.Control(func(fd uintptr) {
		if nfd, err := unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0); err == nil {
			f = os.NewFile(uintptr(nfd), "nftables")
		}
	})
	return f
}
