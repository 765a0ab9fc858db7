package partition

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// sendUDP6 is sendUDP to dst's IPv6 address; a datagram counts its IPv6 and UDP headers
// and the payload.
func (s *scene) sendUDP6(tb testing.TB, src, dst string, n, size int) uint64 {
	tb.Helper()
	ip := ""
	for _, g := range s.guests {
		if g.Name == dst {
			ip = g.IP6.String()
		}
	}
	run(tb, "", "ip", "netns", "exec", s.nsOf[src], "bash", "-c",
		fmt.Sprintf(`for i in $(seq 1 %d); do printf %s > /dev/udp/%s/9; done`, n, strings.Repeat("x", size), ip))
	return uint64(40 + 8 + size)
}

// quietIPv6 keeps the guests from sending IPv6 of their own accord (listener reports, router
// solicitations), which a block rightly drops and counts where it leaves for the blocked
// guest; neighbour discovery still goes.
func (s *scene) quietIPv6(tb testing.TB) {
	tb.Helper()
	for _, g := range s.guests {
		run(tb, `table ip6 quiet {
	chain out {
		type filter hook output priority 0; policy accept;
		icmpv6 type { 130, 131, 132, 133, 143 } drop
	}
}
`, "ip", "netns", "exec", s.nsOf[g.Name], "nft", "-f", "-")
	}
}

// The partition counts what it stops on IPv6 as on IPv4: every IPv6 datagram sent across a
// block is counted exactly, dropped or rejected, for its pair and added to the pair's IPv4
// count; a loss between a pair counts its IPv6 losses; allowed IPv6 traffic is counted
// nowhere.
func TestCountersCountIPv6(t *testing.T) {
	s := newScene(t, 3, false)
	s.addIPv6(t)
	s.quietIPv6(t)
	s.startServers(t)
	tgt := s.target()
	forEachBackend(t, func(t *testing.T, b Backend) {
		block := mustBlock(t, tgt.Guests, "a", "b")
		skipMissing(t, Apply(tgt, State{Partition: block}))
		per4 := s.sendUDP(t, "a", "b", 3, 10)
		per6 := s.sendUDP6(t, "a", "b", 5, 30)
		s.sendUDP6(t, "b", "c", 3, 30) // allowed: counted nowhere
		s.sendUDP6(t, "b", "a", 2, 30) // the other way of a one-way block: allowed
		want := Count{Packets: 3 + 5, Bytes: 3*per4 + 5*per6}
		c := stats(t, tgt)
		if got := c.Pair("a", "b").Dropped; got != want || len(c.Blocked) != 1 || !c.Unattributed.Zero() {
			t.Fatalf("after 3 IPv4 and 5 IPv6 datagrams a->b across the block: %+v, want a->b dropped %+v and nothing else", c, want)
		}

		// Loss of 100% from a to c loses IPv6 too, and counts it for a->c.
		skipMissing(t, Apply(tgt, State{Partition: block, Impairments: []Impairment{{Src: "a", Dst: "c", Loss: 100}}}))
		s.sendUDP6(t, "a", "c", 4, 30)
		s.sendUDP(t, "a", "c", 1, 10)
		c = stats(t, tgt)
		if got, want := c.Impairment("a->c").Lost, (Count{Packets: 5, Bytes: 4*per6 + per4}); got != want {
			t.Errorf("loss 100%% a->c after 4 IPv6 and 1 IPv4 datagrams: %+v, want %+v", got, want)
		}
		if got := c.Pair("a", "b").Dropped; got != want {
			t.Errorf("a->b after traffic elsewhere: %+v, want still %+v", got, want)
		}

		// Reject mode counts IPv6 rejections; the drops of the pair, still blocked, stay.
		if err := Apply(tgt, State{Partition: block, Mode: ModeReject}); err == nil {
			s.sendUDP6(t, "a", "b", 4, 30)
			s.sendUDP(t, "a", "b", 2, 10)
			p := stats(t, tgt).Pair("a", "b")
			if rej := (Count{Packets: 6, Bytes: 4*per6 + 2*per4}); p.Rejected != rej || p.Dropped != want {
				t.Errorf("reject mode after 4 IPv6 and 2 IPv4 datagrams: %+v, want %+v rejected and %+v dropped before", p, rej, want)
			}
		} else if !errors.As(err, new(*FeatureError)) {
			t.Fatal(err)
		}

		// a->b unblocked (the table stays for c->b), then blocked again: its IPv6 count
		// starts from zero too.
		skipMissing(t, Apply(tgt, State{Partition: mustBlock(t, tgt.Guests, "c", "b")}))
		if p := stats(t, tgt).Pair("a", "b"); !p.Total().Zero() {
			t.Errorf("a->b no longer blocked still counts %+v", p)
		}
		skipMissing(t, Apply(tgt, State{Partition: block.Union(mustBlock(t, tgt.Guests, "c", "b"))}))
		s.sendUDP6(t, "a", "b", 1, 30)
		if got, want := stats(t, tgt).Pair("a", "b").Dropped, (Count{Packets: 1, Bytes: per6}); got != want {
			t.Errorf("a->b blocked again, after 1 IPv6 datagram: %+v, want %+v", got, want)
		}

		if err := Heal(tgt); err != nil {
			t.Fatal(err)
		}
		if c := stats(t, tgt); len(c.Blocked) != 0 || len(c.Impairments) != 0 {
			t.Errorf("counters after heal: %+v", c)
		}
	})
}

