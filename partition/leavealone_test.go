package partition

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// TestOthersUntouched: a guest's own rules and other tables in the bridge
// namespace survive apply and heal.
func TestOthersUntouched(t *testing.T) {
	s := newScene(t, 3, false)
	tgt := s.target()
	guestRules := "table inet guestfw {\n chain out {\n type filter hook output priority 0;\n ip daddr 10.9.9.9 drop\n }\n}\n"
	bridgeRules := "table inet pontoon {\n chain post {\n type nat hook postrouting priority 100;\n oifname \"up0\" masquerade\n }\n}\n" +
		"table netdev other {\n chain in_g1 {\n type filter hook ingress device \"g1\" priority 10;\n counter\n }\n}\n" +
		"table bridge other {\n chain pre {\n type filter hook prerouting priority 10;\n counter\n }\n}\n"
	run(t, guestRules, "ip", "netns", "exec", s.nsOf["a"], "nft", "-f", "-")
	run(t, bridgeRules, "ip", "netns", "exec", s.bridgeNS, "nft", "-f", "-")
	guestBefore := nftList(t, s.nsOf["a"])
	bridgeBefore := nftList(t, s.bridgeNS)

	p := mustIsolate(t, tgt.Guests, "a")
	skipMissing(t, Apply(tgt, State{Partition: p, Mode: ModeReject, Impairments: []Impairment{{Guest: "b", Loss: 10}}}))
	if got := nftList(t, s.nsOf["a"]); got != guestBefore {
		t.Errorf("guest ruleset changed by apply:\n%s\nwas\n%s", got, guestBefore)
	}
	bridgeNow := nftList(t, s.bridgeNS)
	if fam := defaultBackend(t).Family(); !strings.Contains(bridgeNow, "table "+fam+" "+TableName) {
		t.Errorf("partition table %s %s missing after apply:\n%s", fam, TableName, bridgeNow)
	}
	for _, tbl := range []string{"table inet pontoon {", "table netdev other {", "table bridge other {", "oifname \"up0\" masquerade"} {
		if !strings.Contains(bridgeNow, tbl) {
			t.Errorf("%q missing from bridge ruleset after apply:\n%s", tbl, bridgeNow)
		}
	}
	if err := Heal(tgt); err != nil {
		t.Fatal(err)
	}
	if got := nftList(t, s.nsOf["a"]); got != guestBefore {
		t.Errorf("guest ruleset changed by heal:\n%s", got)
	}
	// Counters may have moved; compare without them.
	if got := stripCounters(nftList(t, s.bridgeNS)); got != stripCounters(bridgeBefore) {
		t.Errorf("bridge ruleset after heal:\n%s\nwant\n%s", got, bridgeBefore)
	}
}

func stripCounters(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if i := strings.Index(l, "counter packets"); i >= 0 {
			l = l[:i] + "counter"
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// nftRules is the ruleset of ns without what traffic changes: counter values, and the
// elements of the counting sets (count_*), which packets add.
func nftRules(tb testing.TB, ns string) string {
	tb.Helper()
	var out []string
	inCount, skipping := false, false
	for _, l := range strings.Split(nftList(tb, ns), "\n") {
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "set "):
			inCount = strings.HasPrefix(t, "set count_")
		case inCount && strings.HasPrefix(t, "elements = {"):
			skipping = true
		}
		if skipping {
			skipping = !strings.Contains(t, "}")
			continue
		}
		out = append(out, l)
	}
	// After the elements: stripCounters cuts a line at its first counter.
	return stripCounters(strings.Join(out, "\n"))
}

