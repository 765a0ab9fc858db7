package nftwire

import (
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"syscall"
	"unsafe"

	mnl "github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

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
// the library's reading at once instead (errCommitted, see Flush): reading a
// made-up acknowledgement per message cost more than the kernel's answer.
type wire struct {
	rc      syscall.RawConn
	buf     []byte        // one datagram; dumps come in datagrams of at most 32 KiB
	out     []byte        // the messages sent, marshalled
	pending []mnl.Message // errors the library has yet to read
	gen     uint16        // the generation the last answer to a listing carried (gen.go)
	genSeen bool
}

// Faults the wire makes on request, for tests of its callers (every wire of the process
// obeys them): LoseAnswers makes it leave a batch's answers unread and report them lost, as
// a receive buffer that overflowed does; SpoilBatch, when n, gives the nth batch from now a
// message the kernel refuses in its middle, and counts down to 0 as batches are sent.
var (
	LoseAnswers atomic.Bool
	SpoilBatch  atomic.Int32
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
var ackReply = []mnl.Message{{Header: mnl.Header{Type: mnl.Error, Length: 20}, Data: []byte{0, 0, 0, 0}}}

func (w *wire) batch(req []mnl.Message) ([]mnl.Message, error) {
	if SpoilBatch.Load() > 0 && SpoilBatch.Add(-1) == 0 {
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
	if LoseAnswers.Load() {
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

// request sends one request (a dump or a lookup) and returns its answers.
func (w *wire) request(req []mnl.Message) ([]mnl.Message, error) {
	if err := w.sendAll(req); err != nil {
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

// lookups sends requests that are each answered by one message (lookups without a dump or an
// acknowledgement) in one datagram and returns the answers in the requests' order.
func (w *wire) lookups(req []mnl.Message) ([]mnl.Message, error) {
	if err := w.sendAll(req); err != nil {
		return nil, err
	}
	out := make([]mnl.Message, len(req))
	for left := len(req); left > 0; {
		msgs, err := w.receive()
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			for i := range req {
				if m.Header.Sequence == req[i].Header.Sequence && out[i].Header.Type == 0 {
					out[i] = m
					left--
				}
			}
		}
	}
	return out, nil
}

// sendAll writes the messages of req in one datagram.
func (w *wire) sendAll(req []mnl.Message) error {
	w.out = w.out[:0]
	for _, m := range req {
		w.out = appendMessage(w.out, m, m.Header.Flags)
	}
	return w.send()
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
		m := mnl.Message{
			Header: mnl.Header{Length: uint32(l), Type: mnl.HeaderType(binary.NativeEndian.Uint16(b[4:])),
				Flags: mnl.HeaderFlags(binary.NativeEndian.Uint16(b[6:])), Sequence: binary.NativeEndian.Uint32(b[8:]),
				PID: binary.NativeEndian.Uint32(b[12:])},
			Data: b[16:l:l],
		}
		w.noteGen(m)
		msgs = append(msgs, m)
		b = b[min((l+3)&^3, len(b)):]
	}
	return msgs, nil
}
