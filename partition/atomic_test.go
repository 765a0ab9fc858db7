package partition

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/nftpool"
)

// TestAtomicReplace: a change takes effect at once. While a guest floods a
// blocked peer, the partition is re-applied a hundred times (each time the
// class sets of the other buffer are filled and the rules switched to them);
// if there were a moment without rules, or with new rules and old or empty
// sets, some datagrams would get through.
func TestAtomicReplace(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		floodWhileApplying(t, []Backend{b})
	})
	// A change of backend deletes one family's table and creates the other's
	// in the same transaction.
	t.Run("switching backends", func(t *testing.T) {
		sup := probedSupport(t)
		if !sup.tables[BackendNetdev] || !sup.tables[BackendBridge] {
			t.Skip("needs netdev and bridge family tables")
		}
		t.Cleanup(func() { forcedBackend = "" })
		floodWhileApplying(t, backends)
	})
}

// floodWhileApplying re-applies partitions a hundred times, cycling through
// the given backends, while guest a floods b, which every partition blocks.
// States that reject are left out on backends that cannot reject here.
//
// Empty chains of another table hold every hook the partition table uses,
// so replacing that table never flips one of the kernel's static keys that
// guard the receive path between 0 and 1. Such a flip patches code that the
// flooding CPU is executing, and Debian 12's kernel under qemu TCG (the VM
// lane) was seen to hang in it within a few dozen flips during a flood, with
// plain "tc qdisc add/del dev g3 ingress" just as well as with nftables. The
// test is about transactions, not about code patching.
func floodWhileApplying(t *testing.T, cycle []Backend) {
	s := newScene(t, 3, false)
	s.startServers(t)
	tgt := s.target()
	run(t, "table netdev anchor {\n chain in { type filter hook ingress device \"br0\" priority 0; }\n"+
		" chain out { type filter hook egress device \"br0\" priority 0; }\n}\n"+
		"table bridge anchor {\n chain pre { type filter hook prerouting priority 0; }\n"+
		" chain post { type filter hook postrouting priority 0; }\n}\n",
		"ip", "netns", "exec", s.bridgeNS, "nft", "-f", "-")
	sup := probedSupport(t)
	states := []State{
		{Partition: mustIsolate(t, tgt.Guests, "a")},
		{Partition: mustIsolate(t, tgt.Guests, "a"), Mode: ModeReject},
		{Partition: mustBlock(t, tgt.Guests, "a", "b"), Impairments: []Impairment{{Guest: "c", Loss: 1}}},
	}
	canReject := true
	for _, b := range cycle {
		canReject = canReject && sup.reject[b] == nil
	}
	if !canReject {
		states = slices.Delete(states, 1, 2)
	}
	forcedBackend = cycle[0]
	if err := Apply(tgt, states[0]); err != nil {
		t.Fatal(err)
	}
	flood := exec.Command("ip", "netns", "exec", s.nsOf["a"], "bash", "-c",
		`i=0; while [ -e /proc/$PPID ]; do i=$((i+1)); printf "flood $i" > /dev/udp/172.18.0.2/9 2>/dev/null; done`)
	if err := flood.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = flood.Process.Kill(); _ = flood.Wait() })
	for i := range 100 {
		forcedBackend = cycle[i%len(cycle)]
		if err := Apply(tgt, states[i%len(states)]); err != nil {
			t.Fatal(err)
		}
		if len(cycle) > 1 {
			if got := partitionTables(t, s.bridgeNS); !slices.Equal(got, []string{forcedBackend.Family()}) {
				t.Fatalf("apply %d on backend %s: partition tables in families %v", i, forcedBackend, got)
			}
		}
	}
	flooded := func() []string {
		s.mu.Lock()
		defer s.mu.Unlock()
		var out []string
		for tok := range s.sink {
			if strings.HasPrefix(tok, "flood") {
				out = append(out, tok)
			}
		}
		return out
	}
	if got := flooded(); len(got) > 0 {
		t.Fatalf("%d datagrams crossed the partition during replaces, e.g. %q", len(got), got[0])
	}
	// The flood was running all along: once healed, it gets through.
	if err := Heal(tgt); err != nil {
		t.Fatal(err)
	}
	for range 500 {
		if len(flooded()) > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no flood datagram arrived after heal; the flood did not run")
}

