package partition

import (
	"strings"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/internal/nftwire"
)

// TestStatusSeesRulesChanged: status said a partition or a loss was in force, with no
// warning, after its chains had been emptied or removed by hand and packets passed again:
// only the class sets, the marker and the filter chain's verdicts were read back. Each rule
// now carries its chain's fingerprint and place, and status checks every chain's rules.
func TestStatusSeesRulesChanged(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		for _, tc := range []struct {
			name   string
			state  func(tgt Target) State
			tamper func(ns, family string) []string // nft commands
			want   string
		}{
			{"filter emptied", func(tgt Target) State { return State{Partition: mustIsolate(t, tgt.Guests, "a")} },
				func(ns, f string) []string { return []string{"flush chain " + f + " " + TableName + " " + FilterChain} },
				"chain " + FilterChain + " holds 0 rules"},
			{"a rule added", func(tgt Target) State { return State{Partition: mustIsolate(t, tgt.Guests, "a")} },
				func(ns, f string) []string {
					return []string{"add rule " + f + " " + TableName + " " + FilterChain + " drop"}
				},
				"chain " + FilterChain + " holds"},
			{"a rule replaced", func(tgt Target) State { return State{Partition: mustIsolate(t, tgt.Guests, "a")} },
				func(ns, f string) []string {
					return []string{"insert rule " + f + " " + TableName + " " + FilterChain + " accept", "delete rule " + f + " " + TableName + " " + FilterChain + " handle " + lastHandle(t, ns, f, FilterChain)}
				},
				"rule 1 of chain " + FilterChain + " is not the one committed"},
			{"the IPv6 and port maps emptied", func(tgt Target) State { return State{Partition: mustIsolate(t, tgt.Guests, "a")} },
				func(ns, f string) []string {
					var cmds []string
					for _, m := range []string{DestMap6, DestPortMap} {
						for buf := range 2 {
							cmds = append(cmds, "flush map "+f+" "+TableName+" "+bufferName(m, buf))
						}
					}
					return cmds
				},
				"the class maps hold other elements"},
			{"a base chain's policy set to drop", func(tgt Target) State { return State{Partition: mustIsolate(t, tgt.Guests, "a")} },
				func(ns, f string) []string {
					chain := PreroutingChain
					if f == "netdev" {
						chain = "in_g3"
					}
					return []string{"chain " + f + " " + TableName + " " + chain + " { policy drop ; }"}
				},
				"has a policy that drops"},
			{"a loss rule replaced", func(tgt Target) State {
				return State{Impairments: []Impairment{{Guest: "b", Loss: 50}}}
			}, func(ns, f string) []string {
				chain := PreroutingChain
				if f == "netdev" {
					chain = "in_g2"
				}
				return []string{"insert rule " + f + " " + TableName + " " + chain + " accept",
					"delete rule " + f + " " + TableName + " " + chain + " handle " + lastHandle(t, ns, f, chain)}
			}, "is not the one committed"},
			{"a rule replaced under its own comment", func(tgt Target) State { return State{Partition: mustIsolate(t, tgt.Guests, "a")} },
				func(ns, f string) []string { return []string{replaceKeepingComment(t, ns, f, FilterChain, "accept")} },
				"of chain " + FilterChain + " was rewritten"},
			{"a loss rule replaced under its own comment", func(tgt Target) State {
				return State{Impairments: []Impairment{{Guest: "b", Loss: 50}}}
			}, func(ns, f string) []string {
				chain := PreroutingChain
				if f == "netdev" {
					chain = "in_g2"
				}
				return []string{replaceKeepingComment(t, ns, f, chain, "accept")}
			}, "was rewritten"},
			{"a chain added", func(tgt Target) State {
				return State{Impairments: []Impairment{{Guest: "b", Loss: 50}}}
			}, func(ns, f string) []string { return []string{"add chain " + f + " " + TableName + " extra"} },
				"chain extra is not pontoon's"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := newScene(t, 3, false)
				tgt := s.target()
				err := Apply(tgt, tc.state(tgt))
				skipMissing(t, err)
				rec, err := Status(tgt)
				if err != nil || !rec.Kernel.InEffect {
					t.Fatalf("before any change by hand: %+v, %v; want in effect", rec.Kernel, err)
				}
				cmds := tc.tamper(s.bridgeNS, b.Family())
				for _, cmd := range cmds {
					run(t, "", append([]string{"ip", "netns", "exec", s.bridgeNS, "nft"}, strings.Fields(cmd)...)...)
				}
				rec, err = Status(tgt)
				if err != nil {
					t.Fatal(err)
				}
				if rec.Kernel.InEffect || !strings.Contains(rec.Kernel.Detail, tc.want) {
					t.Errorf("after %q: %+v; want not in effect, saying %q", cmds, rec.Kernel, tc.want)
				}
				// The next change puts the table right, chains whose rules it keeps included:
				// something was committed in the namespace since the last change.
				if err := Apply(tgt, tc.state(tgt)); err != nil {
					t.Fatal(err)
				}
				if rec, err = Status(tgt); err != nil || !rec.Kernel.InEffect {
					t.Errorf("applied again: %+v, %v; want in effect", rec.Kernel, err)
				}
			})
		}
	})
}

