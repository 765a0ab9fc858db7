package partition

// Where the partition table sits, and why there are two kinds.
//
// Reject mode must answer a blocked TCP packet with a reset, built from the
// offending packet and sent back out of the sender's port so the sender sees
// the destination answer (no MAC, sysctl or routing of the bridge namespace
// involved). The kernel can do that in two families, and kernels differ in
// which one they build:
//
//   - netdev (BackendNetdev): base chains on the ingress hook of each guest's
//     port, reject by nft_reject_netdev (CONFIG_NFT_REJECT_NETDEV). Loss
//     towards a guest sits on the port's egress hook. google/nftables cannot
//     attach one netdev chain to several devices (NFTA_HOOK_DEVS), hence one
//     small base chain per port jumping to the shared "filter" chain.
//   - bridge (BackendBridge): one base chain on the bridge's prerouting hook
//     (the only hooks, with input, where nft_reject_bridge may run) that
//     sends each guest port's frames (meta iifname) to the same "filter"
//     chain, and one on postrouting (meta oifname) for loss towards a guest.
//     Only generic meta keys are used, so nft_meta_bridge is not needed.
//
// Debian 12's stock kernel (6.1) has bridge reject but not netdev reject;
// others have the opposite. Apply probes the kernel once per process
// (backend.go) and uses netdev when it can reject there, else bridge. Drop
// mode, loss and class marking live in the same table, so one transaction
// switches everything, and every transaction also deletes the table of the
// other family, so a change of backend never leaves one behind.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/google/nftables"
	mnl "github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// elemChunk bounds the set elements sent in one netlink message so a large
// batch stays well inside the socket buffer; all chunks are still one
// transaction.
const elemChunk = 512

// Connections to nf_tables are kept open between calls, per namespace.
//
// Closing a netfilter netlink socket runs nft_rcv_nl_event, which takes the
// namespace's commit mutex and waits for the pending "destroy" work of the
// previous transaction, i.e. an RCU grace period (~12 ms measured here, ~200
// times the commit itself). Closing after every apply would therefore make
// the next apply (and every other nftables user of that namespace) wait. A
// connection is closed after nftIdle without use, or by Release; a command
// about to exit hands it to Linger instead (linger.go).
//
// Connections are keyed by the namespace's inode, not its path, so a
// namespace re-created under the same path never gets a stale socket.
const nftIdle = time.Second

type nftConn struct {
	mu    sync.Mutex
	key   nsKey
	c     *nftables.Conn
	raw   *os.File // c's socket, for Linger
	timer *time.Timer
}

type nsKey struct{ dev, ino uint64 }

var nftPool = struct {
	sync.Mutex
	m map[nsKey]*nftConn
}{m: map[nsKey]*nftConn{}}

func netnsKey(nsPath string) (nsKey, error) {
	var st unix.Stat_t
	if err := unix.Stat(nsPath, &st); err != nil {
		return nsKey{}, fmt.Errorf("open bridge netns %q: %w", nsPath, err)
	}
	return nsKey{uint64(st.Dev), st.Ino}, nil
}

// withNft runs f with an nftables connection bound to the namespace at
// nsPath, without switching the calling thread's namespace. Calls for the
// same namespace are serialised, so batches never interleave.
func withNft(nsPath string, f func(c *nftables.Conn) error) error {
	key, err := netnsKey(nsPath)
	if err != nil {
		return err
	}
	nftPool.Lock()
	e := nftPool.m[key]
	if e == nil {
		e = &nftConn{key: key}
		nftPool.m[key] = e
	}
	nftPool.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.timer != nil {
		e.timer.Stop()
	}
	if e.c == nil {
		if err := e.open(nsPath); err != nil {
			return err
		}
	}
	err = f(e.c)
	if err != nil {
		// Answers to a failed batch may still be queued on the socket: start
		// afresh rather than skip them.
		e.close()
	}
	e.timer = time.AfterFunc(nftIdle, func() { closeConn(e) })
	return err
}

