package netsetup_test

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/probe"
)

// Peers that sent to an address before its guest was attached, the bridge's own stack and
// a sibling guest, learn the guest's MAC as soon as the attach returns, on both families,
// not when the kernel next asks for the address (here slowed to 30 s so that only the
// guest's own announcement can complete the entries in time).
func TestAttachCompletesWaitingNeighbours(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "an", netsetup.BridgeOptions{})
	sibling := mustGuest(t, s.Env, "an", "g1", "172.18.0.1")
	peers := []struct{ netns, dev string }{{s.Env.BridgeNetns("an"), netsetup.BridgeDev}, {sibling.Netns, netsetup.GuestIfName}}
	neigh := func(netns, dev, addr string) string {
		return strings.TrimSpace(inNetns(t, netns, "ip", "neigh", "show", addr, "dev", dev))
	}
	addrs := []string{"172.18.0.5", "fd70:6f6e::5"}
	for _, p := range peers {
		for _, f := range []string{"ipv4", "ipv6"} {
			inNetns(t, p.netns, "sysctl", "-q", "-w", "net."+f+".neigh."+p.dev+".retrans_time_ms=30000")
		}
		for _, a := range addrs {
			// Nobody answers yet: the ping fails and leaves an incomplete entry behind.
			_ = exec.Command("nsenter", "--net="+p.netns, "ping", "-c1", "-W1", a).Run()
			if n := neigh(p.netns, p.dev, a); !strings.Contains(n, "INCOMPLETE") {
				t.Fatalf("before the attach the entry for %s in %s is %q; want INCOMPLETE", a, p.netns, n)
			}
		}
	}
	g := mustGuest(t, s.Env, "an", "g5", "172.18.0.5")
	if g.IP6.String() != addrs[1] {
		t.Fatalf("the guest's IPv6 address is %s; want %s", g.IP6, addrs[1])
	}
	mac := netsetup.GuestMAC(g.IP).String()
	for _, p := range peers {
		for _, a := range addrs {
			// The announcements cross the veth pairs asynchronously.
			for deadline := time.Now().Add(10 * time.Second); !strings.Contains(neigh(p.netns, p.dev, a), mac); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("after the attach the entry for %s in %s is %q; want it resolved to %s", a, p.netns, neigh(p.netns, p.dev, a), mac)
				}
			}
		}
	}
}

