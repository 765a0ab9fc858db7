package partition

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/nftpool"
	"github.com/pontoon-dev/pontoon/internal/nftwire"
)

// TestStatusSeesWhatTheLibraryCannotRead: google/nftables drops, without a word, the
// expressions it cannot decode, and a rule written back from what it read loses them. A loss
// rule written back so keeps its tag, matches and verdict but not its byteorder: its numgen
// value is compared in the wrong byte order, and a loss of 50% loses almost nothing. Status
// compares the kernel's own encoding of every expression.
func TestStatusSeesWhatTheLibraryCannotRead(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		s := newScene(t, 3, false)
		tgt := s.target()
		state := State{Impairments: []Impairment{{Guest: "b", Loss: 50}}}
		skipMissing(t, Apply(tgt, state))
		chain := PreroutingChain
		if b == BackendNetdev {
			chain = "in_g2"
		}
		ns := filepath.Join("/run/netns", s.bridgeNS)
		err := nftpool.With(ns, func(c *nftables.Conn) error {
			tbl := nftTable(b)
			rules, err := c.GetRules(tbl, &nftables.Chain{Name: chain, Table: tbl})
			if err != nil {
				return err
			}
			for _, r := range rules {
				r.Table, r.Chain = tbl, &nftables.Chain{Name: chain, Table: tbl}
				c.ReplaceRule(r) // as the library read it: without its byteorder
			}
			return nftwire.Flush(c)
		})
		if err != nil {
			t.Fatal(err)
		}
		rec, err := Status(tgt)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Kernel.InEffect || !strings.Contains(rec.Kernel.Detail, "of chain "+chain+" was rewritten") {
			t.Errorf("after the loss rules of %s were written back without their byteorder: %+v; want not in effect", chain, rec.Kernel)
		}
		appliedAgain(t, tgt, state)
	})
}

// TestStatusSeesChainMoved: a base chain deleted and added again by hand with the same name
// and rules, tags included, at another device or hook, no longer sees the frames it filtered.
func TestStatusSeesChainMoved(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		s := newScene(t, 3, false)
		tgt := s.target()
		state := State{Partition: mustIsolate(t, tgt.Guests, "a")}
		skipMissing(t, Apply(tgt, state))
		chain, from, to := PreroutingChain, "hook prerouting priority dstnat", "hook input priority -300"
		if b == BackendNetdev {
			chain, from, to = "in_g1", `device "g1"`, `device "lo"`
		}
		listed := run(t, "", "ip", "netns", "exec", s.bridgeNS, "nft", "list", "chain", b.Family(), TableName, chain)
		if !strings.Contains(listed, from) || !strings.Contains(listed, `comment "pontoon `) {
			t.Fatalf("chain %s as nft lists it has no %s or no tag:\n%s", chain, from, listed)
		}
		script := fmt.Sprintf("delete chain %s %s %s\n%s", b.Family(), TableName, chain, strings.Replace(listed, from, to, 1))
		run(t, script, "ip", "netns", "exec", s.bridgeNS, "nft", "-f", "-")
		rec, err := Status(tgt)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Kernel.InEffect || !strings.Contains(rec.Kernel.Detail, "chain "+chain+" was re-created elsewhere") {
			t.Errorf("after chain %s was moved from %s to %s: %+v; want not in effect", chain, from, to, rec.Kernel)
		}
		appliedAgain(t, tgt, state)
	})
}

