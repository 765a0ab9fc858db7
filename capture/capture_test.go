package capture_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/pontoon-dev/pontoon/capture"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/probe"
	"github.com/pontoon-dev/pontoon/testenv"
)

// file is a pcapng file read back with gopacket's reader.
type file struct {
	ifaces  []string
	packets []packet
}

type packet struct {
	iface int
	data  []byte
}

func readBack(t *testing.T, path string) file {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var out file
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read %s: packet %d: %v", path, len(out.packets), err)
		}
		out.packets = append(out.packets, packet{ci.InterfaceIndex, slices.Clone(data)})
	}
	for i := range r.NInterfaces() {
		intf, err := r.Interface(i)
		if err != nil {
			t.Fatal(err)
		}
		out.ifaces = append(out.ifaces, intf.Name)
	}
	return out
}

// count returns how many packets of interface iface satisfy match.
func (f file) count(iface string, match func(gopacket.Packet) bool) int {
	i := slices.Index(f.ifaces, iface)
	n := 0
	for _, p := range f.packets {
		if p.iface == i && match(gopacket.NewPacket(p.data, layers.LayerTypeEthernet, gopacket.Default)) {
			n++
		}
	}
	return n
}

func payload(s string) func(gopacket.Packet) bool {
	return func(p gopacket.Packet) bool {
		app := p.ApplicationLayer()
		return app != nil && bytes.Equal(app.Payload(), []byte(s))
	}
}

func echoRequest(src, dst string) func(gopacket.Packet) bool {
	return func(p gopacket.Packet) bool {
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		icmp, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		return ip != nil && icmp != nil && icmp.TypeCode.Type() == layers.ICMPv4TypeEchoRequest &&
			ip.SrcIP.String() == src && ip.DstIP.String() == dst
	}
}

// sendUDP sends one datagram with the given payload from guest a to guest b as a raw frame, so
// that it leaves a at once whatever a's neighbour table holds.
func sendUDP(t *testing.T, a, b *testenv.Guest, text string) {
	t.Helper()
	fr := probe.Frame(netsetup.GuestMAC(b.IP()), netsetup.GuestMAC(a.IP()), probe.EtherIPv4, probe.IPv4UDP(a.IP(), b.IP(), 9999, text))
	if err := probe.SendFrames(a.Netns(), fr); err != nil {
		t.Fatal(err)
	}
}

// TestCaptureSeesPassedAndDropped captures two of three guests while they ping and while a
// partition drops n1's traffic: the file has one interface per captured guest, a frame that
// passed is on both its sender's and its receiver's interface, and a frame the partition
// dropped is on its sender's interface only.
func TestCaptureSeesPassedAndDropped(t *testing.T) {
	env := testenv.New(t)
	n1 := env.Guest("n1", "172.18.0.1")
	n2 := env.Guest("n2", "172.18.0.2")
	env.Guest("n3", "172.18.0.3")
	path := filepath.Join(t.TempDir(), "guests.pcapng")
	c := env.Capture(path, capture.Options{Guests: []string{"n1", "172.18.0.2"}})

	const pings = 3
	for range pings {
		if err := probe.Ping(n1.Netns(), n2.IP(), 2*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	sendUDP(t, n1, n2, "pontoon-passed")
	env.Isolate("n1")
	sendUDP(t, n1, n2, "pontoon-dropped")
	if err := probe.Ping(n1.Netns(), n2.IP(), 300*time.Millisecond); err == nil {
		t.Fatal("n1 reached n2 through the isolation")
	}
	res, err := c.Stop()
	if err != nil {
		t.Fatal(err)
	}

	f := readBack(t, path)
	if !slices.Equal(f.ifaces, []string{"n1", "n2"}) {
		t.Fatalf("interfaces %q, want [n1 n2]", f.ifaces)
	}
	if uint64(len(f.packets)) != res.Packets || res.Interfaces[0].Packets+res.Interfaces[1].Packets != res.Packets {
		t.Fatalf("file holds %d packets, the capture reports %+v", len(f.packets), res)
	}
	for _, iface := range []string{"n1", "n2"} {
		if n := f.count(iface, echoRequest("172.18.0.1", "172.18.0.2")); n < pings {
			t.Errorf("%s: %d echo requests n1 -> n2 passed, want at least %d", iface, n, pings)
		}
		if n := f.count(iface, payload("pontoon-passed")); n != 1 {
			t.Errorf("%s: the datagram that passed is there %d times, want 1", iface, n)
		}
	}
	if n := f.count("n1", payload("pontoon-dropped")); n != 1 {
		t.Errorf("n1: the dropped datagram is there %d times, want 1", n)
	}
	if n := f.count("n2", payload("pontoon-dropped")); n != 0 {
		t.Errorf("n2: the dropped datagram reached n2's side %d times; it must have been dropped", n)
	}
	// The echo request sent during the isolation is on n1's side only.
	if n1req, n2req := f.count("n1", echoRequest("172.18.0.1", "172.18.0.2")), f.count("n2", echoRequest("172.18.0.1", "172.18.0.2")); n1req != n2req+1 {
		t.Errorf("echo requests n1 -> n2: %d on n1's side, %d on n2's; want exactly one more on n1's (the dropped one)", n1req, n2req)
	}

	t.Run("tcpdump", func(t *testing.T) {
		if _, err := exec.LookPath("tcpdump"); err != nil {
			t.Skip("tcpdump is not installed (make test installs it)")
		}
		// One line per packet on stdout (-q); tcpdump's own notes go to stderr.
		out, err := exec.Command("tcpdump", "-r", path, "-n", "-q").Output()
		if err != nil {
			t.Fatalf("tcpdump -r: %v\n%s", err, out)
		}
		lines := len(strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(out)), " ", "_")))
		if uint64(lines) != res.Packets {
			t.Errorf("tcpdump reads %d packets, the capture wrote %d:\n%s", lines, res.Packets, out)
		}
		out, err = exec.Command("tcpdump", "-r", path, "-n", "-A", "udp", "port", "9999").CombinedOutput()
		if err != nil {
			t.Fatalf("tcpdump -r: %v\n%s", err, out)
		}
		if p, d := strings.Count(string(out), "pontoon-passed"), strings.Count(string(out), "pontoon-dropped"); p != 2 || d != 1 {
			t.Errorf("tcpdump shows the passed datagram %d times (want 2) and the dropped one %d times (want 1):\n%s", p, d, out)
		}
	})
}

