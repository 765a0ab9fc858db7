package netsetup_test

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"github.com/pontoon-dev/pontoon/netsetup/probe"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/icmp"
)

// The IPv6 counterparts of spoof_test.go: a guest that is root in its namespace tries to pass
// for another guest over IPv6 and neighbour discovery. The bridge's own address stands for
// the peer (it keeps a neighbour cache and receives what guests send it). Each attack is
// first run on a bridge whose port security is switched off (its prerouting chain flushed),
// where it must work, so no check passes by accident.

// spoof6Scene is a dual-stack bridge with an attacker (.1) and a victim (.2).
type spoof6Scene struct {
	bridgeNetns      string
	bridge6          netip.Addr
	bridgeMAC        net.HardwareAddr
	attacker, victim *netsetup.Guest
}

func newSpoof6Scene(t *testing.T, protected bool) spoof6Scene {
	t.Helper()
	s := newChain(t, netsetup.GatewayOptions{})
	b := mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{})
	plan, err := netsetup.CurrentPlan(s.Env)
	if err != nil {
		t.Fatal(err)
	}
	sc := spoof6Scene{
		bridgeNetns: b.Netns(s.Env),
		bridge6:     plan.BridgeAddr6().Addr(),
		bridgeMAC:   netsetup.GuestMAC(plan.BridgeAddr().Addr()),
		attacker:    mustGuest(t, s.Env, "b1", "attacker", "172.18.0.1"),
		victim:      mustGuest(t, s.Env, "b1", "victim", "172.18.0.2"),
	}
	if !protected {
		inNetns(t, sc.bridgeNetns, "nft", "flush", "chain", "bridge", netsetup.TableName, "prerouting")
	}
	return sc
}

// send6 sends IPv6 packets from the attacker's eth0 as frames to the bridge's MAC.
func (sc spoof6Scene) send6(t *testing.T, pkts ...[]byte) {
	t.Helper()
	var frames [][]byte
	for _, p := range pkts {
		frames = append(frames, probe.Frame(sc.bridgeMAC, netsetup.GuestMAC(sc.attacker.IP), probe.EtherIPv6, p))
	}
	if err := probe.SendFrames(sc.attacker.Netns, frames...); err != nil {
		t.Fatal(err)
	}
}

// TestForgedIPv6SourceDropped reproduces a guest sending IPv6 with another guest's source
// address or an address nobody has (raw frames), and from an address it adds to its eth0
// itself: none of it reaches the bridge, while its own address's datagram, sent last, does.
// Without port security every one arrives.
func TestForgedIPv6SourceDropped(t *testing.T) {
	t.Parallel()
	for _, protected := range []bool{false, true} {
		t.Run(fmt.Sprintf("protected=%v", protected), func(t *testing.T) {
			t.Parallel()
			sc := newSpoof6Scene(t, protected)
			rec, err := probe.Record6(sc.bridgeNetns, recordPort)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(rec.Close)
			extra := netip.MustParseAddr("fd70:6f6e::50")
			addAddr6(t, sc.attacker.Netns, "eth0", netip.PrefixFrom(extra, 64))
			forged := map[string]netip.Addr{"as-victim": sc.victim.IP6, "as-nobody": netip.MustParseAddr("fd70:6f6e::99"),
				"as-victim-link-local": netsetup.LinkLocal6(netsetup.GuestMAC(sc.victim.IP))}
			for payload, src := range forged {
				sc.send6(t, probe.IPv6UDP(src, sc.bridge6, recordPort, payload))
			}
			if err := probe.SendUDP6(sc.attacker.Netns, extra, sc.bridge6, recordPort, "from-extra"); err != nil {
				t.Fatal(err)
			}
			forged["from-extra"] = extra
			sc.send6(t, probe.IPv6UDP(sc.attacker.IP6, sc.bridge6, recordPort, "as-itself"))
			if !rec.WaitFor("as-itself", okTimeout) {
				t.Fatal("the guest's datagram from its own IPv6 address did not arrive")
			}
			for payload, src := range forged {
				_, arrived := rec.Source(payload)
				if protected && arrived {
					t.Errorf("datagram from %s (%s) arrived through port security", src, payload)
				}
				if !protected && !rec.WaitFor(payload, okTimeout) {
					t.Errorf("without port security the datagram from %s (%s) did not arrive: the attack is not shown to work", src, payload)
				}
			}
		})
	}
}

// neighbour6 returns the MAC the neighbour cache of nsPath holds for ip, "" when none.
func neighbour6(t *testing.T, nsPath string, ip netip.Addr) string {
	t.Helper()
	ents, err := handleAt(t, nsPath).NeighList(0, netlink.FAMILY_V6)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ents {
		if a, ok := netip.AddrFromSlice(n.IP); ok && a == ip && n.HardwareAddr != nil {
			return n.HardwareAddr.String()
		}
	}
	return ""
}