// TestStatusSeesDormantTable: a table made dormant (`nft add table ... { flags dormant; }`)
// runs none of its rules, so every partition is off; status said it was in force, and later
// changes left the table asleep, since pontoon added its table only when there was none.
func TestStatusSeesDormantTable(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		s := newScene(t, 3, false)
		s.startServers(t)
		tgt := s.target()
		state := State{Partition: mustIsolate(t, tgt.Guests, "a")}
		skipMissing(t, Apply(tgt, state))
		udp := func(tag string) string {
			return s.probePairs(t, [][2]string{{"b", "a"}}, tag, failTimeout)[[3]string{"b", "a", "udp"}]
		}
		if got := udp("isolated"); got == "ok" {
			t.Fatalf("b reached a isolated: %s", got)
		}
		run(t, "", "ip", "netns", "exec", s.bridgeNS, "nft", "add", "table", b.Family(), TableName, "{ flags dormant; }")
		if got := udp("dormant"); got != "ok" {
			t.Fatalf("b did not reach a with the table dormant (%s): the test does not test what it means to", got)
		}
		rec, err := Status(tgt)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Kernel.InEffect || !strings.Contains(rec.Kernel.Detail, "is dormant") {
			t.Errorf("with the table dormant: %+v; want not in effect", rec.Kernel)
		}
		appliedAgain(t, tgt, state)
		if got := udp("woken"); got == "ok" {
			t.Errorf("b reached a once the isolation was applied again: %s", got)
		}
	})
}

// TestStatusSeesRulesChangedAfterGuestLeft: a guest that leaves keeps its pairs in force
// until the next change, and the state compiled over the guests left was no longer what was
// committed: every chain it touched went unchecked. Status compiles over the guests of the
// commit.
func TestStatusSeesRulesChangedAfterGuestLeft(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		s := newScene(t, 3, false)
		tgt := s.target()
		skipMissing(t, Apply(tgt, State{Partition: mustIsolate(t, tgt.Guests, "c")}))
		tgt.Guests = tgt.Guests[:2] // c left
		if rec, err := Status(tgt); err != nil || !rec.Kernel.InEffect {
			t.Fatalf("after c left: %+v, %v; want in effect", rec.Kernel, err)
		}
		cmd := replaceKeepingComment(t, s.bridgeNS, b.Family(), FilterChain, "accept")
		run(t, "", append([]string{"ip", "netns", "exec", s.bridgeNS, "nft"}, strings.Fields(cmd)...)...)
		rec, err := Status(tgt)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Kernel.InEffect || !strings.Contains(rec.Kernel.Detail, "of chain "+FilterChain+" was rewritten") {
			t.Errorf("after c left and a rule was replaced under its comment: %+v; want not in effect", rec.Kernel)
		}
	})
}

// TestStatusSeesChainWithAnotherDevice: a netdev chain given a second device by hand
// (`add chain ... { ... devices = { "g2", "g1" } ... }`, which kernels since 6.2 or so take as
// an update) runs the guest's loss on the other port too.
func TestStatusSeesChainWithAnotherDevice(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		if b != BackendNetdev {
			t.Skip("devices are the netdev family's")
		}
		s := newScene(t, 3, false)
		tgt := s.target()
		state := State{Impairments: []Impairment{{Guest: "b", Loss: 50}}}
		skipMissing(t, Apply(tgt, state))
		out, err := exec.Command("ip", "netns", "exec", s.bridgeNS, "nft", "add", "chain", "netdev", TableName, "in_g2",
			`{ type filter hook ingress devices = { "g2", "g1" } priority -300; }`).CombinedOutput()
		if err != nil {
			t.Skipf("this kernel or nft does not add a device to a chain: %v: %s", err, out)
		}
		rec, err := Status(tgt)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Kernel.InEffect || !strings.Contains(rec.Kernel.Detail, `device "g2,g1"`) && !strings.Contains(rec.Kernel.Detail, `device "g1,g2"`) {
			t.Errorf("with in_g2 on g1 too: %+v; want not in effect, naming both devices", rec.Kernel)
		}
		appliedAgain(t, tgt, state)
	})
}

