package partition

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestCutIPv6 is TestCut over IPv6: an open IPv6 connection across a new partition is reset
// on its next segment with Cut or in reject mode, and an idle one is closed at once in both
// guests by the active cut (SOCK_DESTROY for IPv6 sockets).
func TestCutIPv6(t *testing.T) {
	open := func(t *testing.T, withNetns bool) (*scene, *stream) {
		s := newScene(t, 2, withNetns)
		s.addIPv6(t)
		s.use6 = true
		s.startServers(t)
		st := s.openStream(t, "a", "b")
		if r := st.do(t, "send"); r != "ok" {
			t.Fatalf("before partition: %s", r)
		}
		return s, st
	}
	forEachBackend(t, func(t *testing.T, _ Backend) {
		t.Run("drop with cut resets on next segment", func(t *testing.T) {
			s, st := open(t, false)
			skipMissing(t, Apply(s.target(), State{Partition: mustIsolate(t, s.guests, "a"), Cut: true}))
			if r := st.do(t, "send"); r != "reset" {
				t.Errorf("after partition with cut: %s, want reset", r)
			}
		})
		t.Run("reject resets open connections", func(t *testing.T) {
			s, st := open(t, false)
			skipMissing(t, Apply(s.target(), State{Partition: mustIsolate(t, s.guests, "a"), Mode: ModeReject}))
			if r := st.do(t, "send"); r != "reset" {
				t.Errorf("after reject partition: %s, want reset", r)
			}
		})
		t.Run("active cut aborts an idle reader", func(t *testing.T) {
			s, st := open(t, true)
			fmt.Fprintln(st.in, "wait")
			skipMissing(t, Apply(s.target(), State{Partition: mustIsolate(t, s.guests, "a"), Cut: true}))
			if r := st.line(t); r != "aborted" {
				t.Errorf("idle reader after active cut: %s, want aborted", r)
			}
			rec, err := Status(s.target())
			if err != nil {
				t.Fatal(err)
			}
			if rec.ClosedConnections != 2 || rec.CutError != "" {
				t.Errorf("closed %d connections (error %q), want 2", rec.ClosedConnections, rec.CutError)
			}
		})
	})
}

// TestCompileIPv6 shows the rules a dual-stack run gets: each IPv4 rule has its IPv6 twin in
// the same chain, the IPv6 column map holds the guests' IPv6 addresses, neighbour discovery
// leaves before any class lookup or loss, and an IPv4-only run's rules are unchanged.
func TestCompileIPv6(t *testing.T) {
	guests := testGuests(3)
	p := mustIsolate(t, guests, "a")
	state := State{Partition: p, Mode: ModeReject, Impairments: []Impairment{{Guest: "b", Loss: 10}}}
	v4, err := Compile(state, guests, BackendBridge)
	if err != nil {
		t.Fatal(err)
	}
	for i := range guests {
		guests[i].IP6 = netip.MustParseAddr(fmt.Sprintf("fd70:6f6e::%d", i+1))
	}
	v6, err := Compile(state, guests, BackendBridge)
	if err != nil {
		t.Fatal(err)
	}
	text4, text6 := v4.RuleSet.String(), v6.RuleSet.String()
	for _, want := range []string{
		"meta protocol ip6 meta priority set ip6 daddr map @dst6",
		"meta protocol ip6 icmpv6 type 135-136 accept",
		"type ipv6_addr : classid",
		"fd70:6f6e::1 : ",
	} {
		if !strings.Contains(text6, want) {
			t.Errorf("dual-stack rule set lacks %q:\n%s", want, text6)
		}
		if strings.Contains(text4, want) {
			t.Errorf("IPv4-only rule set has %q:\n%s", want, text4)
		}
	}
	// Every IPv4 rule has one IPv6 twin; neighbour discovery is accepted in filter and before
	// b's loss where it enters and where it leaves.
	n4, n6 := strings.Count(text6, "meta protocol ip "), strings.Count(text6, "meta protocol ip6 ")
	if nd := strings.Count(text6, "icmpv6 type 135-136 accept"); nd != 3 || n6 != n4+nd {
		t.Errorf("%d IPv4 rules, %d IPv6 rules of which %d accept neighbour discovery; want a twin each and 3 accepts:\n%s", n4, n6, nd, text6)
	}
	// The neighbour discovery accept comes right after the reset, before the row lookup.
	filter := text6[strings.Index(text6, "chain filter"):]
	if i, j := strings.Index(filter, "icmpv6 type 135-136 accept"), strings.Index(filter, "meta mark set iifname map @src"); i < 0 || j < i {
		t.Errorf("neighbour discovery is not accepted before the class lookup:\n%s", filter)
	}
}

