// Package nftwire carries the nftables batches pontoon builds with google/nftables to the
// kernel, over a socket the caller opened in the namespace it means: every nftables
// connection of pontoon goes through it (kernel.NS.Nftables, partition's kept connections).
//
// The library asks for an acknowledgement of every message of a batch (and a copy of every
// rule it adds) and reads each answer with two system calls; the wire asks for one
// acknowledgement per batch, writes a batch in one system call and reads each datagram in one
// (see wire).
package nftwire

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// Conn is an nftables connection on a socket of its own. Its Flush sends the queued batch as
// one transaction and returns the kernel's verdict; Close closes the socket. The embedded
// Conn's own Flush reports a committed batch as ENOBUFS: flush through Conn or Flush.
type Conn struct {
	*nftables.Conn
	file *os.File
	w    *wire
}

// Open puts a connection on fd, a NETLINK_NETFILTER socket opened non-blocking in the
// namespace to change, which the connection then owns (closed on failure too).
func Open(fd int) (*Conn, error) {
	for _, opt := range sockOptions {
		if err := opt(fd); err != nil {
			unix.Close(fd)
			return nil, err
		}
	}
	file := os.NewFile(uintptr(fd), "nftables") // non-blocking: the runtime's poller waits for it
	w := &wire{}
	var err error
	if w.rc, err = file.SyscallConn(); err != nil {
		file.Close()
		return nil, fmt.Errorf("nftables socket: %w", err)
	}
	// The library builds the messages; the wire carries them, through the one seam the
	// library has for its transport, the one it offers tests.
	c, err := nftables.New(nftables.WithTestDial(w.exchange), nftables.AsLasting())
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("nftables connection: %w", err)
	}
	return &Conn{Conn: c, file: file, w: w}, nil
}

// Flush sends the batch queued on c as one transaction and returns the kernel's verdict.
func (c *Conn) Flush() error { return Flush(c.Conn) }

// File is the connection's socket, valid until Close (to hand it to another process).
func (c *Conn) File() *os.File { return c.file }

// Close closes the connection and its socket. Closing a netfilter socket waits for the
// kernel to finish destroying what the connection's last transactions replaced.
func (c *Conn) Close() error {
	_ = c.Conn.CloseLasting()
	return c.file.Close()
}

// Flush sends the batch queued on c, a connection of Open, as one transaction and returns
// the kernel's verdict. Conn.Flush is the same; this is for code holding the library's Conn.
func Flush(c *nftables.Conn) error {
	if err := c.Flush(); !errors.Is(err, errCommitted) {
		return err
	}
	return nil
}

// errCommitted is the wire's answer to a batch the kernel committed: the library's Flush
// stops reading at the first error that is ENOBUFS (which answers no particular message),
// so it says it is; Flush turns it into success.
var errCommitted error = committedError{}

type committedError struct{}

func (committedError) Error() string {
	return "nftables batch committed (its outcome is read by nftwire.Flush, not Conn.Flush of google/nftables)"
}

func (committedError) Is(target error) bool { return target == syscall.ENOBUFS }

// sockOptions make room for a whole batch and the answers to it, which the kernel sends at
// once after the commit: errors without a copy of the message they answer (NETLINK_CAP_ACK:
// the errors of a large batch refused as a whole are many), and buffers past the system's
// default limits (a transaction must go in one message; the FORCE options are for
// CAP_NET_ADMIN, which changing nftables needs anyway).
var sockOptions = []func(fd int) error{
	func(fd int) error {
		if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1); err != nil {
			return fmt.Errorf("nftables socket: set NETLINK_CAP_ACK: %w", err)
		}
		return nil
	},
	func(fd int) error { return forceBuffer(fd, unix.SO_RCVBUFFORCE, 4<<20) },
	func(fd int) error { return forceBuffer(fd, unix.SO_SNDBUFFORCE, 4<<20) },
}

// plainBuffer is the option forceBuffer falls back to: the FORCE options need CAP_NET_ADMIN
// over the initial user namespace, which root of a user namespace lacks even where it may
// change nftables; the plain ones are capped at net.core.rmem_max and wmem_max.
func plainBuffer(opt int) int {
	switch opt {
	case unix.SO_RCVBUFFORCE:
		return unix.SO_RCVBUF
	case unix.SO_SNDBUFFORCE:
		return unix.SO_SNDBUF
	}
	return 0
}

func forceBuffer(fd, opt, size int) error {
	err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, size)
	if plain := plainBuffer(opt); errors.Is(err, unix.EPERM) && plain != 0 {
		err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, plain, size)
	}
	if err != nil {
		return fmt.Errorf("nftables socket: set socket option %d: %w", opt, err)
	}
	return nil
}
