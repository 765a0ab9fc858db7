package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

// A write(2) of many pages ends short when its process is killed: the kernel looks for a fatal
// signal between pages. The capture hands the file its blocks a batch at a time, so a capture
// killed by kill -9 during such a write would leave a file that ends inside a block, which
// tcpdump reports as cut short. The file is therefore written by a child of the capture, the
// copier, which reads the blocks from a pipe and writes only whole ones. When the capture dies,
// the copier reads the end of the pipe, drops a block the capture was cut off in, and exits.

// copierArg, as the first argument, makes this binary the copier.
const copierArg = "--pontoon-copy-blocks"

// copier is the running copier: In takes the capture's output.
type copier struct {
	In     io.WriteCloser
	name   string
	ended  chan struct{} // closed when the copier has exited
	status error         // how it exited, once ended is closed
}

// startCopier starts the copier writing to out, named name in its errors. It runs this very
// binary (/proc/self/exe: the file may have been replaced since this process started).
func startCopier(out *os.File, name string) (*copier, error) {
	cmd := exec.Command("/proc/self/exe", copierArg, name)
	cmd.Stdout, cmd.Stderr = out, os.Stderr
	w, err := cmd.StdinPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		return nil, fmt.Errorf("capture: start the writer of %s: %w", name, err)
	}
	c := &copier{In: w, name: name, ended: make(chan struct{})}
	go func() { c.status = cmd.Wait(); close(c.ended) }()
	return c, nil
}

// Ended is closed when the copier has exited: early, when it could not write.
func (c *copier) Ended() <-chan struct{} { return c.ended }

// Finish closes the capture's pipe, waits for the copier to write what it holds, and says how
// it ended. A copier whose reader went away (`-w - | head`) died of SIGPIPE; so does this
// process then, silently, as tcpdump does: its own standard output is that closed pipe, and a
// Go program dies of SIGPIPE when it writes to standard output that is one.
func (c *copier) Finish() error {
	c.In.Close()
	<-c.ended
	var ee *exec.ExitError
	if errors.As(c.status, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGPIPE {
			_, _ = os.Stdout.Write([]byte{0})
		}
	}
	if c.status != nil {
		return fmt.Errorf("capture: write %s: %w (the reason is above)", c.name, c.status)
	}
	return nil
}

// copierMain is the copier: standard input to standard output, whole blocks only. Ctrl-C at a
// terminal reaches it with the capture; it ignores that and ends with the capture's pipe.
func copierMain(name string) int {
	signal.Ignore(os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	if err := copyBlocks(os.Stdout, os.Stdin); err != nil {
		fmt.Fprintf(os.Stderr, "pontoon: capture: write %s: %v\n", name, err)
		return 1
	}
	return 0
}

// maxBlock bounds a block's length: a packet of the largest snap length with its headers.
const maxBlock = 1 << 20

// copyBlocks copies the pcapng blocks read from r to w, each write ending on a whole block,
// and drops an incomplete block at the end of r. pontoon's capture writes little-endian. A
// write that fails halfway is cut back to the last whole block when w is a regular file.
func copyBlocks(w *os.File, r io.Reader) error {
	buf := make([]byte, 0, 1<<20)
	var written int64
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // a block larger than the buffer: grow it
		}
		n, rerr := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		whole, err := wholePrefix(buf)
		if err != nil {
			return fmt.Errorf("the capture's output: %w", err)
		}
		if whole > 0 {
			if _, err := w.Write(buf[:whole]); err != nil {
				if st, serr := w.Stat(); serr == nil && st.Mode().IsRegular() {
					_ = w.Truncate(written)
				}
				return err
			}
			written += int64(whole)
			buf = buf[:copy(buf, buf[whole:])]
		}
		switch {
		case errors.Is(rerr, io.EOF):
			return nil
		case rerr != nil:
			return rerr
		}
	}
}

// wholePrefix returns how many bytes at the start of b are whole blocks (type, total length,
// body, total length again), or an error for a block that cannot be one.
func wholePrefix(b []byte) (int, error) {
	at := 0
	for len(b)-at >= 12 {
		n := int(binary.LittleEndian.Uint32(b[at+4:]))
		if n < 12 || n%4 != 0 || n > maxBlock {
			return at, fmt.Errorf("a block of %d bytes at byte %d", n, at)
		}
		if n > len(b)-at {
			break
		}
		if tail := int(binary.LittleEndian.Uint32(b[at+n-4:])); tail != n {
			return at, fmt.Errorf("a block of %d bytes at byte %d ends saying %d", n, at, tail)
		}
		at += n
	}
	return at, nil
}
