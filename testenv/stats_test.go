package testenv_test

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/partition"
	"github.com/pontoon-dev/pontoon/testenv"
)

// quietGuests leaves the guests sending nothing but what a test sends. A partition stops and
// counts what they send by themselves as well: IPv6 neighbour discovery and listener reports,
// and the ARP of an entry that went stale, which on a slow machine (the emulated stock-kernel
// lane) happens between one datagram and the next. So IPv6 is off and every guest knows the
// others' MACs for good.
func quietGuests(t *testing.T, env *testenv.Env) {
	t.Helper()
	macs := map[string]net.HardwareAddr{}
	for _, g := range env.Guests() {
		if err := g.Do(func() error {
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/all/disable_ipv6", []byte("1"), 0); err != nil {
				return err
			}
			l, err := netlink.LinkByName(netsetup.GuestIfName)
			if err == nil {
				macs[g.Name()] = l.Attrs().HardwareAddr
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range env.Guests() {
		if err := g.Do(func() error {
			l, err := netlink.LinkByName(netsetup.GuestIfName)
			if err != nil {
				return err
			}
			for _, o := range env.Guests() {
				if o == g {
					continue
				}
				n := &netlink.Neigh{LinkIndex: l.Attrs().Index, State: netlink.NUD_PERMANENT,
					IP: o.IP().AsSlice(), HardwareAddr: macs[o.Name()]}
				if err := netlink.NeighSet(n); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// The counters account for exactly the traffic the partition stopped: the datagrams sent
// across a one-way block, and nothing of what was allowed (the other way, other pairs).
func TestStatsCountWhatThePartitionStopped(t *testing.T) {
	t.Parallel()
	env := three(t, testenv.WithProbeTimeouts(500*time.Millisecond, 0))
	quietGuests(t, env)
	env.Block("n1", "n2")
	for range 3 {
		if err := env.Delivers("n1", "n2"); err == nil {
			t.Fatal("a datagram crossed the block n1->n2")
		}
	}
	for _, p := range [][2]string{{"n2", "n1"}, {"n2", "n3"}, {"n3", "n1"}} {
		if err := env.Delivers(p[0], p[1]); err != nil {
			t.Fatal(err)
		}
	}
	c := env.Stats()
	// Each datagram is an IPv4 and a UDP header and a 29-byte token.
	want := partition.Count{Packets: 3, Bytes: 3 * (20 + 8 + 29)}
	if got := c.Pair("n1", "n2").Dropped; got != want || len(c.Blocked) != 1 || !c.Unattributed.Zero() {
		t.Errorf("counters after 3 datagrams across n1->n2: %+v, want n1->n2 dropped %+v and nothing else", c, want)
	}
	if c.TotalBlocked() != want {
		t.Errorf("total stopped %+v, want %+v", c.TotalBlocked(), want)
	}

	// A loss of 100% on n3 is counted for n3, and the block's count stays.
	if err := env.Loss(100, "n3"); err != nil {
		t.Fatal(err)
	}
	if err := env.Delivers("n2", "n3"); err == nil {
		t.Fatal("a datagram reached n3 through a loss of 100%")
	}
	c = env.Stats()
	// At least the datagram: what the guests' kernels send of their own to every port (IPv6
	// multicast) is lost on the way to n3 too, and counted, on a slow machine within the test.
	if got := c.Impairment("guest n3").Lost; got.Packets < 1 || got.Bytes < 20+8+29 {
		t.Errorf("loss on n3 after one datagram to it: %+v", c.Impairments)
	}
	if got := c.Pair("n1", "n2").Dropped; got != want {
		t.Errorf("n1->n2 after a change that kept it: %+v, want %+v", got, want)
	}

	// Shaping is counted by traffic control: a guest's rate by its classes, a pair's by
	// the pair's class at the destination's port.
	rate, err := partition.ParseRate("10mbit")
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Impair(partition.Impairment{Guest: "n3"}, partition.Impairment{Guest: "n1", Rate: rate},
		partition.Impairment{Src: "n3", Dst: "n2", Rate: rate}); err != nil {
		t.Fatal(err)
	}
	c = env.Stats()
	beforeGuest, beforePair := c.Impairment("guest n1").Shaped, c.Impairment("n3->n2").Shaped
	for _, p := range [][2]string{{"n3", "n1"}, {"n3", "n2"}} {
		if err := env.Delivers(p[0], p[1]); err != nil {
			t.Fatal(err)
		}
	}
	c = env.Stats()
	if got := c.Impairment("guest n1").Shaped; got.Packets <= beforeGuest.Packets || got.Bytes < beforeGuest.Bytes+57 {
		t.Errorf("rate on n1 after a datagram to it: shaped %+v, before %+v", got, beforeGuest)
	}
	if got := c.Impairment("n3->n2").Shaped; got.Packets <= beforePair.Packets || got.Bytes < beforePair.Bytes+57 {
		t.Errorf("rate n3->n2 after a datagram: shaped %+v, before %+v", got, beforePair)
	}

	env.Heal()
	if c := env.Stats(); len(c.Blocked) != 0 || len(c.Impairments) != 0 {
		t.Errorf("counters after heal: %+v", c)
	}
}

// A partition counts the IPv6 it stops as it counts IPv4: the datagrams of both families
// sent across a block add up for the pair, and allowed IPv6 is counted nowhere.
func TestStatsCountIPv6(t *testing.T) {
	t.Parallel()
	env := three(t, testenv.WithProbeTimeouts(500*time.Millisecond, 0))
	// The guests' own listener reports and router solicitations would be stopped and
	// counted too; neighbour discovery still goes.
	for _, g := range env.Guests() {
		if out, err := g.Run(context.Background(), "nft", "add table ip6 quiet; "+
			"add chain ip6 quiet out { type filter hook output priority 0; policy accept; }; "+
			"add rule ip6 quiet out icmpv6 type { 130, 131, 132, 133, 143 } drop"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	n1, n2, n3 := env.Lookup("n1"), env.Lookup("n2"), env.Lookup("n3")
	env.Block("n1", "n2")
	for _, dst := range []string{n2.IP6().String(), n2.IP6().String(), "n2"} {
		if err := env.Delivers("n1", dst); err == nil {
			t.Fatalf("a datagram crossed the block n1->%s", dst)
		}
	}
	for _, p := range [][2]string{{"n2", n1.IP6().String()}, {"n2", n3.IP6().String()}, {"n3", n1.IP6().String()}} {
		if err := env.Delivers(p[0], p[1]); err != nil {
			t.Fatal(err)
		}
	}
	c := env.Stats()
	// Each datagram is an IPv6 or IPv4 header, a UDP header and a 29-byte token.
	want := partition.Count{Packets: 3, Bytes: 2*(40+8+29) + (20 + 8 + 29)}
	if got := c.Pair("n1", "n2").Dropped; got != want || len(c.Blocked) != 1 || !c.Unattributed.Zero() {
		t.Errorf("counters after 2 IPv6 and 1 IPv4 datagrams across n1->n2: %+v, want n1->n2 dropped %+v and nothing else", c, want)
	}
}
