package capture_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket/pcapgo"
	"github.com/pontoon-dev/pontoon/capture"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/probe"
	"github.com/pontoon-dev/pontoon/testenv"
)

// TestGuestLeavesMidCapture removes a captured guest while the capture runs: the capture goes
// on with the others, ends without an error, and says the guest left; once every captured
// guest has left, it ends by itself.
func TestGuestLeavesMidCapture(t *testing.T) {
	env := testenv.New(t)
	n1 := env.Guest("n1", "172.18.0.1")
	n2 := env.Guest("n2", "172.18.0.2")
	n3 := env.Guest("n3", "172.18.0.3")
	path := filepath.Join(t.TempDir(), "leave.pcapng")
	c := env.Capture(path, capture.Options{})
	sendUDP(t, n1, n2, "before-n1-left")
	if err := netsetup.DelGuest(env.Sandbox().Env, env.Bridge().Name, "n1"); err != nil {
		t.Fatal(err)
	}
	sendUDP(t, n2, n3, "after-n1-left")
	waitPackets(t, c, "n3", 1)
	select {
	case <-c.Done():
		res, err := c.Wait()
		t.Fatalf("the capture ended when n1 left: %+v, %v", res, err)
	default:
	}
	// n2 and n3 leave too: nothing is left to capture.
	for _, g := range []string{"n2", "n3"} {
		if err := netsetup.DelGuest(env.Sandbox().Env, env.Bridge().Name, g); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-c.Done():
	case <-time.After(time.Minute):
		t.Fatal("the capture goes on with every captured guest gone")
	}
	res, err := c.Wait()
	if err != nil {
		t.Fatalf("a guest leaving failed the capture: %v", err)
	}
	for _, i := range res.Interfaces {
		if !i.Left {
			t.Errorf("%s: left not reported: %+v", i.Guest, i)
		}
	}
	f := readBack(t, path)
	if n := f.count("n1", payload("before-n1-left")); n != 1 {
		t.Errorf("n1: the datagram sent before it left is there %d times, want 1", n)
	}
	if n := f.count("n3", payload("after-n1-left")); n != 1 {
		t.Errorf("n3: the datagram sent after n1 left is there %d times, want 1", n)
	}
}

func waitPackets(t *testing.T, c *capture.Capture, guest string, n uint64) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); c.Packets()[guest] < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d packets captured, want %d", guest, c.Packets()[guest], n)
		}
	}
}

// writes records what each Write handed to the file. Writes after the first (the header)
// wait until gate is closed, so that frames queue up behind a slow disk.
type writes struct {
	gate chan struct{}
	mu   sync.Mutex
	data bytes.Buffer
	ends []int
}

func (w *writes) Write(p []byte) (int, error) {
	w.mu.Lock()
	header := len(w.ends) == 0
	w.mu.Unlock()
	if !header {
		<-w.gate
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.data.Write(p)
	w.ends = append(w.ends, w.data.Len())
	return len(p), nil
}

// TestFileEndsOnWholeBlocks captures a burst of large frames behind a slow disk and reads the file back as it
// was after each write: a capture killed at any point (kill -9) leaves a file that tcpdump
// and pcapgo read to its end without complaint.
func TestFileEndsOnWholeBlocks(t *testing.T) {
	env := testenv.New(t)
	n1 := env.Guest("n1", "172.18.0.1")
	n2 := env.Guest("n2", "172.18.0.2")
	w := writes{gate: make(chan struct{})}
	const burst = 300
	c, err := capture.Start(t.Context(), env.Target(), &w, capture.Options{Count: 2 * burst})
	if err != nil {
		t.Fatal(err)
	}
	fr := probe.Frame(netsetup.GuestMAC(n2.IP()), netsetup.GuestMAC(n1.IP()), probe.EtherIPv4, probe.IPv4UDP(n1.IP(), n2.IP(), 9999, strings.Repeat("x", 1400)))
	frames := make([][]byte, burst)
	for i := range frames {
		frames[i] = fr
	}
	if err := probe.SendFrames(n1.Netns(), frames...); err != nil {
		t.Fatal(err)
	}
	close(w.gate)
	select {
	case <-c.Done():
	case <-time.After(time.Minute):
		c.Stop()
	}
	if _, err := c.Wait(); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	all := w.data.Bytes()
	if len(all) < 64<<10 {
		t.Fatalf("%d bytes captured; the test needs a backlog far larger than a write buffer", len(all))
	}
	for i, end := range w.ends {
		if at, err := wholeBlocks(all[:end]); err != nil {
			t.Fatalf("the file as it was after write %d of %d (%d bytes) ends inside a block at byte %d: %v", i+1, len(w.ends), end, at, err)
		}
	}
	if r, err := pcapgo.NewNgReader(bytes.NewReader(all), pcapgo.DefaultNgReaderOptions); err != nil {
		t.Fatal(err)
	} else if _, _, err := r.ReadPacketData(); err != nil {
		t.Fatalf("first packet: %v", err)
	}
}

// wholeBlocks walks a pcapng file's blocks (type, total length, body, total length again)
// and fails unless the last one ends at the end of b.
func wholeBlocks(b []byte) (int, error) {
	at := 0
	for at < len(b) {
		if len(b)-at < 12 {
			return at, fmt.Errorf("%d bytes left, less than a block", len(b)-at)
		}
		n := int(binary.LittleEndian.Uint32(b[at+4:]))
		if n < 12 || n%4 != 0 || n > len(b)-at {
			return at, fmt.Errorf("a block of %d bytes, %d left", n, len(b)-at)
		}
		if tail := int(binary.LittleEndian.Uint32(b[at+n-4:])); tail != n {
			return at, fmt.Errorf("block length %d at the start, %d at the end", n, tail)
		}
		at += n
	}
	return at, nil
}