// TestCaptureStopsAtCount ends a capture by its packet count while traffic goes on.
func TestCaptureStopsAtCount(t *testing.T) {
	env := testenv.New(t)
	n1 := env.Guest("n1", "172.18.0.1")
	n2 := env.Guest("n2", "172.18.0.2")
	path := filepath.Join(t.TempDir(), "count.pcapng")
	c := env.Capture(path, capture.Options{Count: 5})
	// Each round trip is four frames (request and reply, each on both ports); traffic goes on
	// until the capture has stopped by itself.
	for deadline := time.Now().Add(30 * time.Second); ; {
		select {
		case <-c.Done():
		default:
			if time.Now().After(deadline) {
				t.Fatalf("the capture did not stop after 5 packets: %v", c.Packets())
			}
			if err := probe.Ping(n1.Netns(), n2.IP(), 2*time.Second); err != nil {
				t.Log(err)
			}
			continue
		}
		break
	}
	res, err := c.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if f := readBack(t, path); res.Packets != 5 || len(f.packets) != 5 || !slices.Equal(f.ifaces, []string{"n1", "n2"}) {
		t.Fatalf("capture reports %d packets, the file holds %d on %q; want 5 on [n1 n2]", res.Packets, len(f.packets), f.ifaces)
	}
}

// TestCaptureStopsAfterDuration ends a capture by its duration, with nobody calling Stop.
func TestCaptureStopsAfterDuration(t *testing.T) {
	env := testenv.New(t)
	env.Guest("n1", "172.18.0.1")
	path := filepath.Join(t.TempDir(), "duration.pcapng")
	c := env.Capture(path, capture.Options{Duration: 100 * time.Millisecond})
	select {
	case <-c.Done():
	case <-time.After(time.Minute):
		t.Fatal("the capture did not stop after its duration")
	}
	if _, err := c.Wait(); err != nil {
		t.Fatal(err)
	}
	if f := readBack(t, path); !slices.Equal(f.ifaces, []string{"n1"}) {
		t.Fatalf("interfaces %q, want [n1]", f.ifaces)
	}
}

func TestCaptureRefusesBadInput(t *testing.T) {
	env := testenv.New(t)
	env.Guest("n1", "172.18.0.1")
	for _, tc := range []struct {
		o    capture.Options
		want string
	}{
		{capture.Options{Guests: []string{"n9"}}, `unknown guest "n9"; the bridge's guests are n1`},
		{capture.Options{Count: -1}, "count -1 is negative"},
		{capture.Options{Duration: -time.Second}, "duration -1s is negative"},
	} {
		var buf bytes.Buffer
		_, err := capture.Start(t.Context(), env.Target(), &buf, tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.o, err, tc.want)
		}
		if buf.Len() != 0 {
			t.Errorf("%+v: %d bytes written for a refused capture", tc.o, buf.Len())
		}
	}
}
