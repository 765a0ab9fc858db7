package partition

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var (
	ipA = netip.MustParseAddr("172.18.0.1")
	ipB = netip.MustParseAddr("172.18.0.2")
	ipC = netip.MustParseAddr("172.18.0.3")
)

func portChains(ports ...string) []Chain {
	var out []Chain
	for _, p := range ports {
		out = append(out, Chain{Name: "in_" + p, Hook: "ingress", Device: p, Priority: ChainPriority,
			Rules: []Rule{{Action: ActionJump, Jump: FilterChain}}})
	}
	return out
}

// bridgeIn is the bridge backend's prerouting chain sending every frame to
// the filter chain, where only guest ports find a row class.
func bridgeIn() Chain {
	return Chain{Name: PreroutingChain, Hook: "prerouting", Priority: ChainPriority,
		Rules: []Rule{{Action: ActionJump, Jump: FilterChain}}}
}

func TestCompile(t *testing.T) {
	g := testGuests(3)
	for i := range g {
		g[i].NetnsPath = "/run/netns/guest-" + g[i].Name
	}
	blockAB := Partition{Kind: "block", Blocked: []Pair{{"a", "b"}}}
	// a (port g1) is row class 1, b (172.18.0.2, port g2) column class 1.
	blockedSet := Classes{Sources: []PortClass{{"g1", 1}}, Dests: []DestClass{{IP: ipB, Port: "g2", Col: 1}}, Runs: []ClassRun{{1, 1, 1}}}
	noneBlocked := Classes{}
	inSet := Rule{IPv4: true, Blocked: true}
	// blocking surrounds the rules acting on blocked IPv4 packets with the
	// class lookup.
	blocking := func(act ...Rule) []Rule {
		out := []Rule{{Classify: ClassifyReset}, {Classify: ClassifyRow}, {IPv4: true, Classify: ClassifyColumnByIP}}
		out = append(out, act...)
		return append(out, Rule{Classify: ClassifyClearColumn})
	}
	// b is blocked from a: what leaves through b's port is checked.
	netdevBlockB := append(append([]Chain{{Name: EgressChain, Rules: egressRules()}}, portChains("g1", "g2", "g3")...),
		Chain{Name: "out_g2", Hook: "egress", Device: "g2", Priority: ChainPriority, Rules: []Rule{{Action: ActionJump, Jump: EgressChain}}})
	bridgeBlock := []Chain{bridgeIn(), {Name: PostroutingChain, Hook: "postrouting", Priority: ChainPriority, Rules: egressRules()}}
	with := func(r Rule, f func(*Rule)) Rule { f(&r); return r }
	lossA := Rule{IPv4: true, Chance: 1250, Action: ActionDrop}

	// Each case gives the filter chain (nil: no table) and the chains that
	// hook it, per backend; sets and shaping do not depend on the backend.
	tests := []struct {
		name    string
		state   State
		sets    Classes
		filter  []Rule
		netdev  []Chain
		bridge  []Chain
		shaping []Shaping
	}{
		{
			name:  "fullmesh needs no table",
			state: State{Partition: Fullmesh()},
		},
		{
			name:   "drop",
			state:  State{Partition: blockAB},
			sets:   blockedSet,
			filter: blocking(with(inSet, func(r *Rule) { r.Action, r.Count = ActionDrop, CountDropped })),
			netdev: netdevBlockB,
			bridge: bridgeBlock,
		},
		{
			name:  "reject",
			state: State{Partition: blockAB, Mode: ModeReject},
			sets:  blockedSet,
			filter: blocking(
				with(inSet, func(r *Rule) { r.TCP, r.Action, r.Count = true, ActionRejectTCPReset, CountRejected }),
				with(inSet, func(r *Rule) { r.Action, r.Count = ActionRejectAdmin, CountRejected }),
			),
			netdev: netdevBlockB,
			bridge: bridgeBlock,
		},
		{
			name:  "drop with cut resets established segments",
			state: State{Partition: blockAB, Cut: true},
			sets:  blockedSet,
			filter: blocking(
				with(inSet, func(r *Rule) { r.TCP, r.NoSYN, r.Action, r.Count = true, true, ActionRejectTCPReset, CountRejected }),
				with(inSet, func(r *Rule) { r.Action, r.Count = ActionDrop, CountDropped }),
			),
			netdev: netdevBlockB,
			bridge: bridgeBlock,
		},
		{
			name: "loss on a guest and a pair",
			state: State{Partition: Fullmesh(), Impairments: []Impairment{
				{Src: "b", Dst: "c", Loss: 100},
				{Guest: "a", Loss: 12.5},
			}},
			sets: noneBlocked,
			filter: []Rule{
				{Iifname: "g2", IPv4: true, Daddr: ipC, Action: ActionDrop, Count: CountLostPair}, // 100%: no draw
			},
			netdev: []Chain{
				{Name: "in_g1", Hook: "ingress", Device: "g1", Priority: ChainPriority, Rules: []Rule{
					{Action: ActionJump, Jump: FilterChain}, with(lossA, func(r *Rule) { r.Count = CountLostFrom }),
				}},
				portChains("g2")[0], portChains("g3")[0],
				{Name: "out_g1", Hook: "egress", Device: "g1", Priority: ChainPriority, Rules: []Rule{with(lossA, func(r *Rule) { r.Count = CountLostTo })}},
			},
			bridge: []Chain{
				{Name: PreroutingChain, Hook: "prerouting", Priority: ChainPriority, Rules: []Rule{
					{Action: ActionJump, Jump: FilterChain},
					with(lossA, func(r *Rule) { r.Iifname, r.Count = "g1", CountLostFrom }),
				}},
				{Name: PostroutingChain, Hook: "postrouting", Priority: ChainPriority, Rules: []Rule{
					with(lossA, func(r *Rule) { r.Oifname, r.Count = "g1", CountLostTo }),
				}},
			},
		},
		{
			name: "guest rate alone needs tc only",
			state: State{Partition: Fullmesh(), Impairments: []Impairment{
				{Guest: "b", Rate: 1_000_000},
			}},
			shaping: []Shaping{
				{Device: "g2", Guest: "b", Rate: 1_000_000, Classes: []Class{{Minor: 2, Rate: 1_000_000}}},
				{Netns: "/run/netns/guest-b", Device: "eth0", Guest: "b", Rate: 1_000_000, Classes: []Class{{Minor: 2, Rate: 1_000_000}}},
			},
		},
		{
			// Pair classes are chosen by u32 filters on the source address, so
			// shaping alone needs no nftables table.
			name: "pair rate under a guest rate, pair netem over guest netem",
			state: State{Partition: Fullmesh(), Impairments: []Impairment{
				{Guest: "c", Rate: 1_000_000, Delay: 10 * time.Millisecond, Jitter: time.Millisecond},
				{Src: "a", Dst: "c", Rate: 5_000_000, Delay: 50 * time.Millisecond},
			}},
			shaping: []Shaping{
				{Device: "g3", Guest: "c", Rate: 1_000_000, Classes: []Class{
					{Minor: 2, Rate: 1_000_000, Netem: &Netem{Delay: 10 * time.Millisecond, Jitter: time.Millisecond}},
					{Minor: 0x100, From: "a", Src: ipA, Rate: 1_000_000, Netem: &Netem{Delay: 50 * time.Millisecond, Jitter: time.Millisecond}},
				}},
				{Netns: "/run/netns/guest-c", Device: "eth0", Guest: "c", Rate: 1_000_000, Classes: []Class{
					{Minor: 2, Rate: 1_000_000, Netem: &Netem{Delay: 10 * time.Millisecond, Jitter: time.Millisecond}},
				}},
			},
		},
		{
			// A pair impairment is shaped at the destination's port only: it
			// needs no guest namespace and leaves the source's eth0 alone.
			name: "pair impairment alone shapes the destination port",
			state: State{Partition: blockAB, Impairments: []Impairment{
				{Src: "b", Dst: "a", Delay: 20 * time.Millisecond, Loss: 100},
			}},
			sets: blockedSet,
			filter: append(blocking(with(inSet, func(r *Rule) { r.Action, r.Count = ActionDrop, CountDropped })),
				Rule{Iifname: "g2", IPv4: true, Daddr: ipA, Action: ActionDrop, Count: CountLostPair}),
			netdev: netdevBlockB,
			bridge: bridgeBlock,
			shaping: []Shaping{
				{Device: "g1", Guest: "a", Rate: MaxRate, Classes: []Class{
					{Minor: 2, Rate: MaxRate},
					{Minor: 0x101, From: "b", Src: ipB, Rate: MaxRate, Netem: &Netem{Delay: 20 * time.Millisecond}},
				}},
			},
		},
	}
	for _, tt := range tests {
		for _, b := range backends {
			t.Run(string(b)+"/"+tt.name, func(t *testing.T) {
				want := Plan{RuleSet: RuleSet{Backend: b, Family: string(b), Table: TableName}, Shaping: tt.shaping}
				if tt.filter != nil {
					want.RuleSet.Classes = tt.sets
					want.RuleSet.Chains = []Chain{{Name: FilterChain, Rules: tt.filter}}
					hooks := map[Backend][]Chain{BackendNetdev: tt.netdev, BackendBridge: tt.bridge}[b]
					want.RuleSet.Chains = append(want.RuleSet.Chains, hooks...)
				}
				// Counting rules jump to their counting chains (TestCountVia).
				want.RuleSet = countVia(want.RuleSet)
				got, err := Compile(tt.state, g, b)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					gj, _ := json.MarshalIndent(got, "", " ")
					wj, _ := json.MarshalIndent(want, "", " ")
					t.Errorf("plan differs\ngot  %s\nwant %s", gj, wj)
				}
				if rej := tt.state.Mode == ModeReject || tt.state.Cut; got.RuleSet.needsReject() != rej {
					t.Errorf("needsReject = %v, want %v", !rej, rej)
				}
			})
		}
	}
}