// open dials the nftables socket of the namespace at nsPath and puts e.c on it.
func (e *nftConn) open(nsPath string) error {
	fd, err := socketIn(nsPath)
	if err != nil {
		return fmt.Errorf("open nftables in bridge netns %q: %w", nsPath, err)
	}
	for _, opt := range nftSockOptions {
		if err := opt(fd); err != nil {
			unix.Close(fd)
			return fmt.Errorf("open nftables in bridge netns %q: %w", nsPath, err)
		}
	}
	raw := os.NewFile(uintptr(fd), "nftables") // non-blocking: the runtime's poller waits for it
	w := &wire{}
	if w.rc, err = raw.SyscallConn(); err != nil {
		raw.Close()
		return fmt.Errorf("open nftables in bridge netns %q: %w", nsPath, err)
	}
	// The library builds the messages; the wire carries them (see wire),
	// through the one seam the library has for its transport, the one it
	// offers tests.
	c, err := nftables.New(nftables.WithTestDial(w.exchange), nftables.AsLasting())
	if err != nil {
		raw.Close()
		return fmt.Errorf("open nftables in bridge netns %q: %w", nsPath, err)
	}
	e.c, e.raw = c, raw
	return nil
}

func (e *nftConn) close() {
	if e.c != nil {
		_ = e.c.CloseLasting()
		_ = e.raw.Close()
		e.c, e.raw = nil, nil
	}
}

// wire carries the messages an nftables.Conn builds to the kernel and back.
//
// The library asks for an acknowledgement of every message of a batch (and a
// copy of every rule it adds) and reads each answer with two system calls:
// on a bridge of 16 guests a change was ~440 reads, more than the kernel's
// work. A batch is all or nothing, and the kernel reports a message it
// refuses whether or not it was asked to, so the wire asks for the
// acknowledgement of the last message alone: once that has come, every
// answer to the batch has (the kernel sends them in order, after the
// commit), and the errors among them are the batch's. A batch the kernel
// refuses as a whole is answered on its first message. The library then
// reads, one by one, the errors and for the rest acknowledgements the wire
// makes up, so its own accounting stays as it is. A batch without errors ends
// the library's reading at once instead (errCommitted, see flush): reading a
// made-up acknowledgement per message cost more than the kernel's answer.
type wire struct {
	rc      syscall.RawConn
	buf     []byte        // one datagram; dumps come in datagrams of at most 32 KiB
	out     []byte        // the messages sent, marshalled
	pending []mnl.Message // errors the library has yet to read
}

// For tests: loseAnswers makes the wire leave a batch's answers unread and
// report them lost, as a receive buffer that overflowed does; spoilBatch, when
// n, gives the nth batch from now a message the kernel refuses in its middle.
var (
	loseAnswers atomic.Bool
	spoilBatch  atomic.Int32
)

// spoiled is req with a table-less NEWTABLE in its middle (EINVAL).
func spoiled(req []mnl.Message) []mnl.Message {
	bad := mnl.Message{Header: mnl.Header{Type: mnl.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWTABLE),
		Flags: mnl.Request | mnl.Create, Sequence: req[len(req)/2].Header.Sequence}, Data: []byte{unix.NFPROTO_NETDEV, 0, 0, 0}}
	return slices.Insert(slices.Clone(req), len(req)/2, bad)
}

// exchange is the nltest.Func under the library's netlink.Conn: req is what
// it sends, nil when it reads again.
func (w *wire) exchange(req []mnl.Message) ([]mnl.Message, error) {
	switch {
	case req == nil:
		if len(w.pending) > 0 {
			m := w.pending[0]
			w.pending = w.pending[1:]
			return []mnl.Message{m}, nil
		}
		return ackReply, nil
	case req[0].Header.Type == unix.NFNL_MSG_BATCH_BEGIN:
		return w.batch(req)
	default:
		return w.request(req)
	}
}

// ackReply is an acknowledgement, NLMSG_ERROR with error 0, as the answer to
// one read (the library only reads it).
var ackReply = []mnl.Message{{Header: mnl.Header{Type: mnl.Error, Length: 20}, Data: make([]byte, 4)}}

