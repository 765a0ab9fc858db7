package partition

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	hostile "github.com/pontoon-dev/pontoon/netsetup/probe"
)

// TestHostileGuestCannotCross reproduces an isolated guest that is root in its namespace
// getting across its partition: with a forged source address (a raw socket), from a second
// address it adds itself, with a frame sent to a peer's MAC but not to its address, and by
// claiming another guest's address with a gratuitous ARP to receive its traffic, and with
// broadcasts and multicasts, which the bridge floods to every port. The partition judges a
// guest by its bridge port and the port a frame leaves through, not by the addresses a
// packet claims. Each attack is first shown to work without a partition
// (this scene has no port security), so each check can fail.
func TestHostileGuestCannotCross(t *testing.T) {
	s := newScene(t, 4, false)
	tgt := s.target()
	ip := map[string]netip.Addr{}
	for _, g := range tgt.Guests {
		ip[g.Name] = g.IP
	}
	a, b := s.guestNetns("a"), s.guestNetns("b")
	const port = 7359
	recB, err := hostile.Record(b, port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(recB.Close)
	recA, err := hostile.Record(a, port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(recA.Close)
	extra := netip.MustParseAddr("172.18.0.50")
	run(t, "", "ip", "-n", s.nsOf["a"], "addr", "add", extra.String()+"/24", "dev", "eth0")
	run(t, "", "ip", "-n", s.nsOf["a"], "addr", "add", ip["c"].String()+"/32", "dev", "eth0")
	macA, macB := s.macOf["a"], s.macOf["b"]

	attacks := []struct {
		name string
		send func(tok string) error
		rec  *hostile.Recorder
	}{
		{"forged source address", func(tok string) error { return hostile.SendRawUDP(a, ip["c"], ip["b"], port, tok) }, recB},
		{"second address", func(tok string) error { return hostile.SendUDP(a, extra, ip["b"], port, tok) }, recB},
		{"frame to a peer's MAC, broadcast address", func(tok string) error {
			pkt := hostile.IPv4UDP(ip["a"], netip.MustParseAddr("172.18.0.255"), port, tok)
			return hostile.SendFrames(a, hostile.Frame(macB, macA, hostile.EtherIPv4, pkt))
		}, recB},
		{"broadcast", func(tok string) error {
			pkt := hostile.IPv4UDP(ip["a"], netip.MustParseAddr("172.18.0.255"), port, tok)
			return hostile.SendFrames(a, hostile.Frame(hostile.Broadcast, macA, hostile.EtherIPv4, pkt))
		}, recB},
		{"multicast to all hosts", func(tok string) error {
			pkt := hostile.IPv4UDP(ip["a"], netip.MustParseAddr("224.0.0.1"), port, tok)
			allHosts := net.HardwareAddr{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}
			return hostile.SendFrames(a, hostile.Frame(allHosts, macA, hostile.EtherIPv4, pkt))
		}, recB},
		{"claimed address", func(tok string) error {
			// b learns c's address, then a claims it; b's traffic to c goes to a's MAC.
			run(t, "", "ip", "-n", s.nsOf["b"], "neigh", "replace", ip["c"].String(), "lladdr", s.macOf["c"].String(), "dev", "eth0", "nud", "stale")
			if err := hostile.SendFrames(a, hostile.Frame(hostile.Broadcast, macA, hostile.EtherARP, hostile.GARP(macA, ip["c"]))); err != nil {
				return err
			}
			for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				out := run(t, "", "ip", "-n", s.nsOf["b"], "neigh", "show", ip["c"].String())
				if strings.Contains(out, macA.String()) {
					break
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("b did not take the claim: %s", out)
				}
			}
			return hostile.SendUDP(b, ip["b"], ip["c"], port, tok)
		}, recA},
	}
	for _, phase := range []struct {
		name  string
		state State
		want  bool
	}{
		{"without a partition", State{Partition: Fullmesh()}, true},
		{"with a isolated", State{Partition: mustIsolate(t, tgt.Guests, "a")}, false},
		{"with a isolated, reject mode", State{Partition: mustIsolate(t, tgt.Guests, "a"), Mode: ModeReject}, false},
	} {
		if err := Apply(tgt, phase.state); err != nil {
			t.Fatal(err)
		}
		for _, at := range attacks {
			tok := phase.name + "/" + at.name
			if err := at.send(tok); err != nil {
				t.Fatalf("%s: %v", tok, err)
			}
			wait := 2 * time.Second
			if !phase.want {
				wait = 300 * time.Millisecond
			}
			if got := at.rec.WaitFor(tok, wait); got != phase.want {
				t.Errorf("%s: delivered %v, want %v", tok, got, phase.want)
			}
		}
		// Guests the partition leaves together still talk.
		tok := phase.name + "/d to b"
		if err := hostile.SendUDP(s.guestNetns("d"), ip["d"], ip["b"], port, tok); err != nil {
			t.Fatal(err)
		}
		if !recB.WaitFor(tok, 2*time.Second) {
			t.Errorf("%s: d cannot reach b", phase.name)
		}
	}
}
