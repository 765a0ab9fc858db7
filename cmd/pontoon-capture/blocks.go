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

// startCopier starts the copier writing to out (named name in its errors) and returns the
// pipe to write the capture into, and a wait that closes that pipe and says how the copier
// ended.
func startCopier(out *os.File, name string) (io.WriteCloser, func() error, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, fmt.Errorf("capture: start the file's writer: %w", err)
	}
	cmd := exec.Command(self, copierArg, name)
	cmd.Stdout, cmd.Stderr = out, os.Stderr
	w, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, fmt.Errorf("capture: start the file's writer: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("capture: start the file's writer: %w", err)
	}
	wait := func() error {
		w.Close()
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("capture: write %s: %w", name, err)
		}
		return nil
	}
	return w, wait, nil
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

// copyBlocks copies the pcapng blocks read from r to w, each write ending on a whole block,
// and drops an incomplete block at the end of r. pontoon's capture writes little-endian.
func copyBlocks(w io.Writer, r io.Reader) error {
	buf := make([]byte, 0, 1<<20)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // a block larger than the buffer: grow it
		}
		n, rerr := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		whole := wholePrefix(buf)
		if whole > 0 {
			if _, err := w.Write(buf[:whole]); err != nil {
				return err
			}
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
// body, total length again).
func wholePrefix(b []byte) int {
	at := 0
	for len(b)-at >= 12 {
		n := int(binary.LittleEndian.Uint32(b[at+4:]))
		if n < 12 || n > len(b)-at {
			break
		}
		at += n
	}
	return at
}