func (w *wire) batch(req []mnl.Message) ([]mnl.Message, error) {
	if spoilBatch.Load() > 0 && spoilBatch.Add(-1) == 0 {
		req = spoiled(req)
	}
	last := len(req) - 2 // the message before the batch's end
	w.out = w.out[:0]
	for i, m := range req {
		flags := m.Header.Flags &^ (mnl.Acknowledge | unix.NLM_F_ECHO)
		if i == last {
			flags |= mnl.Acknowledge
		}
		w.out = appendMessage(w.out, m, flags)
	}
	if err := w.send(); err != nil {
		return nil, err
	}
	if loseAnswers.Load() {
		return nil, unix.ENOBUFS
	}
	first, end := req[0].Header.Sequence, req[last].Header.Sequence
	w.pending = w.pending[:0]
	for done := false; !done; {
		msgs, err := w.receive()
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			seq := m.Header.Sequence
			if m.Header.Type != mnl.Error || seq-first > end-first {
				continue // not an answer to this batch
			}
			failed := len(m.Data) >= 4 && binary.NativeEndian.Uint32(m.Data) != 0
			if failed {
				w.pending = append(w.pending, m)
			}
			done = done || seq == end || (seq == first && failed)
		}
	}
	if len(w.pending) == 0 {
		return nil, errCommitted
	}
	return w.exchange(nil)
}

// errCommitted is the wire's answer to a batch the kernel committed: the
// library's Flush stops reading at the first error that is ENOBUFS (which
// answers no particular message), so it says it is; flush turns it into
// success.
var errCommitted error = committedError{}

type committedError struct{}

func (committedError) Error() string {
	return "nftables batch committed (its outcome is read by partition's flush, not Conn.Flush)"
}

func (committedError) Is(target error) bool { return target == syscall.ENOBUFS }

// flush sends the batch queued on c as one transaction and returns the
// kernel's verdict.
func flush(c *nftables.Conn) error {
	if err := c.Flush(); !errors.Is(err, errCommitted) {
		return err
	}
	return nil
}

// request sends one request (a dump or a lookup) and returns its answers.
func (w *wire) request(req []mnl.Message) ([]mnl.Message, error) {
	w.out = w.out[:0]
	for _, m := range req {
		w.out = appendMessage(w.out, m, m.Header.Flags)
	}
	if err := w.send(); err != nil {
		return nil, err
	}
	last := req[len(req)-1].Header
	dump := last.Flags&mnl.Dump == mnl.Dump
	var out []mnl.Message
	for {
		msgs, err := w.receive()
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if m.Header.Sequence != last.Sequence {
				continue
			}
			m.Header.PID = 0 // the library checks it against its own
			switch {
			case m.Header.Type == mnl.Error:
				if len(m.Data) >= 4 && binary.NativeEndian.Uint32(m.Data) != 0 {
					return []mnl.Message{m}, nil
				}
				if !dump {
					return out, nil // the acknowledgement after the answer
				}
			case m.Header.Type == mnl.Done:
				return append(out, m), nil
			default:
				out = append(out, m)
				if !dump && last.Flags&mnl.Acknowledge == 0 {
					return out, nil
				}
			}
		}
	}
}

func appendMessage(b []byte, m mnl.Message, flags mnl.HeaderFlags) []byte {
	n := 16 + len(m.Data)
	b = binary.NativeEndian.AppendUint32(b, uint32(n))
	b = binary.NativeEndian.AppendUint16(b, uint16(m.Header.Type))
	b = binary.NativeEndian.AppendUint16(b, uint16(flags))
	b = binary.NativeEndian.AppendUint32(b, m.Header.Sequence)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = append(b, m.Data...)
	for ; n%4 != 0; n++ {
		b = append(b, 0)
	}
	return b
}

// send writes w.out in one datagram, to the kernel (the socket's default
// destination).
func (w *wire) send() error {
	var err error
	werr := w.rc.Write(func(fd uintptr) bool {
		for {
			if _, err = unix.Write(int(fd), w.out); err != unix.EINTR {
				return err != unix.EAGAIN
			}
		}
	})
	if werr != nil {
		return werr
	}
	if err != nil {
		return os.NewSyscallError("sendmsg", err)
	}
	return nil
}