func TestCompileErrors(t *testing.T) {
	g := testGuests(3)
	tests := []struct {
		name   string
		state  State
		errHas string
	}{
		{"unknown guest in pair", State{Partition: Partition{Blocked: []Pair{{"a", "zz"}}}}, `blocked pair a->zz: unknown guest "zz"`},
		{"self pair", State{Partition: Partition{Blocked: []Pair{{"a", "172.18.0.1"}}}}, "cannot be cut from itself"},
		{"bad mode", State{Mode: "explode"}, `mode "explode"`},
		{"duplicate impairment", State{Impairments: []Impairment{{Guest: "a", Loss: 1}, {Guest: "172.18.0.1", Loss: 2}}}, "impairment of guest a is given twice"},
		{"impairment of unknown guest", State{Impairments: []Impairment{{Guest: "zz", Loss: 1}}}, `unknown guest "zz"`},
		{"impairment with guest and pair", State{Impairments: []Impairment{{Guest: "a", Src: "b", Dst: "c"}}}, "not both"},
		{"impairment half a pair", State{Impairments: []Impairment{{Src: "b"}}}, "set guest, or both src and dst"},
		{"loss out of range", State{Impairments: []Impairment{{Guest: "a", Loss: 101}}}, "loss 101% is out of range"},
		// netem cuts a longer jitter, and takes a reorder this small for 0, which with its
		// gap reorders every packet: status would see both as changed for good.
		{"jitter netem cannot keep", State{Impairments: []Impairment{{Src: "a", Dst: "b", Delay: 5 * time.Second, Jitter: 3 * time.Second}}}, "jitter 3s is out of range; use 0 to 2.147483647s"},
		{"reorder below resolution", State{Impairments: []Impairment{{Src: "a", Dst: "b", Delay: time.Second, Reorder: 1e-9}}}, "reorder 1e-09% is below netem's resolution"},
		// Outgoing shaping happens in the guest's namespace; without one the
		// impairment is refused, never half applied.
		{"guest rate without netns", State{Impairments: []Impairment{{Guest: "a", Rate: 1_000_000}}}, "impairment of guest a (rate): what the guest sends is shaped on its eth0 inside its network namespace, but guest a has no NetnsPath"},
		{"guest netem without netns", State{Impairments: []Impairment{{Guest: "b", Delay: time.Millisecond, Duplicate: 1}}}, "impairment of guest b (delay, duplicate): what the guest sends"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(tt.state, g, BackendNetdev)
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("error = %v, want one containing %q", err, tt.errHas)
			}
		})
	}
	t.Run("unknown backend", func(t *testing.T) {
		_, err := Compile(State{}, g, "iptables")
		if want := `backend "iptables": want "netdev" or "bridge"`; err == nil || err.Error() != want {
			t.Fatalf("error = %v, want %q", err, want)
		}
	})
}