// TestStatusWithGuestRate: a rate on a guest is shaped in its own namespace, so its state
// compiles only with the guest's namespace path; the record's guests lacked it, and status
// said the kernel did not hold what was applied while a rate and a partition table stood.
func TestStatusWithGuestRate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		s := newScene(t, 3, true)
		tgt := s.target()
		rate, err := ParseRate("5mbit")
		if err != nil {
			t.Fatal(err)
		}
		skipMissing(t, Apply(tgt, State{Partition: mustIsolate(t, tgt.Guests, "a"), Impairments: []Impairment{{Guest: "b", Rate: rate}}}))
		if rec, err := Status(tgt); err != nil || !rec.Kernel.InEffect {
			t.Fatalf("isolate a, rate on b: %+v, %v; want in effect", rec.Kernel, err)
		}
		cmd := replaceKeepingComment(t, s.bridgeNS, b.Family(), FilterChain, "accept")
		run(t, "", append([]string{"ip", "netns", "exec", s.bridgeNS, "nft"}, strings.Fields(cmd)...)...)
		if rec, err := Status(tgt); err != nil || rec.Kernel.InEffect || !strings.Contains(rec.Kernel.Detail, "was rewritten") {
			t.Errorf("with a rate on b and a rule replaced under its comment: %+v, %v; want not in effect", rec.Kernel, err)
		}
	})
}

// TestChangeAfterRegularChainHooked: a chain the next change needs as a regular one (a
// reject mode's counting chain) made a base chain by hand: the change failed with the
// kernel's bare "operation not supported" (it does not make a base chain regular) until a
// heal. It is deleted and added anew.
func TestChangeAfterRegularChainHooked(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		s := newScene(t, 3, false)
		tgt := s.target()
		skipMissing(t, Apply(tgt, State{Partition: mustIsolate(t, tgt.Guests, "a")}))
		hook := `{ type filter hook input priority 10; }`
		if b == BackendNetdev {
			hook = `{ type filter hook ingress device "g3" priority 10; }`
		}
		chain := countingChainFor(t, ActionRejectAdmin)
		run(t, "", "ip", "netns", "exec", s.bridgeNS, "nft", "add", "chain", b.Family(), TableName, chain, hook)
		state := State{Partition: mustIsolate(t, tgt.Guests, "a"), Mode: ModeReject}
		skipMissing(t, Apply(tgt, state))
		if rec, err := Status(tgt); err != nil || !rec.Kernel.InEffect {
			t.Errorf("after the change: %+v, %v; want in effect", rec.Kernel, err)
		}
		if out := run(t, "", "ip", "netns", "exec", s.bridgeNS, "nft", "list", "chain", b.Family(), TableName, chain); strings.Contains(out, "hook") {
			t.Errorf("chain %s is still a base chain:\n%s", chain, out)
		}
	})
}

// countingChainFor is the name of the counting chain of action.
func countingChainFor(t *testing.T, action Action) string {
	for _, cc := range countingChains {
		if cc.action == action {
			return cc.name
		}
	}
	t.Fatalf("no counting chain for %s", action)
	return ""
}

// TestChangeAfterBaseChainMadeRegular: a base chain deleted and added again as a regular
// chain, which another chain jumps to: the change deleted it before flushing the chain that
// jumps, and the kernel refused the whole change (EBUSY) until a heal.
func TestChangeAfterBaseChainMadeRegular(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		s := newScene(t, 3, false)
		tgt := s.target()
		state := State{Partition: mustIsolate(t, tgt.Guests, "a"), Impairments: []Impairment{{Guest: "b", Loss: 50}}}
		skipMissing(t, Apply(tgt, state))
		base, jumper := PreroutingChain, PostroutingChain
		if b == BackendNetdev {
			base, jumper = "in_g1", "out_g3"
		}
		f := b.Family() + " " + TableName
		run(t, fmt.Sprintf("delete chain %s %s\nadd chain %s %s\nadd rule %s %s jump %s\n", f, base, f, base, f, jumper, base),
			"ip", "netns", "exec", s.bridgeNS, "nft", "-f", "-")
		if rec, err := Status(tgt); err != nil || rec.Kernel.InEffect {
			t.Errorf("with %s made regular: %+v, %v; want not in effect", base, rec.Kernel, err)
		}
		appliedAgain(t, tgt, state)
	})
}

// appliedAgain applies state again, which must put right what was edited by hand.
func appliedAgain(t *testing.T, tgt Target, state State) {
	t.Helper()
	if err := Apply(tgt, state); err != nil {
		t.Fatal(err)
	}
	if rec, err := Status(tgt); err != nil || !rec.Kernel.InEffect {
		t.Errorf("applied again: %+v, %v; want in effect", rec.Kernel, err)
	}
}