// receive reads one datagram and returns its messages, which keep their own
// copy of it.
func (w *wire) receive() ([]mnl.Message, error) {
	if w.buf == nil {
		w.buf = make([]byte, 64<<10)
	}
	var n int
	var err error
	rerr := w.rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&w.buf[0])), uintptr(len(w.buf)), syscall.MSG_TRUNC, 0, 0)
			n, err = int(r), nil
			if e != 0 {
				err = e
			}
			if err != unix.EINTR {
				return err != unix.EAGAIN // false: wait until there is something to read
			}
		}
	})
	if rerr != nil {
		return nil, rerr
	}
	if err != nil {
		return nil, os.NewSyscallError("recvmsg", err)
	}
	if n > len(w.buf) {
		return nil, fmt.Errorf("nftables answer of %d bytes: larger than the %d bytes read", n, len(w.buf))
	}
	b := slices.Clone(w.buf[:n])
	var msgs []mnl.Message
	for len(b) >= 16 {
		l := int(binary.NativeEndian.Uint32(b))
		if l < 16 || l > len(b) {
			return nil, fmt.Errorf("nftables answer: a message of %d bytes in %d", l, len(b))
		}
		msgs = append(msgs, mnl.Message{
			Header: mnl.Header{Length: uint32(l), Type: mnl.HeaderType(binary.NativeEndian.Uint16(b[4:])),
				Flags: mnl.HeaderFlags(binary.NativeEndian.Uint16(b[6:])), Sequence: binary.NativeEndian.Uint32(b[8:]),
				PID: binary.NativeEndian.Uint32(b[12:])},
			Data: b[16:l:l],
		})
		b = b[min((l+3)&^3, len(b)):]
	}
	return msgs, nil
}

// nftSockOptions make room for a whole batch and the answers to it, which
// the kernel sends at once after the commit: errors without a copy of the
// message they answer (NETLINK_CAP_ACK: the errors of a large batch refused
// as a whole are many), and buffers past the system's default limits (a
// transaction must go in one message; the FORCE options are for
// CAP_NET_ADMIN, which changing nftables needs anyway). An answer lost anyway
// is covered by reading the table back (commitVerified).
var nftSockOptions = []func(fd int) error{
	func(fd int) error { return unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1) },
	func(fd int) error { return forceBuffer(fd, unix.SO_RCVBUFFORCE, 4<<20) },
	func(fd int) error { return forceBuffer(fd, unix.SO_SNDBUFFORCE, 4<<20) },
}

// plainBuffer is the option forceBuffer falls back to: the FORCE options need CAP_NET_ADMIN
// over the initial user namespace, which root of a user namespace lacks even where it may
// change nftables; the plain ones are capped at net.core.rmem_max and wmem_max.
var plainBuffer = map[int]int{unix.SO_RCVBUFFORCE: unix.SO_RCVBUF, unix.SO_SNDBUFFORCE: unix.SO_SNDBUF}

func forceBuffer(fd, opt, size int) error {
	err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, size)
	if errors.Is(err, unix.EPERM) && plainBuffer[opt] != 0 {
		err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, plainBuffer[opt], size)
	}
	if err != nil {
		return fmt.Errorf("set socket option %d: %w", opt, err)
	}
	return nil
}

func closeConn(e *nftConn) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.timer != nil {
		e.timer.Stop() // under e.mu, which guards the timer too
	}
	nftPool.Lock()
	if nftPool.m[e.key] == e {
		delete(nftPool.m, e.key)
	}
	nftPool.Unlock()
	e.close()
}

// Release closes the nftables connections partition keeps open (they close
// by themselves after a second without use). An open connection holds a
// reference to its namespace, so call Release before relying on a bridge
// namespace disappearing at once. It waits for the kernel (see nftIdle).
func Release() {
	for _, e := range pooledConns() {
		closeConn(e)
	}
}

// pooledConns snapshots the pool so callers can take each connection's lock
// without holding nftPool's (closeConn takes them the other way round).
func pooledConns() []*nftConn {
	nftPool.Lock()
	defer nftPool.Unlock()
	conns := make([]*nftConn, 0, len(nftPool.m))
	for _, e := range nftPool.m {
		conns = append(conns, e)
	}
	return conns
}
