package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/pcapgo"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/probe"
	"github.com/pontoon-dev/pontoon/testenv"
	"golang.org/x/sys/unix"
)

// asCapture, in the environment, makes the test binary run as pontoon-capture itself, so that a
// test can kill a capture process.
const asCapture = "PONTOON_CAPTURE_TEST_MAIN"

// TestMain lets the test binary stand in for pontoon-capture: as the copier the capture starts
// (os.Executable is the test binary), and as the capture a test kills.
func TestMain(m *testing.M) {
	if (len(os.Args) == 3 && os.Args[1] == copierArg) || os.Getenv(asCapture) != "" {
		os.Unsetenv(asCapture)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestKilledCaptureEndsOnWholeBlocks kills a capture (kill -9) in the middle of writing a
// batch of blocks: with standard output a pipe nobody reads yet, a flood of large frames makes
// the capture's next write wait in write(2) with part of its batch in the pipe. What comes out
// of the pipe must still read to a clean end. (A write to a file ends short the same way when
// its process is killed between two pages.)
func TestKilledCaptureEndsOnWholeBlocks(t *testing.T) {
	env := testenv.New(t)
	n1 := env.Guest("n1", "172.18.0.1")
	n2 := env.Guest("n2", "172.18.0.2")
	fr := probe.Frame(netsetup.GuestMAC(n2.IP()), netsetup.GuestMAC(n1.IP()), probe.EtherIPv4, probe.IPv4UDP(n1.IP(), n2.IP(), 9999, strings.Repeat("x", 1400)))
	burst := make([][]byte, 100)
	for i := range burst {
		burst[i] = fr
	}
	stop, flooded := make(chan struct{}), make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				flooded <- nil
				return
			default:
			}
			if err := probe.SendFrames(n1.Netns(), burst...); err != nil {
				flooded <- err
				return
			}
		}
	}()
	defer func() {
		close(stop)
		if err := <-flooded; err != nil {
			t.Error(err)
		}
	}()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command(os.Args[0], "-w", "-", "--", env.Bridge().Name)
	cmd.Env = append(append(os.Environ(), asCapture+"=1"), env.Sandbox().Env.Environ()...)
	cmd.Stdout = w
	// A file, not a pipe: Wait would wait for the copier too, which waits for this test to read.
	stderr, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	// Once the pipe is full, the capture's batches wait with part of them written. Full is
	// when what the pipe holds stops growing while the flood goes on: how much a pipe takes
	// depends on the sizes of the writes (each starts a new page unless it fits the last).
	full := false
	for deadline, last, still := time.Now().Add(20*time.Second), 0, 0; !full && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		n, err := unix.IoctlGetInt(int(r.Fd()), unix.TIOCINQ)
		if err != nil || n < 8<<10 || n != last {
			last, still = n, 0
			continue
		}
		still++
		full = still == 10
	}
	cmd.Process.Kill()
	cmd.Wait()
	if !full {
		said, _ := os.ReadFile(stderr.Name())
		t.Fatalf("the capture never filled its pipe; it said:\n%s", said)
	}
	// The pipe ends when its last writer, the copier, has finished.
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	ng, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatalf("%d bytes: %v", len(b), err)
	}
	n := 0
	for ; err == nil; n++ {
		_, _, err = ng.ReadPacketData()
	}
	if !errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || n < 10 {
		t.Errorf("the killed capture's output (%d bytes) reads %d packets and then: %v", len(b), n-1, err)
	}
	// Walked here again, not by the copier's own code: each block repeats its length at its end.
	at := 0
	for len(b)-at >= 12 {
		n := int(binary.LittleEndian.Uint32(b[at+4:]))
		if n < 12 || n > len(b)-at || int(binary.LittleEndian.Uint32(b[at+n-4:])) != n {
			break
		}
		at += n
	}
	if at != len(b) {
		t.Errorf("the killed capture's output (%d bytes) ends inside a block that starts at byte %d", len(b), at)
	}
}