// TestCountRulesIPv6: in a dual-stack run the IPv6 twin of a counting rule jumps to a
// counting chain of its own, whose update (keyed by the IPv6 destination) and verdict are
// separate rules, as for IPv4; an IPv4-only run has no IPv6 counter sets or chains.
func TestCountRulesIPv6(t *testing.T) {
	guests := testGuests(3)
	for _, mode := range []Mode{ModeDrop, ModeReject} {
		state := State{Partition: mustIsolate(t, guests, "a"), Mode: mode, Impairments: []Impairment{{Src: "b", Dst: "c", Loss: 10}}}
		v4, err := Compile(state, guests, BackendBridge)
		if err != nil {
			t.Fatal(err)
		}
		dual := slices.Clone(guests)
		for i := range dual {
			dual[i].IP6 = netip.MustParseAddr(fmt.Sprintf("fd70:6f6e::%d", i+1))
		}
		v6, err := Compile(state, dual, BackendBridge)
		if err != nil {
			t.Fatal(err)
		}
		text4, text6 := v4.RuleSet.String(), v6.RuleSet.String()
		set, verdict := CountDropped6, "drop"
		jumps := []string{"meta mark . meta priority @blocked jump count_drop6"}
		if mode == ModeReject {
			set, verdict = CountRejected6, "reject with icmpx admin-prohibited"
			jumps = []string{"meta mark . meta priority @blocked meta l4proto tcp jump count_reset6", "meta mark . meta priority @blocked jump count_reject6"}
		}
		chain := strings.TrimSuffix(set, "6")
		if mode == ModeReject {
			chain = "count_reject"
		}
		want := append(jumps,
			"set "+set+" {\n\t\ttype ifname . ipv6_addr\n",
			"chain "+chain+"6 {\n\t\tupdate @"+set+" { iifname . ip6 daddr counter }\n\t\t"+verdict+"\n\t}",
			"set count_loss_pair6 {\n\t\ttype ifname . ipv6_addr\n",
			"chain count_loss_pair6 {\n\t\tupdate @count_loss_pair6 { iifname . ip6 daddr counter }\n\t\tdrop\n\t}",
		)
		for _, w := range want {
			if !strings.Contains(text6, w) {
				t.Errorf("%s: dual-stack rule set lacks %q:\n%s", mode, w, text6)
			}
		}
		if strings.Contains(text4, "6 {") || strings.Contains(text4, "ip6") {
			t.Errorf("%s: IPv4-only rule set counts IPv6:\n%s", mode, text4)
		}
	}
}

// What a block stops on its way to a guest's link-local address is counted for the pair, as
// for its global one; it was counted as from no guest.
func TestCountersCountLinkLocal(t *testing.T) {
	s := newScene(t, 3, false)
	s.addIPv6(t)
	s.quietIPv6(t)
	tgt := s.target()
	// Both ends' link-local addresses past duplicate address detection: a sends from its
	// own, and b answers neighbour discovery for its.
	waitLinkLocal(t, s.nsOf["a"])
	waitLinkLocal(t, s.nsOf["b"])
	skipMissing(t, Apply(tgt, State{Partition: mustBlock(t, tgt.Guests, "a", "b")}))
	ll := linkLocal6(s.guests[1]).String() + "%eth0"
	const n, size = 3, 30
	run(t, "", "ip", "netns", "exec", s.nsOf["a"], "bash", "-c",
		fmt.Sprintf(`for i in $(seq 1 %d); do printf %s > /dev/udp/%s/9; done`, n, strings.Repeat("x", size), ll))
	want := Count{Packets: n, Bytes: n * (40 + 8 + size)}
	if c := stats(t, tgt); c.Pair("a", "b").Dropped != want || !c.Unattributed.Zero() {
		t.Errorf("after %d datagrams from a to b's link-local address across the block: a->b dropped %+v, from no guest %+v; want %+v and nothing", n, c.Pair("a", "b").Dropped, c.Unattributed, want)
	}
}
