package netsetup_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"github.com/pontoon-dev/pontoon/netsetup/probe"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The tests here play a guest that is root in its namespace and tries to pass for another
// guest: every one of them must fail, whatever partition is in force (none here).

const recordPort = 7358

// spoofScene is a bridge with an attacker (.1), a victim (.2) and a peer (.3).
type spoofScene struct {
	bridgeNetns            string
	attacker, victim, peer *netsetup.Guest
}

func newSpoofScene(t *testing.T) spoofScene {
	t.Helper()
	s := newChain(t, netsetup.GatewayOptions{})
	b := mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{})
	return spoofScene{
		bridgeNetns: b.Netns(s.Env),
		attacker:    mustGuest(t, s.Env, "b1", "attacker", "172.18.0.1"),
		victim:      mustGuest(t, s.Env, "b1", "victim", "172.18.0.2"),
		peer:        mustGuest(t, s.Env, "b1", "peer", "172.18.0.3"),
	}
}

// recordUDP records datagrams to recordPort in nsPath until the test ends.
func recordUDP(t *testing.T, nsPath string) *udpRecorder {
	t.Helper()
	r, err := probe.Record(nsPath, recordPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return &udpRecorder{r}
}

type udpRecorder struct{ *probe.Recorder }

func (r *udpRecorder) source(payload string) (netip.Addr, bool) { return r.Source(payload) }
func (r *udpRecorder) waitFor(payload string) bool              { return r.WaitFor(payload, okTimeout) }

func sendRawUDP(nsPath string, src, dst netip.Addr, payload string) error {
	return probe.SendRawUDP(nsPath, src, dst, recordPort, payload)
}

func sendUDP(nsPath string, from, to netip.Addr, payload string) error {
	return probe.SendUDP(nsPath, from, to, recordPort, payload)
}

var (
	frame         = probe.Frame
	garp          = probe.GARP
	sendFrames    = probe.SendFrames
	broadcast     = probe.Broadcast
	lldpMulticast = net.HardwareAddr{0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e}
)

// fdb returns, for each MAC the bridge of bridgeNetns forwards, the ports it forwards that
// MAC to, space-separated. It reads the bridge's own forwarding entries (those naming it as
// master), once per port: some kernels also list a static entry from the port's own address
// list ("self"), and a VLAN-aware bridge holds one entry per VLAN; neither is another port.
func fdb(t *testing.T, bridgeNetns string) map[string]string {
	t.Helper()
	h := handleAt(t, bridgeNetns)
	br, err := h.LinkByName(netsetup.BridgeDev)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := h.NeighList(0, unix.AF_BRIDGE)
	if err != nil {
		t.Fatalf("list the forwarding entries of %s in %s: %v", netsetup.BridgeDev, bridgeNetns, err)
	}
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	names := map[int]string{}
	for _, l := range links {
		if a := l.Attrs(); a.Index == br.Attrs().Index || a.MasterIndex == br.Attrs().Index {
			names[a.Index] = a.Name
		}
	}
	seen := map[string]bool{}
	ports := map[string]string{}
	for _, n := range ents {
		// A port that is going away (its guest's namespace was deleted) may still have entries
		// after it has left the link list; it forwards nothing any more.
		name, ok := names[n.LinkIndex]
		if !ok || n.Flags&unix.NTF_SELF != 0 || n.MasterIndex != br.Attrs().Index || n.HardwareAddr == nil {
			continue
		}
		mac := n.HardwareAddr.String()
		if seen[mac+" "+name] {
			continue
		}
		seen[mac+" "+name] = true
		ports[mac] = strings.TrimSpace(ports[mac] + " " + name)
	}
	return ports
}

// fdbPorts returns the ports the bridge of bridgeNetns forwards mac to, space-separated.
func fdbPorts(t *testing.T, bridgeNetns string, mac net.HardwareAddr) string {
	t.Helper()
	return fdb(t, bridgeNetns)[mac.String()]
}

// neighbourMAC returns the MAC that nsPath's neighbour table holds for ip, "" when none.
func neighbourMAC(t *testing.T, nsPath string, ip netip.Addr) string {
	t.Helper()
	ents, err := handleAt(t, nsPath).NeighList(0, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ents {
		if a, ok := netip.AddrFromSlice(n.IP); ok && a.Unmap() == ip && n.HardwareAddr != nil {
			return n.HardwareAddr.String()
		}
	}
	return ""
}

// TestForgedSourceIPDropped reproduces a guest that sends UDP with another guest's source
// address, or an address nobody has, through a raw socket: the datagrams never reach the
// guest they are sent to, while the same guest's datagrams with its own address do.
func TestForgedSourceIPDropped(t *testing.T) {
	t.Parallel()
	sc := newSpoofScene(t)
	rec := recordUDP(t, sc.peer.Netns)
	to := guestIP(sc.peer)
	forged := map[string]netip.Addr{"as-victim": guestIP(sc.victim), "as-nobody": addr("172.18.0.50")}
	for payload, src := range forged {
		if err := sendRawUDP(sc.attacker.Netns, src, to, payload); err != nil {
			t.Fatal(err)
		}
	}
	// Sent after the forged ones on the same path: once it is in, they would be too.
	if err := sendRawUDP(sc.attacker.Netns, guestIP(sc.attacker), to, "as-itself"); err != nil {
		t.Fatal(err)
	}
	if !rec.waitFor("as-itself") {
		t.Fatal("the guest's datagram with its own source address did not arrive")
	}
	for payload, src := range forged {
		if got, ok := rec.source(payload); ok {
			t.Errorf("datagram forged as from %s arrived (source %s)", src, got)
		}
	}
}

// TestExtraAddressCannotSend reproduces a guest that adds a second address to its eth0 (`ip
// addr add 172.18.0.50/24 dev eth0`) and connects to other guests from it: nothing it sends
// from that address gets through, while its own address still works.
func TestExtraAddressCannotSend(t *testing.T) {
	t.Parallel()
	sc := newSpoofScene(t)
	rec := recordUDP(t, sc.peer.Netns)
	serve(t, sc.peer.Netns, guestIP(sc.peer))
	to := guestIP(sc.peer)
	mustReach(t, sc.attacker.Netns, to) // also leaves the peer's MAC in the attacker's cache
	extra := addr("172.18.0.50")
	inNetns(t, sc.attacker.Netns, "ip", "addr", "add", extra.String()+"/24", "dev", "eth0")

	var tcpErr error
	err := ns.Do(sc.attacker.Netns, func() error {
		d := net.Dialer{Timeout: failTimeout, LocalAddr: &net.TCPAddr{IP: extra.AsSlice()}}
		c, err := d.Dial("tcp4", netip.AddrPortFrom(to, probe.Port).String())
		if err == nil {
			c.Close()
		}
		tcpErr = err
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, from := range []netip.Addr{extra, guestIP(sc.attacker)} { // the control last
		if err := sendUDP(sc.attacker.Netns, from, to, "from "+from.String()); err != nil {
			t.Fatal(err)
		}
	}
	if tcpErr == nil {
		t.Errorf("TCP connection from the added address %s to %s succeeded", extra, to)
	}
	if !rec.waitFor("from " + guestIP(sc.attacker).String()) {
		t.Fatal("a datagram from the guest's own address did not arrive")
	}
	if _, ok := rec.source("from " + extra.String()); ok {
		t.Errorf("a datagram from the added address %s arrived", extra)
	}
}

// TestGratuitousARPCannotClaimAddress reproduces a guest that takes over another guest's
// address: it adds the address and announces it with a gratuitous ARP, first with its own
// MAC, then with the victim's as Ethernet and ARP sender (which would teach the bridge that
// the victim's MAC lives on the attacker's port); last it announces its own address at the
// victim's MAC. After each, the neighbour tables of the victim's peers (another guest, the
// bridge's router) and the bridge's forwarding table are unchanged, and traffic to the
// victim's address still reaches the victim.
func TestGratuitousARPCannotClaimAddress(t *testing.T) {
	t.Parallel()
	sc := newSpoofScene(t)
	victimIP, victimMAC := guestIP(sc.victim), netsetup.GuestMAC(guestIP(sc.victim))
	attackerIP, attackerMAC := guestIP(sc.attacker), netsetup.GuestMAC(guestIP(sc.attacker))
	serveIdentity(t, sc.victim.Netns, victimIP, probe.Port, "victim")
	inNetns(t, sc.attacker.Netns, "ip", "addr", "add", victimIP.String()+"/32", "dev", "eth0")
	serveIdentity(t, sc.attacker.Netns, victimIP, probe.Port, "attacker")
	peers := []string{sc.peer.Netns, sc.bridgeNetns}
	for _, p := range peers {
		// Each peer now caches the victim's and the attacker's MACs.
		mustAnswer(t, p, victimIP, probe.Port, "victim")
		if err := probe.Ping(p, attackerIP, okTimeout); err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	rec := recordUDP(t, sc.peer.Netns)
	peerIP, peerMAC := guestIP(sc.peer), netsetup.GuestMAC(guestIP(sc.peer))
	for _, a := range []struct {
		ethSrc, mac net.HardwareAddr
		ip          netip.Addr
	}{
		{attackerMAC, attackerMAC, victimIP},
		{victimMAC, victimMAC, victimIP},
		{attackerMAC, victimMAC, attackerIP},
	} {
		// The attacker's own datagram to the peer, sent after the announcement through the
		// same socket: once it is in, the peer and the bridge have processed the announcement.
		// An LLDP frame goes along, which the bridge learns from without running any hook.
		done := fmt.Sprintf("announced %s at %s from %s", a.ip, a.mac, a.ethSrc)
		err := sendFrames(sc.attacker.Netns,
			frame(broadcast, a.ethSrc, unix.ETH_P_ARP, garp(a.mac, a.ip)),
			frame(lldpMulticast, a.ethSrc, 0x88cc, make([]byte, 46)),
			frame(peerMAC, attackerMAC, unix.ETH_P_IP, probe.IPv4UDP(attackerIP, peerIP, recordPort, done)))
		if err != nil {
			t.Fatal(err)
		}
		if !rec.waitFor(done) {
			t.Fatalf("the attacker's own datagram to the peer did not arrive after it %s", done)
		}
		entries := fdb(t, sc.bridgeNetns)
		for _, g := range []*netsetup.Guest{sc.victim, sc.attacker} {
			if got, want := entries[netsetup.GuestMAC(guestIP(g)).String()], g.PortName(); got != want {
				t.Errorf("%s, the bridge forwards %s's MAC to port(s) %q, want %s", done, g.Name, got, want)
			}
		}
		for _, p := range peers {
			for _, g := range []*netsetup.Guest{sc.victim, sc.attacker} {
				if got, want := neighbourMAC(t, p, guestIP(g)), netsetup.GuestMAC(guestIP(g)).String(); got != want {
					t.Errorf("%s, %s: neighbour entry for %s is %q, want %s", done, p, guestIP(g), got, want)
				}
			}
			mustAnswer(t, p, victimIP, probe.Port, "victim")
		}
	}
}

// TestChangedMACLosesConnectivity reproduces a guest that changes its eth0's MAC, first to
// one nobody has, then to another guest's, and at last swaps its address for that guest's
// too: it cannot reach anyone any more, and the other guest's traffic still goes to the
// other guest.
func TestChangedMACLosesConnectivity(t *testing.T) {
	t.Parallel()
	sc := newSpoofScene(t)
	victimIP, peerIP := guestIP(sc.victim), guestIP(sc.peer)
	serve(t, sc.peer.Netns, peerIP)
	serveIdentity(t, sc.victim.Netns, victimIP, probe.Port+1, "victim")
	mustReach(t, sc.attacker.Netns, peerIP)
	mustAnswer(t, sc.peer.Netns, victimIP, probe.Port+1, "victim")

	for _, mac := range []string{"02:70:ac:12:00:32", netsetup.GuestMAC(victimIP).String()} {
		inNetns(t, sc.attacker.Netns, "ip", "link", "set", "dev", "eth0", "address", mac)
		mustNotReach(t, sc.attacker.Netns, peerIP)
	}
	// Now the attacker is the victim's twin, MAC and address: were the bridge to learn the
	// victim's MAC on the attacker's port, the victim's traffic would go there.
	inNetns(t, sc.attacker.Netns, "ip", "addr", "del", guestIP(sc.attacker).String()+"/24", "dev", "eth0")
	inNetns(t, sc.attacker.Netns, "ip", "addr", "add", victimIP.String()+"/24", "dev", "eth0")
	serveIdentity(t, sc.attacker.Netns, victimIP, probe.Port+1, "attacker")
	mustNotReach(t, sc.attacker.Netns, peerIP)
	if got, want := fdbPorts(t, sc.bridgeNetns, netsetup.GuestMAC(victimIP)), sc.victim.PortName(); got != want {
		t.Errorf("the bridge forwards the victim's MAC to port(s) %q, want %s", got, want)
	}
	mustAnswer(t, sc.peer.Netns, victimIP, probe.Port+1, "victim")
	mustAnswer(t, sc.bridgeNetns, victimIP, probe.Port+1, "victim")
}

// TestPortSecurityAtScale attaches 253 guests, the most a bridge holds: every port is
// locked to its guest's MAC, the table's set pairs each of the 253 MACs with its address,
// the last guest talks at once, and a detached guest's port and forwarding entry go away.
func TestPortSecurityAtScale(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	b := mustBridge(t, s.Env, "big", netsetup.BridgeOptions{})
	brNetns := b.Netns(s.Env)
	var guests []*netsetup.Guest
	for i := 1; i <= 253; i++ {
		guests = append(guests, mustGuest(t, s.Env, "big", fmt.Sprintf("g%d", i), fmt.Sprintf("172.18.0.%d", i)))
	}
	if n := len(guestSetElements(t, brNetns)); n != 253 {
		t.Errorf("guests set has %d elements, want 253", n)
	}
	locked := 0
	for _, l := range strings.Split(inNetns(t, brNetns, "bridge", "-d", "link", "show"), "\n") {
		if strings.Contains(l, "learning off") && strings.Contains(l, "locked on") {
			locked++
		}
	}
	if locked != 253 {
		t.Errorf("%d bridge ports are locked with learning off, want 253", locked)
	}
	entries := fdb(t, brNetns)
	for _, g := range guests {
		if got, want := entries[netsetup.GuestMAC(guestIP(g)).String()], g.PortName(); got != want {
			t.Fatalf("the bridge forwards %s's MAC to port(s) %q, want %s", g.Name, got, want)
		}
	}
	last := guests[252]
	serve(t, last.Netns, guestIP(last))
	mustReach(t, guests[0].Netns, guestIP(last))
	// A full bridge says so: no address of its is free.
	_, err := netsetup.AddGuest(s.Env, "big", "more", netsetup.GuestOptions{IP: "172.18.0.7"})
	if !errors.Is(err, netsetup.ErrInvalid) || !strings.Contains(err.Error(), "the bridge is full: all 253 guest addresses are taken") {
		t.Errorf("a guest more on the full bridge: %v", err)
	}

	// One nothing of the test's runs in: the port goes with the guest's namespace, which the
	// kernel releases asynchronously once nothing holds it.
	gone := guests[100]
	if err := netsetup.DelGuest(s.Env, "big", gone.Name); err != nil {
		t.Fatal(err)
	}
	mac := netsetup.GuestMAC(guestIP(gone))
	for deadline := time.Now().Add(10 * time.Second); fdbPorts(t, brNetns, mac) != ""; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("10s after detaching %s the bridge still forwards its MAC to %q", gone.Name, fdbPorts(t, brNetns, mac))
		}
	}
}

// guestSetElements lists the guests set of a bridge namespace with nft(8).
func guestSetElements(t *testing.T, bridgeNetns string) []string {
	t.Helper()
	out := inNetns(t, bridgeNetns, "nft", "list", "set", "bridge", netsetup.TableName, "guests")
	_, list, ok := strings.Cut(out, "elements = {")
	if !ok {
		return nil
	}
	list, _, _ = strings.Cut(list, "}")
	var got []string
	for _, e := range strings.Split(list, ",") {
		if e = strings.Join(strings.Fields(e), " "); e != "" {
			got = append(got, e)
		}
	}
	return got
}

// guestIP is a guest's address, whichever way the record holds it.
func guestIP(g *netsetup.Guest) netip.Addr { return netip.MustParseAddr(fmt.Sprint(g.IP)) }

// TestVLANTaggedFramesDropped reproduces a guest that wraps its own, correctly addressed
// IPv4 and IPv6 in an 802.1Q or 802.1ad tag. The tag travels past the bridge beside the
// frame, and a priority tag (VLAN 0) is delivered into the receiver's IP stack as if there
// were none: without port security the VLAN 0 datagrams arrive. With it, other guests get
// nothing tagged, as they get no other ethertype, while the same datagrams untagged arrive.
func TestVLANTaggedFramesDropped(t *testing.T) {
	t.Parallel()
	for _, protected := range []bool{false, true} {
		t.Run(fmt.Sprintf("protected=%v", protected), func(t *testing.T) {
			t.Parallel()
			sc := newSpoofScene(t)
			if !protected {
				inNetns(t, sc.bridgeNetns, "nft", "flush", "chain", "bridge", netsetup.TableName, "prerouting")
			}
			rec := recordUDP(t, sc.peer.Netns)
			rec6, err := probe.Record6(sc.peer.Netns, recordPort)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(rec6.Close)
			src, dst := netsetup.GuestMAC(sc.attacker.IP), netsetup.GuestMAC(sc.peer.IP)
			packet := func(family, payload string) (uint16, []byte) {
				if family == "ip6" {
					return probe.EtherIPv6, probe.IPv6UDP(sc.attacker.IP6, sc.peer.IP6, recordPort, payload)
				}
				return probe.EtherIPv4, probe.IPv4UDP(guestIP(sc.attacker), guestIP(sc.peer), recordPort, payload)
			}
			var frames [][]byte
			tagged := map[string]*probe.Recorder{}
			for _, family := range []string{"ip", "ip6"} {
				r := rec.Recorder
				if family == "ip6" {
					r = rec6
				}
				for name, tpid := range map[string]uint16{"8021q": 0x8100, "8021ad": 0x88a8} {
					for _, vid := range []byte{0, 5} {
						payload := fmt.Sprintf("%s-%s-vid%d", family, name, vid)
						ethertype, body := packet(family, payload)
						inner := append([]byte{0, vid, byte(ethertype >> 8), byte(ethertype)}, body...)
						frames = append(frames, probe.Frame(dst, src, tpid, inner))
						tagged[payload] = r
					}
				}
			}
			// The same datagrams untagged, after the tagged ones on the same path: once they
			// are in, the tagged ones would be too.
			for _, family := range []string{"ip", "ip6"} {
				ethertype, body := packet(family, family+"-untagged")
				frames = append(frames, probe.Frame(dst, src, ethertype, body))
			}
			if err := probe.SendFrames(sc.attacker.Netns, frames...); err != nil {
				t.Fatal(err)
			}
			if !rec.WaitFor("ip-untagged", okTimeout) {
				t.Fatal("the guest's untagged IPv4 datagram did not arrive")
			}
			if !rec6.WaitFor("ip6-untagged", okTimeout) {
				t.Fatal("the guest's untagged IPv6 datagram did not arrive")
			}
			for payload, r := range tagged {
				_, arrived := r.Source(payload)
				if protected && arrived {
					t.Errorf("datagram in a %s frame arrived through port security", payload)
				}
				if !protected && strings.HasSuffix(payload, "vid0") && !r.WaitFor(payload, okTimeout) {
					t.Errorf("without port security the datagram in a %s frame did not arrive: the attack is not shown to work", payload)
				}
			}
		})
	}
}
