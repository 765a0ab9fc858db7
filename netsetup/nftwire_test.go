package netsetup

import (
	"errors"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/kernel"
	"github.com/pontoon-dev/pontoon/internal/nftwire"
	"github.com/pontoon-dev/pontoon/internal/testkit"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"golang.org/x/sys/unix"
)

// ipv6BridgeTables are the tables bridge create installs in one transaction, with IPv6 on:
// three tables and their ~1500 set elements.
func ipv6BridgeTables() []tableSpec {
	plan := DefaultPlan()
	plan.Subnet6 = DefaultPlan6()
	return bridgeTables(plan, &BridgeState{Name: "bench", Slot: 1}, bridgeL2Table(plan))
}

// BenchmarkBridgeTablesBuild measures what bridge create does in Go before the transaction:
// the tables' specs, 1,500 set elements among them, and the batch the library marshals.
func BenchmarkBridgeTablesBuild(b *testing.B) {
	for b.Loop() {
		c, err := nftables.New(nftables.AsLasting())
		if err != nil {
			b.Fatal(err)
		}
		for _, t := range ipv6BridgeTables() {
			if err := addTable(c, t); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkBridgeTables measures the nftables transaction of bridge create: into a fresh
// namespace ("install") and over the same tables ("replace").
func BenchmarkBridgeTables(b *testing.B) {
	testkit.NeedRoot(b, "creates network namespaces")
	ts := ipv6BridgeTables()
	dir := b.TempDir()
	b.Run("install", func(b *testing.B) {
		p := filepath.Join(dir, "install")
		for b.Loop() {
			b.StopTimer()
			if err := ns.New(ns.Spec{Net: p}); err != nil {
				b.Fatal(err)
			}
			n, err := kernel.OpenNS(p)
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			err = replaceTables(n, ts...)
			b.StopTimer()
			n.Close()
			ns.Remove(p)
			b.StartTimer()
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("replace", func(b *testing.B) {
		p := filepath.Join(dir, "replace")
		if err := ns.New(ns.Spec{Net: p}); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { ns.Remove(p) })
		n, err := kernel.OpenNS(p)
		if err != nil {
			b.Fatal(err)
		}
		defer n.Close()
		for b.Loop() {
			if err := replaceTables(n, ts...); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestTableReplaceRefused: a table replace whose batch the kernel refuses in its middle
// changes nothing and names the kernel's reason; the same replace goes through afterwards.
func TestTableReplaceRefused(t *testing.T) {
	testkit.NeedRoot(t, "creates network namespaces")
	p := scratchNetns(t, t.TempDir(), "refused")
	n, err := kernel.OpenNS(p)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := replaceTables(n, ipv6BridgeTables()...); err != nil {
		t.Fatal(err)
	}
	before := inNetns(t, p, "nft", "list", "ruleset")
	moved, _ := ParsePlan("10.77.0.0/16")
	next := bridgeL2Table(moved)

	nftwire.SpoilBatch.Store(1)
	t.Cleanup(func() { nftwire.SpoilBatch.Store(0) })
	err = replaceTable(n, next)
	if !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "install nftables table "+TableName) {
		t.Fatalf("replace with a refused batch: %v, want the kernel's EINVAL named as the table's install", err)
	}
	if left := nftwire.SpoilBatch.Load(); left != 0 {
		t.Fatalf("the replace sent no batch to refuse (%d left)", left)
	}
	if after := inNetns(t, p, "nft", "list", "ruleset"); after != before {
		t.Errorf("a refused replace changed the rule set:\nbefore\n%s\nafter\n%s", before, after)
	}
	if err := replaceTable(n, next); err != nil {
		t.Fatalf("replace after a refused one: %v", err)
	}
	if after := inNetns(t, p, "nft", "list", "ruleset"); !strings.Contains(after, "10.77.0.253") {
		t.Errorf("the replace after a refused one is not in force:\n%s", after)
	}
}

func inNetns(t *testing.T, nsPath string, argv ...string) string {
	t.Helper()
	out, err := exec.Command("nsenter", append([]string{"--net=" + nsPath}, argv...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

// BenchmarkBindIP6 measures the nftables transaction guest add makes for a guest with an IPv6
// address of its own ("bind"), and the one guest del makes ("unbind").
func BenchmarkBindIP6(b *testing.B) {
	testkit.NeedRoot(b, "creates network namespaces")
	p := filepath.Join(b.TempDir(), "bind")
	if err := ns.New(ns.Spec{Net: p}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ns.Remove(p) })
	h, err := openHandle(p)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	if err := replaceTables(h.NS, ipv6BridgeTables()...); err != nil {
		b.Fatal(err)
	}
	plan := DefaultPlan()
	plan.Subnet6 = DefaultPlan6()
	g := Guest{Name: "g", IP: netip.MustParseAddr("172.18.0.7"), IP6: netip.MustParseAddr("fd70:6f6e::77")}
	for _, unbind := range []bool{false, true} {
		name := map[bool]string{false: "bind", true: "unbind"}[unbind]
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				if err := bindIP6(h, plan, g, !unbind); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if err := bindIP6(h, plan, g, unbind); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestCommentsWrittenOut: the comments kept as literals (so that no start-up code builds
// them) are what commentUserData makes of their text.
func TestCommentsWrittenOut(t *testing.T) {
	for text, lit := range map[string][]byte{"pontoon": pontoonComment, "pontoon-users": userLinkComment} {
		if want := commentUserData(text); string(lit) != string(want) {
			t.Errorf("comment %q is %q, want %q", text, lit, want)
		}
	}
}
