package partition

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/internal/nftpool"
	"github.com/pontoon-dev/pontoon/internal/nftwire"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
)

// fillOnly does what a change killed between its two commits did: step 1 (the class maps
// filled, the table made if there was none), not step 2 (the rules), nor the record.
func fillOnly(t *testing.T, tgt Target, s State) {
	t.Helper()
	sup, err := probeSupport(tgt.NetnsPath)
	if err != nil {
		t.Fatal(err)
	}
	r, err := resolveState(s, tgt.Guests)
	if err != nil {
		t.Fatal(err)
	}
	rs := r.plan(sup.backend()).RuleSet
	rs.seal(1)
	err = nftpool.WithConn(tgt.NetnsPath, func(w *nftwire.Conn) error {
		now, err := readTableNow(w, rs.Backend)
		if err != nil {
			return err
		}
		spare := 0
		if now.inUse == 0 {
			spare = 1
		}
		if err := queueBuffer(w.Conn, nftTable(rs.Backend), rs, spare, !now.exists); err != nil {
			return err
		}
		return flush(w.Conn)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestGCRestoresHalfCommittedTable: `partition isolate` killed between its commits left a
// table of class maps without rules. The kernel let everything through, but status --check
// failed on it for good and gc found nothing to collect. gc now makes the table what the
// record says: none where nothing is recorded, the recorded partition where one is.
func TestGCRestoresHalfCommittedTable(t *testing.T) {
	s := sandbox.ForTest(t, "")
	env := s.Env
	if _, err := netsetup.GatewayUp(env, netsetup.GatewayOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := netsetup.CreateBridge(env, "b1", netsetup.BridgeOptions{}); err != nil {
		t.Fatal(err)
	}
	netns := map[string]string{}
	for i, name := range []string{"n1", "n2"} {
		g, err := netsetup.AddGuest(env, "b1", name, netsetup.GuestOptions{IP: "172.18.0." + string(rune('1'+i))})
		if err != nil {
			t.Fatal(err)
		}
		netns[name] = g.Netns
	}
	tgt, err := ForBridge(env, "b1")
	if err != nil {
		t.Fatal(err)
	}
	reaches := func() bool { // n2 pings n1
		return exec.Command("nsenter", "--net="+netns["n2"], "ping", "-c1", "-W1", "172.18.0.1").Run() == nil
	}
	inForce := func(when string) {
		t.Helper()
		if rec, err := Status(tgt); err != nil || rec.Kernel == nil || !rec.Kernel.InEffect {
			t.Errorf("%s: status %+v, %v; want in force", when, rec.Kernel, err)
		}
	}
	gc := func(when string) {
		t.Helper()
		rep, err := netsetup.GC(env)
		if err != nil {
			t.Fatalf("%s: gc: %v", when, err)
		}
		if !slices.ContainsFunc(rep.Repaired, func(r string) bool { return strings.HasPrefix(r, "bridge b1: partition table") }) {
			t.Errorf("%s: gc repaired %q; want b1's partition table", when, rep.Repaired)
		}
	}
	isolate := State{Partition: mustIsolate(t, tgt.Guests, "n1")}

	// Nothing recorded: the table goes.
	fillOnly(t, tgt, isolate)
	if rec, err := Status(tgt); err != nil || rec.Kernel.InEffect {
		t.Fatalf("a half-committed table, nothing recorded: status %+v, %v; want not in force", rec.Kernel, err)
	}
	gc("nothing recorded")
	inForce("after gc, nothing recorded")
	if kt, err := readKernel(tgt.NetnsPath); err != nil || len(kt.Present) != 0 {
		t.Errorf("after gc, nothing recorded: the kernel holds table %v (%v); want none", kt.Present, err)
	}
	if !reaches() {
		t.Error("after gc, nothing recorded: n2 cannot reach n1")
	}

	// Isolate recorded; a heal killed after its commit removed the table, and an isolate
	// killed after its first commit made a table without rules: the partition comes back.
	if err := Apply(tgt, isolate); err != nil {
		t.Fatal(err)
	}
	if reaches() {
		t.Fatal("n2 reaches the isolated n1")
	}
	if err := commitRuleSet(tgt.NetnsPath, RuleSet{}, []Backend{BackendNetdev, BackendBridge}, committed{}); err != nil {
		t.Fatal(err)
	}
	fillOnly(t, tgt, isolate)
	if !reaches() {
		t.Fatal("the half-committed table still keeps n2 from n1")
	}
	gc("isolate n1 recorded")
	inForce("after gc, isolate n1 recorded")
	if reaches() {
		t.Error("after gc, isolate n1 recorded: n2 reaches n1")
	}

	// Nothing to repair: gc leaves the table alone.
	before, _, _ := readStatus(tgt.StateDir)
	rep, err := netsetup.GC(env)
	if after, _, _ := readStatus(tgt.StateDir); err != nil || len(rep.Repaired) > 0 || after.Generation != before.Generation {
		t.Errorf("gc with the table as recorded: %+v, %v, generation %d -> %d; want nothing done", rep, err, before.Generation, after.Generation)
	}
}