// TestBadSpecChangesNothing: every rejected Apply leaves kernel and record
// as they were.
func TestBadSpecChangesNothing(t *testing.T) {
	// With guest namespaces, so that the netem case gets as far as the kernel.
	s := newScene(t, 3, true)
	tgt := s.target()
	good := State{Partition: mustBlock(t, tgt.Guests, "a", "b"), Mode: ModeReject, Impairments: []Impairment{{Guest: "c", Loss: 5}}}
	skipMissing(t, Apply(tgt, good))
	// A backend whose table this kernel holds but that cannot reject (bridge
	// on Linux 6.18, netdev on Debian's 6.1), for the missing-reject cases.
	sup := probedSupport(t)
	var noReject Backend
	for _, b := range backends {
		if sup.tables[b] && sup.reject[b] != nil {
			noReject = b
		}
	}
	rulesBefore := nftRules(t, s.bridgeNS)
	recBefore, err := os.ReadFile(tgt.StateDir + "/" + StateFile)
	if err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name    string
		state   State
		is      error
		backend Backend // forced for this case
	}{
		{"unknown guest", State{Partition: Partition{Blocked: []Pair{{"a", "zz"}}}}, nil, ""},
		{"loss out of range", State{Impairments: []Impairment{{Guest: "a", Loss: 150}}}, nil, ""},
		{"bad mode", State{Mode: "explode"}, nil, ""},
		{"duplicate impairment", State{Impairments: []Impairment{{Guest: "a", Loss: 1}, {Guest: "a", Rate: 1e6}}}, nil, ""},
		{"netem", State{Impairments: []Impairment{{Guest: "a", Delay: 100 * time.Millisecond}}}, ErrNetemUnavailable, ""},
		{"reject without reject", State{Partition: mustIsolate(t, tgt.Guests, "c"), Mode: ModeReject}, ErrRejectUnavailable, noReject},
		{"cut without reject", State{Partition: mustIsolate(t, tgt.Guests, "c"), Cut: true}, ErrRejectUnavailable, noReject},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			if b.is == ErrRejectUnavailable {
				if b.backend == "" {
					t.Skip("every backend this kernel has can reject; the missing-reject path cannot be exercised here")
				}
				forcedBackend = b.backend
				defer func() { forcedBackend = "" }()
			}
			err := Apply(tgt, b.state)
			if err == nil {
				if b.is == ErrNetemUnavailable {
					// Put the good state back for the cases that follow.
					if err := Apply(tgt, good); err != nil {
						t.Fatal(err)
					}
					rulesBefore = nftRules(t, s.bridgeNS)
					if recBefore, err = os.ReadFile(tgt.StateDir + "/" + StateFile); err != nil {
						t.Fatal(err)
					}
					t.Skip("this kernel has netem; the missing-feature path cannot be exercised here")
				}
				t.Fatal("bad state applied")
			}
			if b.is == ErrRejectUnavailable {
				var fe *FeatureError
				if !errors.As(err, &fe) || fe.Feature != b.backend.rejectFeature() {
					t.Errorf("error %v does not name %s", err, b.backend.rejectFeature())
				}
			}
			if b.is != nil {
				if !errors.Is(err, b.is) {
					t.Fatalf("error %v does not match %v", err, b.is)
				}
				t.Logf("error: %v", err)
			}
			if got := nftRules(t, s.bridgeNS); got != rulesBefore {
				t.Errorf("ruleset changed:\n%s\nwas\n%s", got, rulesBefore)
			}
			if rec, _ := os.ReadFile(tgt.StateDir + "/" + StateFile); string(rec) != string(recBefore) {
				t.Errorf("record changed")
			}
			for _, ns := range []string{tgt.NetnsPath, s.guestNetns("a")} {
				if got := ownRoots(t, ns); len(got) > 0 {
					t.Errorf("qdiscs left behind in %s: %v", ns, got)
				}
			}
		})
	}
	t.Run("status sees a table removed behind its back", func(t *testing.T) {
		run(t, "", "ip", "netns", "exec", s.bridgeNS, "nft", "delete", "table", defaultBackend(t).Family(), TableName)
		st, err := Status(tgt)
		if err != nil {
			t.Fatal(err)
		}
		if st.Kernel == nil || st.Kernel.InEffect || !strings.Contains(st.Kernel.Detail, "missing") {
			t.Errorf("kernel check = %+v, want not in effect, table missing", st.Kernel)
		}
	})
}