// TestStatusSeesLossRulesGone: a loss whose rules were flushed lost nothing any more while
// status still listed it.
func TestStatusSeesLossRulesGone(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		s := newScene(t, 3, false)
		tgt := s.target()
		err := Apply(tgt, State{Impairments: []Impairment{{Guest: "b", Loss: 50}}})
		skipMissing(t, err)
		chain := PreroutingChain
		if b == BackendNetdev {
			chain = "in_g2"
		}
		run(t, "", "ip", "netns", "exec", s.bridgeNS, "nft", "flush", "chain", b.Family(), TableName, chain)
		rec, err := Status(tgt)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Kernel.InEffect || !strings.Contains(rec.Kernel.Detail, "chain "+chain+" holds 0 rules") {
			t.Errorf("after flushing %s: %+v; want not in effect", chain, rec.Kernel)
		}
	})
}

// replaceKeepingComment is the nft command that replaces the last of pontoon's rules of chain
// with rule, under the comment (the tag) the replaced rule carries.
func replaceKeepingComment(t *testing.T, ns, family, chain, rule string) string {
	t.Helper()
	out := run(t, "", "ip", "netns", "exec", ns, "nft", "-a", "list", "chain", family, TableName, chain)
	comment := ""
	for _, l := range strings.Split(out, "\n") {
		if i := strings.Index(l, `comment "pontoon `); i >= 0 {
			comment = l[i+len("comment "):]
			comment = comment[:strings.Index(comment[1:], `"`)+2]
		}
	}
	if comment == "" {
		t.Fatalf("no rule of pontoon's in chain %s:\n%s", chain, out)
	}
	return "replace rule " + family + " " + TableName + " " + chain + " handle " + lastHandle(t, ns, family, chain) + " " + rule + " comment " + comment
}

// lastHandle is the handle of the last rule of chain, as nft -a lists it.
func lastHandle(t *testing.T, ns, family, chain string) string {
	t.Helper()
	out := run(t, "", "ip", "netns", "exec", ns, "nft", "-a", "list", "chain", family, TableName, chain)
	handle := ""
	for _, l := range strings.Split(out, "\n") {
		if i := strings.LastIndex(l, "# handle "); i >= 0 && strings.Contains(l, "pontoon") {
			handle = strings.TrimSpace(l[i+len("# handle "):])
		}
	}
	if handle == "" {
		t.Fatalf("no rule of pontoon's in chain %s:\n%s", chain, out)
	}
	return handle
}

