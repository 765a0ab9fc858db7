package partition

import (
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	hostile "github.com/pontoon-dev/pontoon/netsetup/probe"
)

// sendUDP sends n datagrams of the given payload size from guest src to dst's port 9, one
// packet each, and returns the bytes each one counts as in the kernel (IPv4 + UDP headers
// and the payload: the counters see packets from their network header on).
func (s *scene) sendUDP(tb testing.TB, src, dst string, n, size int) uint64 {
	tb.Helper()
	ip := ""
	for _, g := range s.guests {
		if g.Name == dst {
			ip = g.IP.String()
		}
	}
	payload := strings.Repeat("x", size)
	run(tb, "", "ip", "netns", "exec", s.nsOf[src], "bash", "-c",
		fmt.Sprintf(`for i in $(seq 1 %d); do printf %s > /dev/udp/%s/9; done`, n, payload, ip))
	return uint64(20 + 8 + size)
}

func stats(t *testing.T, tgt Target) Counters {
	t.Helper()
	c, err := Stats(tgt)
	if err != nil {
		t.Fatal(err)
	}
	if c.Detail != "" {
		t.Fatalf("counters incomplete: %s", c.Detail)
	}
	return c
}

// The counters say exactly what the partition stopped: every datagram sent across a block
// is counted once, for its pair, and traffic the partition lets through is counted nowhere.
// A pair that stays blocked across a change keeps its count; one unblocked and blocked again
// counts from zero; a loss setting counts what it lost.
func TestCountersCountWhatWasStopped(t *testing.T) {
	s := newScene(t, 3, false)
	// Every guest listens on port 9, so no datagram draws an ICMP error that would be
	// counted too.
	s.startServers(t)
	// Nor does anything else cross: the guests' IPv6 (router solicitations, multicast
	// listener reports) would be dropped at the ports, and rightly counted.
	for _, g := range s.guests {
		run(t, "", "ip", "netns", "exec", s.nsOf[g.Name], "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
	}
	tgt := s.target()
	forEachBackend(t, func(t *testing.T, b Backend) {
		skipMissing(t, Apply(tgt, State{Partition: mustBlock(t, tgt.Guests, "a", "b")}))
		if c := stats(t, tgt); len(c.Blocked) != 0 {
			t.Fatalf("counters before any traffic: %+v", c.Blocked)
		}
		per := s.sendUDP(t, "a", "b", 5, 10)
		s.sendUDP(t, "b", "c", 3, 10) // allowed: counted nowhere
		s.sendUDP(t, "b", "a", 2, 10) // the other way of a one-way block: allowed
		want := Count{Packets: 5, Bytes: 5 * per}
		c := stats(t, tgt)
		if got := c.Pair("a", "b").Dropped; got != want || len(c.Blocked) != 1 || !c.Unattributed.Zero() {
			t.Fatalf("after 5 datagrams a->b across the block: %+v, want a->b dropped %+v and nothing else", c, want)
		}

		// a->b stays blocked while c->b is added: its count stays.
		both := mustBlock(t, tgt.Guests, "a", "b").Union(mustBlock(t, tgt.Guests, "c", "b"))
		skipMissing(t, Apply(tgt, State{Partition: both}))
		s.sendUDP(t, "c", "b", 2, 10)
		c = stats(t, tgt)
		if got := c.Pair("a", "b").Dropped; got != want {
			t.Errorf("a->b after a change that kept it blocked: %+v, want %+v", got, want)
		}
		if got := c.Pair("c", "b").Dropped; got.Packets != 2 {
			t.Errorf("c->b after 2 datagrams: %+v", got)
		}

		// a->b unblocked (the table stays for c->b), then blocked again: from zero.
		skipMissing(t, Apply(tgt, State{Partition: mustBlock(t, tgt.Guests, "c", "b")}))
		if got := stats(t, tgt).Pair("a", "b").Dropped; !got.Zero() {
			t.Errorf("a->b no longer blocked still counts %+v", got)
		}
		skipMissing(t, Apply(tgt, State{Partition: both}))
		s.sendUDP(t, "a", "b", 1, 10)
		if got := stats(t, tgt).Pair("a", "b").Dropped; got.Packets != 1 {
			t.Errorf("a->b blocked again, after 1 datagram: %+v, want 1 packet", got)
		}

		// Loss of 100% on c: what reaches c is lost and counted for "guest c"; the
		// blocked pair a->b counts nothing more.
		skipMissing(t, Apply(tgt, State{Partition: mustBlock(t, tgt.Guests, "a", "b"), Impairments: []Impairment{{Guest: "c", Loss: 100}}}))
		s.sendUDP(t, "a", "c", 6, 10)
		c = stats(t, tgt)
		// Loss stops whatever IP frame leaves c's port, so the network's own IPv6 multicast
		// (MLD reports, neighbour announcements) that happens to go out meanwhile counts too.
		if got := c.Impairment("guest c").Lost; got.Packets < 6 || got.Packets > 6+2 {
			t.Errorf("loss 100%% on c after 6 datagrams to c: %+v, want 6 (and at most 2 of the network's own)", c.Impairments)
		}
		if p := c.Pair("a", "b"); p.Dropped.Packets != 1 {
			t.Errorf("a->b after traffic elsewhere: %+v, want still 1 dropped", p)
		}

		// Reject mode counts rejections; the drops of the pair, still blocked, stay.
		if err := Apply(tgt, State{Partition: mustBlock(t, tgt.Guests, "a", "b"), Mode: ModeReject}); err == nil {
			s.sendUDP(t, "a", "b", 4, 10)
			if p := stats(t, tgt).Pair("a", "b"); p.Rejected.Packets != 4 || p.Dropped.Packets != 1 {
				t.Errorf("reject mode after 4 datagrams: %+v, want 4 rejected and the 1 dropped before", p)
			}
		} else if !errors.As(err, new(*FeatureError)) {
			t.Fatal(err)
		}

		if err := Heal(tgt); err != nil {
			t.Fatal(err)
		}
		if c := stats(t, tgt); len(c.Blocked) != 0 || len(c.Impairments) != 0 {
			t.Errorf("counters after heal: %+v", c)
		}
	})
}

// A guest that forges source MACs can fill the egress counter set. The update of a full set
// fails, and a failed expression ends its rule: if the update sat in the dropping rule, the
// frame would go through. It must be dropped all the same, only uncounted.
func TestFullCounterSetStillDrops(t *testing.T) {
	s := newScene(t, 2, false)
	tgt := s.target()
	const port = 7360
	rec, err := hostile.Record(s.guestNetns("b"), port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rec.Close)
	// Nothing from a may reach the set before it is full (IPv6 neighbour discovery would).
	for _, g := range s.guests {
		run(t, "", "ip", "netns", "exec", s.nsOf[g.Name], "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
	}
	skipMissing(t, Apply(tgt, State{Partition: mustBlock(t, tgt.Guests, "a", "b")}))
	st, err := Status(tgt)
	if err != nil {
		t.Fatal(err)
	}
	// Fill count_out with keys no guest sends from, until the kernel refuses more (ENFILE).
	full := false
	for i := 0; i < 2*maxCounted && !full; i += 1024 {
		var script strings.Builder
		fmt.Fprintf(&script, "add element %s %s %s { ", st.Backend.Family(), TableName, CountDroppedOut)
		for j := i; j < i+1024; j++ {
			if j > i {
				script.WriteString(", ")
			}
			fmt.Fprintf(&script, `02:ff:00:%02x:%02x:%02x . "fill"`, j>>16, (j>>8)&0xff, j&0xff)
		}
		script.WriteString(" }\n")
		cmd := exec.Command("ip", "netns", "exec", s.bridgeNS, "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(script.String())
		if out, err := cmd.CombinedOutput(); err != nil {
			if !strings.Contains(string(out), "Too many open files") {
				t.Fatalf("fill %s: %v\n%.300s", CountDroppedOut, err, out)
			}
			full = true
		}
	}
	if !full {
		t.Fatalf("%s took %d elements without filling up", CountDroppedOut, 2*maxCounted)
	}
	ip := map[string]netip.Addr{}
	for _, g := range tgt.Guests {
		ip[g.Name] = g.IP
	}
	// A broadcast passes where it enters (its destination is no guest) and is judged where
	// it would leave for b.
	pkt := hostile.IPv4UDP(ip["a"], netip.MustParseAddr("172.18.0.255"), port, "over a full set")
	if err := hostile.SendFrames(s.guestNetns("a"), hostile.Frame(hostile.Broadcast, s.macOf["a"], hostile.EtherIPv4, pkt)); err != nil {
		t.Fatal(err)
	}
	if rec.WaitFor("over a full set", 500*time.Millisecond) {
		t.Error("a broadcast from a reached b across the block once the counter set was full")
	}
	if c := stats(t, tgt); !c.Pair("a", "b").Dropped.Zero() {
		t.Errorf("counted %+v in a full set: the test did not fill it", c.Pair("a", "b"))
	}
	// The same frame without the block arrives: the test can tell.
	skipMissing(t, Apply(tgt, State{Partition: Fullmesh()}))
	if err := hostile.SendFrames(s.guestNetns("a"), hostile.Frame(hostile.Broadcast, s.macOf["a"], hostile.EtherIPv4, hostile.IPv4UDP(ip["a"], netip.MustParseAddr("172.18.0.255"), port, "no block"))); err != nil {
		t.Fatal(err)
	}
	if !rec.WaitFor("no block", 2*time.Second) {
		t.Error("the broadcast does not reach b even without a block")
	}
}

// TestCountVia: counting rules become jumps to chains that count, then decide; only the
// chains used are added; without a table, or with counters off, nothing changes.
func TestCountVia(t *testing.T) {
	drop := Rule{IPv4: true, Blocked: true, Action: ActionDrop, Count: CountDropped}
	rs := RuleSet{Chains: []Chain{{Name: FilterChain, Rules: []Rule{{Classify: ClassifyRow}, drop}}}}
	got := countVia(rs)
	want := []Chain{
		{Name: FilterChain, Rules: []Rule{{Classify: ClassifyRow}, {IPv4: true, Blocked: true, Action: ActionJump, Jump: "count_drop"}}},
		{Name: "count_drop", Rules: []Rule{{Count: CountDropped}, {Action: ActionDrop}}},
	}
	if !reflect.DeepEqual(got.Chains, want) {
		t.Errorf("countVia:\n%+v\nwant\n%+v", got.Chains, want)
	}
	if rs.Chains[0].Rules[1] != drop {
		t.Error("countVia changed the rule set it was given")
	}
	if c := got.counted(); !reflect.DeepEqual(c, []string{CountDropped}) {
		t.Errorf("counted = %v", c)
	}
	if got := countVia(RuleSet{}); !got.Empty() {
		t.Errorf("countVia of an empty rule set: %+v", got)
	}
	countersSetting = "off"
	defer func() { countersSetting = "on" }()
	if got := countVia(rs); !reflect.DeepEqual(got, rs) {
		t.Errorf("countVia with counters off: %+v", got)
	}
}