// A guest announces itself only to a bridge where another guest asked for its address: the
// announcement floods every port. The bridge's own stack learns the guest's MAC anyway. A
// hostile guest that first asks for hundreds of other addresses cannot crowd out the
// question that matters (both sets are bounded by their keys).
func TestAttachAnnouncesOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "aq", netsetup.BridgeOptions{})
	observer := mustGuest(t, s.Env, "aq", "g1", "172.18.0.1")
	hostile := mustGuest(t, s.Env, "aq", "g2", "172.18.0.2")
	quiet, asked := netip.MustParseAddr("172.18.0.20"), netip.MustParseAddr("172.18.0.30")
	// What reaches the observer from each newcomer's MAC: ARP, and neighbour advertisements.
	var rules strings.Builder
	for _, ip := range []netip.Addr{quiet, asked} {
		mac := netsetup.GuestMAC(ip)
		fmt.Fprintf(&rules, "ether saddr %s ether type arp counter\nether saddr %s icmpv6 type nd-neighbor-advert counter\n", mac, mac)
	}
	cmd := exec.Command("nsenter", "--net="+observer.Netns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader("table netdev obs { chain in { type filter hook ingress device eth0 priority 0;\n" + rules.String() + "}\n}\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("observer's counters: %v\n%s", err, out)
	}
	counts := func() []int {
		var n []int
		for _, m := range regexp.MustCompile(`packets (\d+)`).FindAllStringSubmatch(inNetns(t, observer.Netns, "nft", "list", "table", "netdev", "obs"), -1) {
			v, _ := strconv.Atoi(m[1])
			n = append(n, v)
		}
		return n // quiet ARP, quiet NA, asked ARP, asked NA
	}

	q := mustGuest(t, s.Env, "aq", "g20", quiet.String())
	// Nobody talked to it: the bridge holds no entry for it either.
	brNetns := s.Env.BridgeNetns("aq")
	for _, a := range []string{quiet.String(), "fd70:6f6e::20"} {
		if n := strings.TrimSpace(inNetns(t, brNetns, "ip", "neigh", "show", a, "dev", netsetup.BridgeDev)); n != "" {
			t.Errorf("the bridge has an entry %q for a guest it never talked to", n)
		}
	}

	// The bridge's own stack learns a guest's MAC without any announcement.
	waited := []netip.Addr{netip.MustParseAddr("172.18.0.21"), netip.MustParseAddr("fd70:6f6e::21")}
	for _, f := range []string{"ipv4", "ipv6"} {
		inNetns(t, brNetns, "sysctl", "-q", "-w", "net."+f+".neigh."+netsetup.BridgeDev+".retrans_time_ms=30000")
	}
	for _, a := range waited {
		_ = exec.Command("nsenter", "--net="+brNetns, "ping", "-c1", "-W1", a.String()).Run()
	}
	mustGuest(t, s.Env, "aq", "g21", waited[0].String())
	for _, a := range waited {
		n := inNetns(t, brNetns, "ip", "neigh", "show", a.String(), "dev", netsetup.BridgeDev)
		if !strings.Contains(n, netsetup.GuestMAC(waited[0]).String()) {
			t.Errorf("after the attach the bridge's entry for %s is %q; want it resolved", a, strings.TrimSpace(n))
		}
	}

	// The flood: ARP for every other address of the bridge and a thousand outside it, and
	// neighbour solicitations for a thousand targets whose last byte is any but the asked one's,
	// sent again once the first questions have expired, when the kernel still counts them.
	hmac := netsetup.GuestMAC(hostile.IP)
	var frames [][]byte
	for i := 1; i <= 1253; i++ {
		target := netip.AddrFrom4([4]byte{10, 99, byte(i >> 8), byte(i)})
		if i <= 253 {
			target = netip.AddrFrom4([4]byte{172, 18, 0, byte(i)})
		}
		if target != asked {
			frames = append(frames, probe.Frame(probe.Broadcast, hmac, probe.EtherARP, probe.ARPRequest(hmac, hostile.IP, target)))
		}
		t6 := netip.MustParseAddr(fmt.Sprintf("fd70:6f6e::%x:%x", i, i%256))
		if last := t6.As16()[15]; last != 0x30 {
			mcast := net.HardwareAddr{0x33, 0x33, 0xff, 0, 0, last}
			ns := probe.NeighborSolicit(hostile.IP6, netip.MustParseAddr(fmt.Sprintf("ff02::1:ff00:%x", last)), t6, hmac)
			frames = append(frames, probe.Frame(mcast, hmac, probe.EtherIPv6, ns))
		}
	}
	if err := probe.SendFrames(hostile.Netns, frames...); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3*time.Second + 100*time.Millisecond)
	if err := probe.SendFrames(hostile.Netns, frames...); err != nil {
		t.Fatal(err)
	}
	// The observer asks for the address (and fails: nobody has it yet). Its kernel would ask
	// again only in 30 s, so what it hears from the newcomer before then is the announcement.
	for _, f := range []string{"ipv4", "ipv6"} {
		inNetns(t, observer.Netns, "sysctl", "-q", "-w", "net."+f+".neigh.eth0.retrans_time_ms=30000")
	}
	_ = exec.Command("nsenter", "--net="+observer.Netns, "ping", "-c1", "-W1", asked.String()).Run()
	_ = exec.Command("nsenter", "--net="+observer.Netns, "ping", "-c1", "-W1", "fd70:6f6e::30").Run()
	mustGuest(t, s.Env, "aq", "g30", asked.String())

	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		n := counts()
		if len(n) != 4 {
			t.Fatalf("observer lists %d counters, want 4", len(n))
		}
		if n[2] > 0 && n[3] > 0 {
			if n[0] != 0 || n[1] != 0 {
				t.Errorf("%s, attached while nobody asked for it, announced itself: %d ARP, %d advertisements", q.IP, n[0], n[1])
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s, asked for before its attach, never announced itself to the asker (ARP %d, advertisements %d)", asked, n[2], n[3])
		}
	}
}

// A bridge made before pontoon kept its questions (no asked sets) cannot tell who waits: a
// new guest announces itself there, as every guest once did.
func TestAttachAnnouncesOnBridgeWithoutQuestions(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "old", netsetup.BridgeOptions{})
	brNetns := s.Env.BridgeNetns("old")
	listing := inNetns(t, brNetns, "nft", "-a", "list", "chain", "bridge", netsetup.TableName, "prerouting")
	for _, m := range regexp.MustCompile(`@asked6? .*# handle (\d+)`).FindAllStringSubmatch(listing, -1) {
		inNetns(t, brNetns, "nft", "delete", "rule", "bridge", netsetup.TableName, "prerouting", "handle", m[1])
	}
	for _, set := range []string{"asked", "asked6"} {
		inNetns(t, brNetns, "nft", "delete", "set", "bridge", netsetup.TableName, set)
	}
	sibling := mustGuest(t, s.Env, "old", "g1", "172.18.0.1")
	addrs := []string{"172.18.0.5", "fd70:6f6e::5"}
	for _, f := range []string{"ipv4", "ipv6"} {
		inNetns(t, sibling.Netns, "sysctl", "-q", "-w", "net."+f+".neigh.eth0.retrans_time_ms=30000")
	}
	for _, a := range addrs {
		_ = exec.Command("nsenter", "--net="+sibling.Netns, "ping", "-c1", "-W1", a).Run()
	}
	g := mustGuest(t, s.Env, "old", "g5", addrs[0])
	mac := netsetup.GuestMAC(g.IP).String()
	for _, a := range addrs {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			n := inNetns(t, sibling.Netns, "ip", "neigh", "show", a, "dev", netsetup.GuestIfName)
			if strings.Contains(n, mac) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after the attach the sibling's entry for %s is %q; want it resolved to %s", a, strings.TrimSpace(n), mac)
			}
		}
	}
}