// TestStatusDuringChanges: status polled while changes commit never takes pontoon's own change
// for one made by hand (it read the record and the kernel at different moments).
func TestStatusDuringChanges(t *testing.T) {
	s := newScene(t, 3, false)
	tgt := s.target()
	states := []State{
		{Partition: mustIsolate(t, tgt.Guests, "a")},
		{Impairments: []Impairment{{Guest: "b", Loss: 20}}},
		{Partition: mustIsolate(t, tgt.Guests, "b"), Mode: ModeReject},
		{},
	}
	skipMissing(t, Apply(tgt, states[0]))
	done := make(chan error)
	go func() {
		var err error
		for i := 0; i < 200 && err == nil; i++ {
			if i%4 == 3 {
				err = Heal(tgt)
			} else {
				err = Apply(tgt, states[i%4])
			}
		}
		done <- err
	}()
	polls, bad := 0, []string{}
	for running := true; running; polls++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			running = false
		default:
		}
		rec, err := Status(tgt)
		if err != nil {
			t.Fatal(err)
		}
		if !rec.Kernel.InEffect {
			bad = append(bad, rec.Kernel.Detail)
		}
	}
	if len(bad) > 0 {
		t.Errorf("%d of %d polls during changes said the kernel does not hold what was applied, e.g. %q", len(bad), polls, bad[0])
	}
}

// TestStatusSeesPortsDown: a guest's port set down, taken off the bridge, isolated or stopped
// from forwarding outside pontoon cuts the guest off while status showed every guest
// reaching every other one.
func TestStatusSeesPortsDown(t *testing.T) {
	s := newScene(t, 3, false)
	tgt := s.target()
	if err := Apply(tgt, State{Partition: mustIsolate(t, tgt.Guests, "a")}); err != nil {
		t.Fatal(err)
	}
	// The scene's ports get their carrier asynchronously, as a port brought back up does.
	waitUntilInEffect(t, tgt)
	for _, c := range []struct {
		name        string
		tamper, fix []string
		want        string
	}{
		{"down", []string{"link", "set", "g2", "down"}, []string{"link", "set", "g2", "up"}, "port g2 of guest b is down"},
		{"off the bridge", []string{"link", "set", "g3", "nomaster"}, []string{"link", "set", "g3", "master", "br0"}, "port g3 of guest c is not on bridge br0"},
		{"isolated", []string{"link", "set", "g1", "type", "bridge_slave", "isolated", "on"}, []string{"link", "set", "g1", "type", "bridge_slave", "isolated", "off"}, "port g1 of guest a is isolated"},
		{"the guest's end down", nil, nil, "port g3 of guest c does not forward (bridge port state"},
		{"another tool's qdisc", []string{"qdisc", "add", "dev", "g2", "root", "handle", "1:", "tbf", "rate", "8kbit", "burst", "1600", "latency", "10ms"},
			[]string{"qdisc", "del", "dev", "g2", "root"}, "port g2 of guest b has a tbf qdisc pontoon did not add"},
		{"an ingress qdisc", []string{"qdisc", "add", "dev", "g1", "ingress"}, []string{"qdisc", "del", "dev", "g1", "ingress"}, "port g1 of guest a has a ingress qdisc"},
		{"a qdisc under pontoon's handle on a port it does not shape", []string{"qdisc", "add", "dev", "g3", "root", "handle", "7074:", "pfifo", "limit", "0"},
			[]string{"qdisc", "del", "dev", "g3", "root"}, "port g3 of guest c has a pfifo qdisc pontoon did not add"},
		{"not forwarding", []string{"link", "set", "g2", "type", "bridge_slave", "state", "1"}, []string{"link", "set", "g2", "type", "bridge_slave", "state", "3"}, "port g2 of guest b does not forward (bridge port state 1"},
	} {
		if st, err := Status(tgt); err != nil || !st.Kernel.InEffect {
			t.Fatalf("%s: status before: %+v, %v", c.name, st.Kernel, err)
		}
		tamper, fix := func() { run(t, "", append([]string{"ip", "-n", s.bridgeNS}, c.tamper...)...) }, func() { run(t, "", append([]string{"ip", "-n", s.bridgeNS}, c.fix...)...) }
		if c.tamper == nil { // inside the guest
			tamper = func() { run(t, "", "ip", "-n", s.nsOf["c"], "link", "set", "eth0", "down") }
			fix = func() { run(t, "", "ip", "-n", s.nsOf["c"], "link", "set", "eth0", "up") }
		}
		if c.tamper != nil && c.tamper[0] == "qdisc" {
			tamper = func() { run(t, "", append([]string{"tc", "-n", s.bridgeNS}, c.tamper...)...) }
			fix = func() { run(t, "", append([]string{"tc", "-n", s.bridgeNS}, c.fix...)...) }
		}
		tamper()
		if st, err := Status(tgt); err != nil || st.Kernel.InEffect || !strings.Contains(st.Kernel.Detail, c.want) {
			t.Errorf("%s: status %+v, %v; want not in effect, %q", c.name, st.Kernel, err, c.want)
		}
		fix()
		waitUntilInEffect(t, tgt)
	}
	if st, err := Status(tgt); err != nil || !st.Kernel.InEffect {
		t.Errorf("status after the ports were put back: %+v, %v", st.Kernel, err)
	}
}