func TestRuleSetString(t *testing.T) {
	counterSet := func(name, typ string) string {
		return "\tset " + name + " {\n\t\ttype " + typ + "\n\t\tsize 65536\n\t\tflags dynamic\n\t}\n"
	}
	state := State{Partition: Partition{Blocked: []Pair{{"a", "b"}}}, Mode: ModeReject,
		Impairments: []Impairment{{Guest: "a", Loss: 5}}}
	sets := `	map src {
		type ifname : mark
		elements = { "g1" : 1 }
	}
	map dst {
		type ipv4_addr : classid
		elements = { 172.18.0.2 : 1 }
	}
	map dstport {
		type ifname : classid
		elements = { "g2" : 1 }
	}
	set blocked {
		type mark . classid
		flags interval
		elements = { 1 . 1 }
	}
` + counterSet("count_reject", "ifname . ipv4_addr") + counterSet("count_out", "ether_addr . ifname") +
		counterSet("count_loss_from", "ifname") + counterSet("count_loss_to", "ifname") + `	chain filter {
		meta mark set 0 meta priority set none
		meta mark set iifname map @src
		meta protocol ip meta priority set ip daddr map @dst
		meta protocol ip meta mark . meta priority @blocked meta l4proto tcp jump count_reset
		meta protocol ip meta mark . meta priority @blocked jump count_reject
		meta priority set none
	}
`
	const egress = `		meta priority set none
		meta protocol != arp meta priority set oifname map @dstport
		meta protocol != arp meta mark . meta priority @blocked jump count_drop_out
		meta mark set 0 meta priority set none
`
	// The counting chains, which the counting rules jump to.
	const counting = `	chain count_reset {
		update @count_reject { iifname . ip daddr counter }
		reject with tcp reset
	}
	chain count_reject {
		update @count_reject { iifname . ip daddr counter }
		reject with icmpx admin-prohibited
	}
	chain count_drop_out {
		update @count_out { ether saddr . oifname counter }
		drop
	}
	chain count_loss_from {
		update @count_loss_from { iifname counter }
		drop
	}
	chain count_loss_to {
		update @count_loss_to { oifname counter }
		drop
	}
`
	tests := []struct {
		backend Backend
		state   State
		want    string
	}{
		{BackendNetdev, state, `# backend netdev: ingress chain on each guest port (egress for loss towards a guest), reject by nft_reject_netdev
table netdev pontoon_partition {
` + sets + `	chain egress {
` + egress + `	}
	chain in_g1 {
		type filter hook ingress device "g1" priority -300;
		jump filter
		meta protocol ip numgen random mod 10000 < 500 jump count_loss_from
	}
	chain in_g2 {
		type filter hook ingress device "g2" priority -300;
		jump filter
	}
	chain out_g1 {
		type filter hook egress device "g1" priority -300;
		meta protocol ip numgen random mod 10000 < 500 jump count_loss_to
	}
	chain out_g2 {
		type filter hook egress device "g2" priority -300;
		jump egress
	}
` + counting + `}
`},
		{BackendBridge, state, `# backend bridge: bridge prerouting and postrouting chains matching guest ports by name, reject by nft_reject_bridge
table bridge pontoon_partition {
` + sets + `	chain prerouting {
		type filter hook prerouting priority -300;
		jump filter
		iifname "g1" meta protocol ip numgen random mod 10000 < 500 jump count_loss_from
	}
	chain postrouting {
		type filter hook postrouting priority -300;
` + egress + `		oifname "g1" meta protocol ip numgen random mod 10000 < 500 jump count_loss_to
	}
` + counting + `}
`},
		{BackendBridge, State{}, "# backend bridge: table bridge pontoon_partition absent\n"},
	}
	for _, tt := range tests {
		t.Run(string(tt.backend), func(t *testing.T) {
			plan, err := Compile(tt.state, testGuests(2), tt.backend)
			if err != nil {
				t.Fatal(err)
			}
			if got := plan.RuleSet.String(); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
	if got, want := (RuleSet{Table: TableName}).String(), "# table pontoon_partition: absent in every family\n"; got != want {
		t.Errorf("rule set of Heal: %q, want %q", got, want)
	}
}

// TestBackendChoice: which backend the probed kernel support leads to, and
// what Apply reports when that backend cannot reject.
func TestBackendChoice(t *testing.T) {
	enoent := fmt.Errorf("conn.Receive: %w", unix.ENOENT)
	both := map[Backend]bool{BackendNetdev: true, BackendBridge: true}
	tests := []struct {
		name     string
		sup      support
		force    Backend
		want     Backend
		families []Backend
		// rejectFeature is the Feature of the error for reject rules on the
		// chosen backend; empty when it can reject.
		rejectFeature string
		errHas        []string
	}{
		{name: "netdev reject (Linux 6.18)", sup: support{tables: both, reject: map[Backend]error{BackendBridge: enoent}},
			want: BackendNetdev, families: backends},
		{name: "bridge reject only (Debian 12, Linux 6.1)", sup: support{tables: both, reject: map[Backend]error{BackendNetdev: enoent}},
			want: BackendBridge, families: backends},
		{name: "both rejects prefer netdev", sup: support{tables: both, reject: map[Backend]error{}},
			want: BackendNetdev, families: backends},
		{name: "no reject at all: netdev, drop only", sup: support{tables: both, reject: map[Backend]error{BackendNetdev: enoent, BackendBridge: enoent}},
			want: BackendNetdev, families: backends, rejectFeature: "nft_reject_netdev",
			errHas: []string{"kernel feature nft_reject_netdev is not available (needed for reject mode)", "CONFIG_NFT_REJECT_NETDEV",
				"CONFIG_NFT_BRIDGE_REJECT", "drop mode without Cut works", "refused reject in the netdev family (nft_reject_netdev)",
				"refused reject in the bridge family (nft_reject_bridge)"}},
		{name: "no bridge family", sup: support{tables: map[Backend]bool{BackendNetdev: true}, reject: map[Backend]error{BackendNetdev: enoent, BackendBridge: enoent}},
			want: BackendNetdev, families: []Backend{BackendNetdev}, rejectFeature: "nft_reject_netdev",
			errHas: []string{"refused bridge family tables (nft_reject_bridge)"}},
		{name: "forced bridge without bridge reject", sup: support{tables: both, reject: map[Backend]error{BackendBridge: enoent}},
			force: BackendBridge, want: BackendBridge, families: backends, rejectFeature: "nft_reject_bridge",
			errHas: []string{"kernel feature nft_reject_bridge is not available (needed for reject mode)", "CONFIG_NFT_BRIDGE_REJECT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forcedBackend = tt.force
			defer func() { forcedBackend = "" }()
			b := tt.sup.backend()
			if b != tt.want {
				t.Errorf("backend = %s, want %s", b, tt.want)
			}
			if got := tt.sup.families(); !reflect.DeepEqual(got, tt.families) {
				t.Errorf("families = %v, want %v", got, tt.families)
			}
			err := tt.sup.rejectErr(b, "reject mode")
			if tt.rejectFeature == "" {
				if err != nil {
					t.Errorf("reject on %s: %v, want no error", b, err)
				}
				return
			}
			var fe *FeatureError
			if !errors.As(err, &fe) || fe.Feature != tt.rejectFeature {
				t.Fatalf("reject on %s: %v, want a FeatureError for %s", b, err, tt.rejectFeature)
			}
			if !errors.Is(err, ErrRejectUnavailable) || errors.Is(err, ErrNetemUnavailable) {
				t.Errorf("errors.Is(ErrRejectUnavailable) = %v, errors.Is(ErrNetemUnavailable) = %v; want true, false",
					errors.Is(err, ErrRejectUnavailable), errors.Is(err, ErrNetemUnavailable))
			}
			if !errors.Is(err, unix.ENOENT) {
				t.Errorf("%v does not wrap the kernel's answer", err)
			}
			for _, s := range tt.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("message %q lacks %q", err, s)
				}
			}
		})
	}
}

func TestFeatureErrorIs(t *testing.T) {
	err := error(&FeatureError{Feature: "sch_netem", Need: "delay on guest a", Err: errFake})
	if !isNetem(err) {
		t.Errorf("errors.Is(%v, ErrNetemUnavailable) = false", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "sch_netem") || !strings.Contains(msg, "CONFIG_NET_SCH_NETEM") || !strings.Contains(msg, "delay on guest a") {
		t.Errorf("message %q lacks the feature, config option or need", msg)
	}
	if isHTB(err) {
		t.Error("a netem error matches ErrHTBUnavailable")
	}
}

func TestStateImpairMergesSettings(t *testing.T) {
	guests := []Guest{{Name: "a", IP: netip.MustParseAddr("172.18.0.1"), Port: "g1"}, {Name: "b", IP: netip.MustParseAddr("172.18.0.2"), Port: "g2"}}
	step := func(s State, words string) State {
		t.Helper()
		next, _, err := s.Impair(strings.Fields(words), guests)
		if err != nil {
			t.Fatalf("Impair(%q): %v", words, err)
		}
		return next
	}
	s := step(State{}, "loss=10% a")
	s = step(s, "rate=1mbit a")
	s = step(s, "delay=50ms jitter=10ms a")
	if len(s.Impairments) != 1 {
		t.Fatalf("impairments %v, want one for a", s.Impairments)
	}
	if im := s.Impairments[0]; im.Loss != 10 || im.Rate != 1_000_000 || im.Delay != 50*time.Millisecond || im.Jitter != 10*time.Millisecond {
		t.Errorf("merged impairment %+v, want loss 10, rate 1mbit, delay 50ms, jitter 10ms", im)
	}
	s = step(s, "delay=0 a") // takes the jitter along
	if im := s.Impairments[0]; im.Delay != 0 || im.Jitter != 0 || im.Loss != 10 {
		t.Errorf("after delay=0: %+v, want loss 10 kept, no delay or jitter", im)
	}
	s = step(s, "loss=0 rate=0bit a")
	if len(s.Impairments) != 0 {
		t.Errorf("an impairment without effect is kept: %v", s.Impairments)
	}
	if _, _, err := (State{}).Impair(strings.Fields("loss=10% c"), guests); err == nil {
		t.Error("Impair accepted an unknown guest")
	}
}
