package netsetup_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/netsetup"
)

// TestBridgeProblemsSeesHandEdits changes a bridge's namespace by hand, as root in it can,
// in each way that lets a guest pass for another or cuts one off: BridgeProblems says so
// each time, and says nothing of a bridge as pontoon left it (with a forward, whose rules
// change with its guest).
func TestBridgeProblemsSeesHandEdits(t *testing.T) {
	s := newChain(t, netsetup.GatewayOptions{})
	// lastRule is the handle of the last rule of a chain.
	lastRule := func(ns, family, chain string) string {
		out := inNetns(t, ns, "nft", "-a", "list", "chain", family, netsetup.TableName, chain)
		handle := ""
		for _, l := range strings.Split(out, "\n") {
			if i := strings.Index(l, "# handle "); i >= 0 && !strings.Contains(l, "chain "+chain) {
				handle = strings.TrimSpace(l[i+len("# handle "):])
			}
		}
		if handle == "" {
			t.Fatalf("no rule in chain %s:\n%s", chain, out)
		}
		return handle
	}
	g2MAC := netsetup.GuestMAC(addr("172.18.0.2")).String()
	for i, tc := range []struct {
		name string
		edit [][]string // commands run in the bridge's namespace
		want string     // a problem contains it
	}{
		{"final drop of guest ports deleted", [][]string{{"nft", "delete", "rule", "bridge", netsetup.TableName, "prerouting", "handle", "LAST:bridge:prerouting"}},
			"chain prerouting has"},
		{"a rule rewritten in place", [][]string{{"nft", "replace", "rule", "bridge", netsetup.TableName, "prerouting", "handle", "LAST:bridge:prerouting", "iifname", "g*", "accept"}},
			"was changed by hand"},
		{"forward policy drop", [][]string{{"nft", "add", "chain", "bridge", netsetup.TableName, "forward", "{ policy drop ; }"}},
			"policy was set to drop"},
		{"NAT rules flushed", [][]string{{"nft", "flush", "chain", "ip", netsetup.TableName, "postrouting"}},
			"table ip pontoon: chain postrouting has 0 rules"},
		{"NAT table deleted", [][]string{{"nft", "delete", "table", "ip", netsetup.TableName}},
			"table ip pontoon is missing"},
		{"a chain added", [][]string{{"nft", "add", "chain", "bridge", netsetup.TableName, "mine", "{ type filter hook input priority 0 ; }"}},
			"chain mine was added by hand"},
		{"a guest's identity deleted", [][]string{{"nft", "delete", "element", "bridge", netsetup.TableName, "guests", "{ " + g2MAC + " . 172.18.0.2 }"}},
			"set guests lacks 1 of its elements"},
		// The set is full: a forged pair takes the place of a real one.
		{"a forged identity added", [][]string{{"nft", "delete", "element", "bridge", netsetup.TableName, "guests", "{ " + g2MAC + " . 172.18.0.2 }"},
			{"nft", "add", "element", "bridge", netsetup.TableName, "guests", "{ " + g2MAC + " . 172.18.0.1 }"}},
			"set guests holds 1 elements pontoon did not put there"},
		{"port unlocked", [][]string{{"bridge", "link", "set", "dev", "g1", "locked", "off"}},
			"port g1 of guest g1 was unlocked"},
		{"port learns", [][]string{{"bridge", "link", "set", "dev", "g1", "learning", "on"}},
			"port g1 of guest g1 learns"},
		{"guest's forwarding entry deleted", [][]string{{"bridge", "fdb", "del", netsetup.GuestMAC(addr("172.18.0.1")).String(), "dev", "g1", "master"}},
			"port g1 of guest g1 lacks its static forwarding entry"},
		{"another MAC's entry added", [][]string{{"bridge", "fdb", "add", "02:00:00:00:00:99", "dev", "g1", "master", "static"}},
			"has forwarding entries for other MACs (added by hand), whose frames it lets in: 02:00:00:00:00:99"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("bc%d", i)
			b := mustBridge(t, s.Env, name, netsetup.BridgeOptions{Ports: mustPorts(t, fmt.Sprintf("%d:g1:80", 18000+i))})
			mustGuest(t, s.Env, name, "g1", "172.18.0.1")
			mustGuest(t, s.Env, name, "g2", "172.18.0.2")
			ns := b.Netns(s.Env)
			if p, err := netsetup.BridgeProblems(s.Env, name); err != nil || len(p) > 0 {
				t.Fatalf("before the edit: %q, %v", p, err)
			}
			for _, argv := range tc.edit {
				argv = append([]string(nil), argv...)
				for k, a := range argv {
					if f := strings.Split(a, ":"); len(f) == 3 && f[0] == "LAST" {
						argv[k] = lastRule(ns, f[1], f[2])
					}
				}
				inNetns(t, ns, argv...)
			}
			p, err := netsetup.BridgeProblems(s.Env, name)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(strings.Join(p, "\n"), tc.want) {
				t.Errorf("after the edit: %q, want one saying %q", p, tc.want)
			}
		})
	}
}

// TestBridgeProblemsMatchPackets: a guest whose identity was deleted from the bridge's set
// by hand is cut off, and BridgeProblems says so; one that still talks is not reported.
func TestBridgeProblemsMatchPackets(t *testing.T) {
	s := newChain(t, netsetup.GatewayOptions{})
	b := mustBridge(t, s.Env, "bp", netsetup.BridgeOptions{})
	g1 := mustGuest(t, s.Env, "bp", "g1", "172.18.0.1")
	g2 := mustGuest(t, s.Env, "bp", "g2", "172.18.0.2")
	serve(t, g1.Netns, g1.IP)
	mustReach(t, g2.Netns, g1.IP)
	if p, err := netsetup.BridgeProblems(s.Env, "bp"); err != nil || len(p) > 0 {
		t.Fatalf("%q, %v", p, err)
	}
	inNetns(t, b.Netns(s.Env), "nft", "delete", "element", "bridge", netsetup.TableName, "guests",
		"{ "+netsetup.GuestMAC(g2.IP).String()+" . 172.18.0.2 }")
	mustNotReach(t, g2.Netns, g1.IP)
	p, err := netsetup.BridgeProblems(s.Env, "bp")
	if err != nil || len(p) != 1 || !strings.Contains(p[0], "172.18.0.2") {
		t.Errorf("with g2's identity gone: %q, %v; want the one problem naming 172.18.0.2", p, err)
	}
}