// TestBackendSwitch: whichever backend applies, the other family's
// partition table is removed by the same Apply, also one left behind by
// someone else; Heal removes both; Status notices two tables.
func TestBackendSwitch(t *testing.T) {
	sup := probedSupport(t)
	if !sup.tables[BackendNetdev] || !sup.tables[BackendBridge] {
		t.Skip("needs netdev and bridge family tables")
	}
	s := newScene(t, 3, false)
	s.startServers(t)
	tgt := s.target()
	t.Cleanup(func() { forcedBackend = "" })
	isoA := State{Partition: mustIsolate(t, tgt.Guests, "a")}
	stale := func(b Backend) {
		run(t, fmt.Sprintf("table %s %s {\n set %s { type ipv4_addr . ipv4_addr; }\n}\n", b.Family(), TableName, BlockedSet),
			"ip", "netns", "exec", s.bridgeNS, "nft", "-f", "-")
	}
	for i, b := range []Backend{BackendNetdev, BackendBridge, BackendNetdev} {
		forcedBackend = b
		if err := Apply(tgt, isoA); err != nil {
			t.Fatal(err)
		}
		if got := partitionTables(t, s.bridgeNS); !slices.Equal(got, []string{b.Family()}) {
			t.Errorf("after apply on %s: partition tables in families %v", b, got)
		}
		checkMatrix(t, s, fmt.Sprintf("switch%d", i), isoA.Partition, ModeDrop)
	}
	t.Run("status sees two tables", func(t *testing.T) {
		stale(BackendBridge)
		st, err := Status(tgt)
		if err != nil {
			t.Fatal(err)
		}
		if st.Kernel == nil || st.Kernel.InEffect || !strings.Contains(st.Kernel.Detail, "both the netdev and the bridge family") {
			t.Errorf("kernel check = %+v, want not in effect, two tables", st.Kernel)
		}
	})
	t.Run("apply removes a stale table", func(t *testing.T) {
		forcedBackend = BackendNetdev
		if err := Apply(tgt, isoA); err != nil {
			t.Fatal(err)
		}
		if got := partitionTables(t, s.bridgeNS); !slices.Equal(got, []string{"netdev"}) {
			t.Errorf("partition tables in families %v, want [netdev]", got)
		}
	})
	t.Run("heal removes both", func(t *testing.T) {
		stale(BackendBridge)
		forcedBackend = ""
		if err := Heal(tgt); err != nil {
			t.Fatal(err)
		}
		if got := partitionTables(t, s.bridgeNS); len(got) > 0 {
			t.Errorf("partition tables left after heal in families %v", got)
		}
		checkMatrix(t, s, "switch-healed", Fullmesh(), ModeDrop)
	})
	t.Run("fullmesh removes a stale table", func(t *testing.T) {
		stale(BackendNetdev)
		stale(BackendBridge)
		if err := Apply(tgt, State{Partition: Fullmesh()}); err != nil {
			t.Fatal(err)
		}
		if got := partitionTables(t, s.bridgeNS); len(got) > 0 {
			t.Errorf("partition tables left after applying fullmesh in families %v", got)
		}
	})
}

// TestProbe: the kernel support partition finds agrees with what nft makes
// of the same rules, the probe leaves nothing behind, and the backend Apply
// chooses follows from it.
func TestProbe(t *testing.T) {
	needRoot(t)
	name := randomPrefix() + "-probe"
	run(t, "", "ip", "netns", "add", name)
	nsPath := "/run/netns/" + name
	t.Cleanup(func() {
		Release()
		_ = exec.Command("ip", "netns", "del", name).Run()
	})
	got := support{tables: map[Backend]bool{}, reject: map[Backend]error{}}
	err := nftpool.With(nsPath, func(c *nftables.Conn) error {
		for _, b := range backends {
			tables, reject, err := probeFamily(c, b)
			if err != nil {
				return err
			}
			got.tables[b], got.reject[b] = tables, reject
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if out := nftList(t, name); strings.TrimSpace(out) != "" {
		t.Errorf("probe left rules behind:\n%s", out)
	}
	for _, b := range backends {
		script := fmt.Sprintf("table %s pt_probe_check {\n chain c {\n meta l4proto tcp reject with tcp reset\n }\n}\ndelete table %s pt_probe_check\n", b.Family(), b.Family())
		cmd := exec.Command("ip", "netns", "exec", name, "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(script)
		out, nftErr := cmd.CombinedOutput()
		t.Logf("%s: tables %v, reject error %v; nft: %v %s", b, got.tables[b], got.reject[b], nftErr, strings.TrimSpace(string(out)))
		if (nftErr == nil) != (got.reject[b] == nil) {
			t.Errorf("%s family: probe says reject error %v, nft says %v: %s", b, got.reject[b], nftErr, out)
		}
		if !got.tables[b] && got.reject[b] == nil {
			t.Errorf("%s family: reject without tables", b)
		}
	}
	want := BackendNetdev
	if got.reject[BackendNetdev] != nil && got.tables[BackendBridge] && got.reject[BackendBridge] == nil {
		want = BackendBridge
	}
	if b := got.backend(); b != want {
		t.Errorf("backend = %s, want %s", b, want)
	}
	if b, err := DetectBackend(nsPath); err != nil || b != want {
		t.Errorf("DetectBackend = %s, %v; want %s", b, err, want)
	}
	if os.Getenv("PONTOON_VM") == "1" && want != BackendBridge {
		// The VM lane boots Debian 12's stock kernel, which has bridge
		// reject and no netdev reject.
		t.Errorf("on the VM lane's kernel the backend is %s, want bridge", want)
	}
}
