package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/probe"
	"github.com/pontoon-dev/pontoon/testenv"
)

// TestCopierRefusesWhatIsNoBlock: output that cannot be pcapng blocks (a length under 12, not
// a multiple of 4, absurdly long, or not repeated at the block's end) is an error, not a
// buffer that grows until the end and is then dropped with success.
func TestCopierRefusesWhatIsNoBlock(t *testing.T) {
	block := func(n, tail uint32) []byte {
		b := make([]byte, n)
		binary.LittleEndian.PutUint32(b[4:], n)
		binary.LittleEndian.PutUint32(b[n-4:], tail)
		return b
	}
	for name, in := range map[string][]byte{
		"length 8":         bytes.Repeat([]byte{8}, 64),
		"length 14":        append(block(16, 16), 0, 0, 0, 0, 14, 0, 0, 0, 0, 0, 0, 0),
		"length 64 MiB":    {1, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0},
		"tail disagreeing": block(32, 28),
	} {
		out, err := os.CreateTemp(t.TempDir(), "out")
		if err != nil {
			t.Fatal(err)
		}
		if err := copyBlocks(out, bytes.NewReader(in)); err == nil {
			t.Errorf("%s: copied without complaint", name)
		}
		out.Close()
	}
	out, _ := os.CreateTemp(t.TempDir(), "out")
	whole := append(block(16, 16), block(24, 24)...)
	if err := copyBlocks(out, bytes.NewReader(append(whole, block(32, 32)[:20]...))); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out.Name()); !bytes.Equal(got, whole) {
		t.Errorf("copied %d bytes, want the %d of the two whole blocks", len(got), len(whole))
	}
}

// TestCaptureOutputGoneOrFull: a reader that goes away (`-w - | head -c 100`) ends the
// capture silently by SIGPIPE, as it ends tcpdump; a full disk ends it with status 1 and the
// reason, not with the broken pipe that follows from it.
func TestCaptureOutputGoneOrFull(t *testing.T) {
	env := testenv.New(t)
	n1 := env.Guest("n1", "172.18.0.1")
	n2 := env.Guest("n2", "172.18.0.2")
	fr := probe.Frame(netsetup.GuestMAC(n2.IP()), netsetup.GuestMAC(n1.IP()), probe.EtherIPv4, probe.IPv4UDP(n1.IP(), n2.IP(), 9999, strings.Repeat("x", 1000)))
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
				_ = probe.SendFrames(n1.Netns(), fr)
			}
		}
	}()
	capture := func(stdout *os.File) (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.Command(os.Args[0], "-w", "-", "--", env.Bridge().Name)
		cmd.Env = append(append(os.Environ(), asCapture+"=1"), env.Sandbox().Env.Environ()...)
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &stderr
	}
	wait := func(cmd *exec.Cmd) error {
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Fatal("the capture did not end")
			return nil
		}
	}

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd, stderr := capture(w)
	w.Close()
	if _, err := r.Read(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	r.Close()
	err = wait(cmd)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGPIPE {
		t.Errorf("reader gone: the capture ended with %v, want death by SIGPIPE; it said:\n%s", err, stderr)
	}

	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skip(err)
	}
	defer full.Close()
	cmd, stderr = capture(full)
	err = wait(cmd)
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), "no space left on device") || strings.Contains(stderr.String(), "broken pipe") {
		t.Errorf("disk full: the capture ended with %v, want status 1 and the reason; it said:\n%s", err, stderr)
	}
}
