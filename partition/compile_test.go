package partition

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
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

func TestCompile(t *testing.T) {
	g := testGuests(3)
	for i := range g {
		g[i].NetnsPath = "/run/netns/guest-" + g[i].Name
	}
	blockAB := Partition{Kind: "block", Blocked: []Pair{{"a", "b"}}}
	blockedSet := []Set{{Name: BlockedSet, Elements: []AddrPair{{ipA, ipB}}}}
	inSet := Rule{IPv4: true, PairSet: BlockedSet}
	with := func(r Rule, f func(*Rule)) Rule { f(&r); return r }

	tests := []struct {
		name  string
		state State
		want  Plan
	}{
		{
			name:  "fullmesh needs no table",
			state: State{Partition: Fullmesh()},
			want:  Plan{RuleSet: RuleSet{Family: "netdev", Table: TableName}},
		},
		{
			name:  "drop",
			state: State{Partition: blockAB},
			want: Plan{RuleSet: RuleSet{Family: "netdev", Table: TableName, Sets: blockedSet,
				Chains: append([]Chain{{Name: FilterChain, Rules: []Rule{
					with(inSet, func(r *Rule) { r.Action = ActionDrop }),
				}}}, portChains("g1", "g2", "g3")...)}},
		},
		{
			name:  "reject",
			state: State{Partition: blockAB, Mode: ModeReject},
			want: Plan{RuleSet: RuleSet{Family: "netdev", Table: TableName, Sets: blockedSet,
				Chains: append([]Chain{{Name: FilterChain, Rules: []Rule{
					with(inSet, func(r *Rule) { r.TCP, r.Action = true, ActionRejectTCPReset }),
					with(inSet, func(r *Rule) { r.Action = ActionRejectAdmin }),
				}}}, portChains("g1", "g2", "g3")...)}},
		},
		{
			name:  "drop with cut resets established segments",
			state: State{Partition: blockAB, Cut: true},
			want: Plan{RuleSet: RuleSet{Family: "netdev", Table: TableName, Sets: blockedSet,
				Chains: append([]Chain{{Name: FilterChain, Rules: []Rule{
					with(inSet, func(r *Rule) { r.TCP, r.NoSYN, r.Action = true, true, ActionRejectTCPReset }),
					with(inSet, func(r *Rule) { r.Action = ActionDrop }),
				}}}, portChains("g1", "g2", "g3")...)}},
		},
		{
			name: "loss on a guest and a pair",
			state: State{Partition: Fullmesh(), Impairments: []Impairment{
				{Src: "b", Dst: "c", Loss: 100},
				{Guest: "a", Loss: 12.5},
			}},
			want: Plan{RuleSet: RuleSet{Family: "netdev", Table: TableName,
				Sets: []Set{{Name: BlockedSet, Elements: []AddrPair{}}},
				Chains: []Chain{
					{Name: FilterChain, Rules: []Rule{
						{IPv4: true, PairSet: BlockedSet, Action: ActionDrop},
						{IPv4: true, Saddr: ipB, Daddr: ipC, Action: ActionDrop}, // 100%: no draw
					}},
					{Name: "in_g1", Hook: "ingress", Device: "g1", Priority: ChainPriority, Rules: []Rule{
						{Action: ActionJump, Jump: FilterChain},
						{IPv4: true, Chance: 1250, Action: ActionDrop},
					}},
					portChains("g2")[0], portChains("g3")[0],
					{Name: "out_g1", Hook: "egress", Device: "g1", Priority: ChainPriority, Rules: []Rule{
						{IPv4: true, Chance: 1250, Action: ActionDrop},
					}},
				}}},
		},
		{
			name: "guest rate alone needs tc only",
			state: State{Partition: Fullmesh(), Impairments: []Impairment{
				{Guest: "b", Rate: 1_000_000},
			}},
			want: Plan{
				RuleSet: RuleSet{Family: "netdev", Table: TableName},
				Shaping: []Shaping{
					{Device: "g2", Guest: "b", Rate: 1_000_000, Classes: []Class{{Minor: 2, Rate: 1_000_000}}},
					{Netns: "/run/netns/guest-b", Device: "eth0", Guest: "b", Rate: 1_000_000, Classes: []Class{{Minor: 2, Rate: 1_000_000}}},
				},
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
			want: Plan{
				RuleSet: RuleSet{Family: "netdev", Table: TableName},
				Shaping: []Shaping{
					{Device: "g3", Guest: "c", Rate: 1_000_000, Classes: []Class{
						{Minor: 2, Rate: 1_000_000, Netem: &Netem{Delay: 10 * time.Millisecond, Jitter: time.Millisecond}},
						{Minor: 0x100, From: "a", Src: ipA, Rate: 1_000_000, Netem: &Netem{Delay: 50 * time.Millisecond, Jitter: time.Millisecond}},
					}},
					{Netns: "/run/netns/guest-c", Device: "eth0", Guest: "c", Rate: 1_000_000, Classes: []Class{
						{Minor: 2, Rate: 1_000_000, Netem: &Netem{Delay: 10 * time.Millisecond, Jitter: time.Millisecond}},
					}},
				},
			},
		},
		{
			// A pair impairment is shaped at the destination's port only: it
			// needs no guest namespace and leaves the source's eth0 alone.
			name: "pair impairment alone shapes the destination port",
			state: State{Partition: blockAB, Impairments: []Impairment{
				{Src: "b", Dst: "a", Delay: 20 * time.Millisecond, Loss: 100},
			}},
			want: Plan{
				RuleSet: RuleSet{Family: "netdev", Table: TableName, Sets: blockedSet,
					Chains: append([]Chain{{Name: FilterChain, Rules: []Rule{
						with(inSet, func(r *Rule) { r.Action = ActionDrop }),
						{IPv4: true, Saddr: ipB, Daddr: ipA, Action: ActionDrop},
					}}}, portChains("g1", "g2", "g3")...)},
				Shaping: []Shaping{
					{Device: "g1", Guest: "a", Rate: MaxRate, Classes: []Class{
						{Minor: 2, Rate: MaxRate},
						{Minor: 0x101, From: "b", Src: ipB, Rate: MaxRate, Netem: &Netem{Delay: 20 * time.Millisecond}},
					}},
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Compile(tt.state, g)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				gj, _ := json.MarshalIndent(got, "", " ")
				wj, _ := json.MarshalIndent(tt.want, "", " ")
				t.Errorf("plan differs\ngot  %s\nwant %s", gj, wj)
			}
		})
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
		// Outgoing shaping happens in the guest's namespace; without one the
		// impairment is refused, never half applied.
		{"guest rate without netns", State{Impairments: []Impairment{{Guest: "a", Rate: 1_000_000}}}, "impairment of guest a (rate): what the guest sends is shaped on its eth0 inside its network namespace, but guest a has no NetnsPath"},
		{"guest netem without netns", State{Impairments: []Impairment{{Guest: "b", Delay: time.Millisecond, Duplicate: 1}}}, "impairment of guest b (delay, duplicate): what the guest sends"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(tt.state, g)
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("error = %v, want one containing %q", err, tt.errHas)
			}
		})
	}
}

func TestRuleSetString(t *testing.T) {
	plan, err := Compile(State{Partition: Partition{Blocked: []Pair{{"a", "b"}}}, Mode: ModeReject,
		Impairments: []Impairment{{Guest: "a", Loss: 5}}}, testGuests(2))
	if err != nil {
		t.Fatal(err)
	}
	want := `table netdev pontoon_partition {
	set blocked {
		type ipv4_addr . ipv4_addr
		elements = { 172.18.0.1 . 172.18.0.2 }
	}
	chain filter {
		meta protocol ip ip saddr . ip daddr @blocked meta l4proto tcp reject with tcp reset
		meta protocol ip ip saddr . ip daddr @blocked reject with icmpx admin-prohibited
	}
	chain in_g1 {
		type filter hook ingress device "g1" priority -300;
		jump filter
		meta protocol ip numgen random mod 10000 < 500 drop
	}
	chain in_g2 {
		type filter hook ingress device "g2" priority -300;
		jump filter
	}
	chain out_g1 {
		type filter hook egress device "g1" priority -300;
		meta protocol ip numgen random mod 10000 < 500 drop
	}
}
`
	if got := plan.RuleSet.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
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