// waitUntilInEffect waits for a port brought back up to forward again (its carrier comes back
// asynchronously).
func waitUntilInEffect(t *testing.T, tgt Target) {
	t.Helper()
	for i := 0; ; i++ {
		st, err := Status(tgt)
		if err == nil && st.Kernel.InEffect {
			return
		}
		if i == 200 {
			t.Fatalf("status after the port was put back: %+v, %v", st.Kernel, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEditAfterUncertainStep1: a step 1 the kernel refused, whose buffer still held what it
// would have written (so the change went on), left a generation one too high written, and a
// single edit by hand after it matched it: the next change skipped the edited chain.
func TestEditAfterUncertainStep1(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		s := newScene(t, 3, false)
		tgt := s.target()
		first := State{Partition: mustIsolate(t, tgt.Guests, "a"), Impairments: []Impairment{{Guest: "b", Loss: 50}}}
		err := Apply(tgt, first)
		skipMissing(t, err)
		if err := Apply(tgt, State{Impairments: []Impairment{{Guest: "b", Loss: 50}}}); err != nil {
			t.Fatal(err)
		}
		nftwire.SpoilBatch.Store(1)
		t.Cleanup(func() { nftwire.SpoilBatch.Store(0) })
		err = Apply(tgt, first)
		nftwire.SpoilBatch.Store(0)
		if err != nil {
			t.Logf("the change with step 1 refused: %v", err)
		}
		chain := PreroutingChain
		if b == BackendNetdev {
			chain = "in_g2"
		}
		run(t, "", "ip", "netns", "exec", s.bridgeNS, "nft", "flush", "chain", b.Family(), TableName, chain)
		if err := Apply(tgt, first); err != nil {
			t.Fatal(err)
		}
		if st, err := Status(tgt); err != nil || !st.Kernel.InEffect {
			t.Errorf("after an edit by hand and a change: %+v, %v; want in effect", st.Kernel, err)
		}
	})
}

// TestStatusSeesForeignTables: a table of another tool in the bridge's namespace may drop
// what the partition lets through; status says so.
func TestStatusSeesForeignTables(t *testing.T) {
	s := newScene(t, 3, false)
	tgt := s.target()
	if err := Apply(tgt, State{Partition: mustIsolate(t, tgt.Guests, "a")}); err != nil {
		t.Fatal(err)
	}
	// A table under one of pontoon's names but in another family is not pontoon's either.
	for _, table := range []string{"bridge other", "netdev pontoon", "bridge pontoon_service", "inet pontoon"} {
		run(t, "", append([]string{"ip", "netns", "exec", s.bridgeNS, "nft", "add", "table"}, strings.Fields(table)...)...)
		if st, err := Status(tgt); err != nil || st.Kernel.InEffect || !strings.Contains(st.Kernel.Detail, "tables that are not pontoon's ("+table+")") {
			t.Errorf("status with a table %s: %+v, %v", table, st.Kernel, err)
		}
		run(t, "", append([]string{"ip", "netns", "exec", s.bridgeNS, "nft", "delete", "table"}, strings.Fields(table)...)...)
		if st, err := Status(tgt); err != nil || !st.Kernel.InEffect {
			t.Errorf("status once %s is gone: %+v, %v", table, st.Kernel, err)
		}
	}
}