// TestRateLimitIPv6: a pair's rate limit takes the source's IPv6 packets into the pair's
// class too (a u32 filter on ip6 saddr), and the guest's own limit, the default class, takes
// IPv6 like IPv4.
func TestRateLimitIPv6(t *testing.T) {
	s := newScene(t, 3, true)
	s.addIPv6(t)
	s.use6 = true
	s.startServers(t)
	tgt := s.target()
	state := State{Partition: Fullmesh(), Impairments: []Impairment{{Guest: "b", Rate: 50_000_000}, {Src: "a", Dst: "c", Rate: 20_000_000}}}
	if err := Apply(tgt, state); err != nil {
		skipMissing(t, err)
		t.Fatal(err)
	}
	got := s.probePairs(t, [][2]string{{"a", "c"}, {"a", "b"}}, "rate6", 2*failTimeout)
	for _, k := range [][3]string{{"a", "c", "tcp"}, {"a", "c", "udp"}, {"a", "b", "tcp"}} {
		if got[k] != "ok" {
			t.Errorf("%s %s->%s over IPv6 under rate limits: %s, want ok", k[2], k[0], k[1], got[k])
		}
	}
	if r, bytes := classRate(t, tgt.NetnsPath, "g3", classPairs+0); r != 20_000_000 || bytes == 0 {
		t.Errorf("g3 pair class from a: rate %d bytes %d, want 20mbit and a's IPv6 traffic", r, bytes)
	}
	if r, bytes := classRate(t, tgt.NetnsPath, "g2", classDefault); r != 50_000_000 || bytes == 0 {
		t.Errorf("g2 default class: rate %d bytes %d, want 50mbit and IPv6 traffic", r, bytes)
	}
	if out := run(t, "", "ip", "netns", "exec", s.bridgeNS, "tc", "filter", "show", "dev", "g3"); !strings.Contains(out, "protocol ipv6") {
		t.Errorf("no IPv6 filter on g3:\n%s", out)
	}
}

// TestRateLimitLinkLocal: a pair's class takes what its source sends from its link-local
// address too (neighbours reach each other by it without any global address), and status
// reads both of its IPv6 filters back.
func TestRateLimitLinkLocal(t *testing.T) {
	s := newScene(t, 3, true)
	s.addIPv6(t)
	tgt := s.target()
	state := State{Partition: Fullmesh(), Impairments: []Impairment{{Src: "a", Dst: "c", Rate: 20_000_000}}}
	if err := Apply(tgt, state); err != nil {
		skipMissing(t, err)
		t.Fatal(err)
	}
	c := s.guests[2]
	ll := linkLocal6(c).String() + "%eth0"
	// Until its link-local address has passed duplicate address detection, a sends from its
	// global one; and c answers for its own only after.
	waitLinkLocal(t, s.nsOf["a"])
	waitLinkLocal(t, s.nsOf["c"])
	_, before := classRate(t, tgt.NetnsPath, c.Port, classPairs+0)
	const size, count = 1200, 3
	run(t, "", "ip", "netns", "exec", s.nsOf["a"], "ping", "-6", "-q", "-c", fmt.Sprint(count), "-i", "0.2", "-s", fmt.Sprint(size), "-W", "2", ll)
	if _, after := classRate(t, tgt.NetnsPath, c.Port, classPairs+0); after-before < size*count {
		t.Errorf("a's pings to c's link-local address put %d bytes into the pair's class a->c; want at least %d", after-before, size*count)
	}
	st, err := Status(tgt)
	if err != nil || !st.Kernel.InEffect {
		t.Errorf("status with a pair's link-local filter: %+v, %v", st.Kernel, err)
	}
}

// waitLinkLocal waits until eth0's link-local address in the namespace netns is usable: not
// tentative any more.
func waitLinkLocal(t *testing.T, netns string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out := run(t, "", "ip", "-n", netns, "-6", "addr", "show", "dev", "eth0", "scope", "link")
		if strings.Contains(out, "fe80:") && !strings.Contains(out, "tentative") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("eth0's link-local address in %s is not usable:\n%s", netns, out)
		}
	}
}