// TestSpoofedNeighborDiscoveryCannotClaimAddress reproduces a guest taking over another
// guest's IPv6 address in its peers' neighbour caches: an advertisement for the victim's
// address at the attacker's MAC (from its own address, and forged from the victim's), one
// for its own address carrying the victim's MAC, and a solicitation whose source link-layer
// option names the victim's MAC. After each, the bridge still has each guest at its own MAC.
// Without port security the first one moves the victim's address to the attacker.
func TestSpoofedNeighborDiscoveryCannotClaimAddress(t *testing.T) {
	t.Parallel()
	for _, protected := range []bool{false, true} {
		t.Run(fmt.Sprintf("protected=%v", protected), func(t *testing.T) {
			t.Parallel()
			sc := newSpoof6Scene(t, protected)
			victimMAC, attackerMAC := netsetup.GuestMAC(sc.victim.IP), netsetup.GuestMAC(sc.attacker.IP)
			for _, g := range []*netsetup.Guest{sc.victim, sc.attacker} {
				if err := probe.Ping(sc.bridgeNetns, g.IP6, okTimeout); err != nil {
					t.Fatal(err) // also fills the bridge's cache
				}
			}
			rec, err := probe.Record6(sc.bridgeNetns, recordPort)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(rec.Close)
			attacks := []struct {
				name string
				pkt  []byte
			}{
				{"advertise the victim's address", probe.NeighborAdvert(sc.attacker.IP6, sc.bridge6, sc.victim.IP6, attackerMAC)},
				{"advertise it from the victim's address", probe.NeighborAdvert(sc.victim.IP6, sc.bridge6, sc.victim.IP6, attackerMAC)},
				{"advertise its own address at the victim's MAC", probe.NeighborAdvert(sc.attacker.IP6, sc.bridge6, sc.attacker.IP6, victimMAC)},
				{"solicit with the victim's MAC", probe.NeighborSolicit(sc.attacker.IP6, sc.bridge6, sc.bridge6, victimMAC)},
			}
			for i, a := range attacks {
				// The attacker's own datagram after the message, on the same path: once it is
				// in, the bridge has processed the message.
				done := fmt.Sprintf("after %d", i)
				sc.send6(t, a.pkt, probe.IPv6UDP(sc.attacker.IP6, sc.bridge6, recordPort, done))
				if !rec.WaitFor(done, okTimeout) {
					t.Fatalf("%s: the attacker's own datagram did not arrive", a.name)
				}
				victimAt, attackerAt := neighbour6(t, sc.bridgeNetns, sc.victim.IP6), neighbour6(t, sc.bridgeNetns, sc.attacker.IP6)
				if !protected {
					if i == 0 && victimAt != attackerMAC.String() {
						t.Fatalf("without port security, after %q the bridge has the victim at %q, want the attacker's %s: the attack is not shown to work", a.name, victimAt, attackerMAC)
					}
					continue
				}
				if victimAt != victimMAC.String() || attackerAt != attackerMAC.String() {
					t.Errorf("after %q the bridge has the victim at %q and the attacker at %q, want %s and %s", a.name, victimAt, attackerAt, victimMAC, attackerMAC)
				}
			}
			if protected {
				if err := probe.Ping(sc.bridgeNetns, sc.victim.IP6, okTimeout); err != nil {
					t.Errorf("the victim's address no longer answers the bridge: %v", err)
				}
			}
		})
	}
}

// TestGuestRouterAdvertDropped reproduces a guest announcing itself as IPv6 router to all
// nodes: the bridge never receives the advertisement, while the guest's echo request sent
// after it arrives. Without port security it arrives.
func TestGuestRouterAdvertDropped(t *testing.T) {
	t.Parallel()
	for _, protected := range []bool{false, true} {
		t.Run(fmt.Sprintf("protected=%v", protected), func(t *testing.T) {
			t.Parallel()
			sc := newSpoof6Scene(t, protected)
			var c *icmp.PacketConn
			err := ns.Do(sc.bridgeNetns, func() (err error) {
				c, err = icmp.ListenPacket("ip6:ipv6-icmp", "::")
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			seen := map[int]bool{}
			done := make(chan struct{})
			go func() {
				defer close(done)
				buf := make([]byte, 1500)
				for {
					n, _, err := c.ReadFrom(buf)
					if err != nil {
						return
					}
					if n > 0 {
						mu.Lock()
						seen[int(buf[0])] = true
						mu.Unlock()
					}
				}
			}()
			t.Cleanup(func() { c.Close(); <-done })
			ll := netsetup.LinkLocal6(netsetup.GuestMAC(sc.attacker.IP))
			sc.send6(t, probe.RouterAdvert(ll, netsetup.GuestMAC(sc.attacker.IP)))
			if err := probe.Ping(sc.attacker.Netns, sc.bridge6, okTimeout); err != nil {
				t.Fatal(err)
			}
			// The advertisement went first: once the echo request is read, it would have been.
			has := func(typ int, wait bool) bool {
				for deadline := time.Now().Add(okTimeout); ; time.Sleep(2 * time.Millisecond) {
					mu.Lock()
					ok := seen[typ]
					mu.Unlock()
					if ok || !wait || time.Now().After(deadline) {
						return ok
					}
				}
			}
			if !has(128, true) {
				t.Fatal("the guest's echo request did not reach the bridge")
			}
			if got := has(134, !protected); got == protected {
				t.Errorf("router advertisement received: %v, want %v", got, !protected)
			}
		})
	}
}
