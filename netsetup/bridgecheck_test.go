package netsetup_test

import (
	"fmt"
	"os/exec"
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
		{"guest's entry made a learned one", [][]string{{"bridge", "fdb", "replace", netsetup.GuestMAC(addr("172.18.0.1")).String(), "dev", "g1", "master", "dynamic"}},
			"holds its forwarding entry for 02:70:ac:12:00:01 as a learned one"},
		{"port deleted", [][]string{{"ip", "link", "del", "g2"}}, "port g2 of guest g2 is missing"},
		// A renamed port escapes the final drop of g* and every check by name.
		{"port renamed", [][]string{{"ip", "link", "set", "g2", "down"}, {"ip", "link", "set", "g2", "name", "x2"}, {"ip", "link", "set", "x2", "up"}},
			"port x2 is on the bridge but is no guest's"},
		{"flooding off", [][]string{{"bridge", "link", "set", "dev", "g1", "flood", "off"}}, "port g1 of guest g1 floods no"},
		{"forwarding off", [][]string{{"sh", "-c", "echo 0 >/proc/sys/net/ipv4/ip_forward"}}, "sysctl net.ipv4.ip_forward is 0"},
		// Where iptables' legacy form is installed (not in the stock-kernel lane's image).
		{"legacy iptables", [][]string{{"iptables-legacy", "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "80", "-j", "DNAT", "--to-destination", "172.18.0.2:80"}},
			"legacy iptables tables (ip_tables_names: nat)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, argv := range tc.edit {
				if _, err := exec.LookPath(argv[0]); err != nil {
					t.Skipf("%s is not installed", argv[0])
				}
			}
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

// TestBridgeProblemsOwnIPv6: a guest's own IPv6 address is bound in the bridge's IPv6 sets
// while it is there; the binding deleted by hand, or one forged for another guest's address,
// is reported.
func TestBridgeProblemsOwnIPv6(t *testing.T) {
	s := newChain(t, netsetup.GatewayOptions{})
	b := mustBridge(t, s.Env, "b6", netsetup.BridgeOptions{})
	if _, err := netsetup.AddGuest(s.Env, "b6", "own", netsetup.GuestOptions{IP: "172.18.0.14", IP6: "fd70:6f6e::beef"}); err != nil {
		t.Fatal(err)
	}
	mustGuest(t, s.Env, "b6", "g2", "172.18.0.2")
	if p, err := netsetup.BridgeProblems(s.Env, "b6"); err != nil || len(p) > 0 {
		t.Fatalf("as pontoon left it: %q, %v", p, err)
	}
	ns, own := b.Netns(s.Env), netsetup.GuestMAC(addr("172.18.0.14")).String()
	inNetns(t, ns, "nft", "delete", "element", "bridge", netsetup.TableName, "guests6", "{ "+own+" . fd70:6f6e::beef }")
	inNetns(t, ns, "nft", "add", "element", "bridge", netsetup.TableName, "guests6",
		"{ "+netsetup.GuestMAC(addr("172.18.0.2")).String()+" . fd70:6f6e::14 }")
	p, err := netsetup.BridgeProblems(s.Env, "b6")
	got := strings.Join(p, "\n")
	for _, want := range []string{"set guests6 lacks 1 of its elements", "fd70:6f6e::beef", "set guests6 holds 1 elements pontoon did not put there", "fd70:6f6e::14"} {
		if err != nil || !strings.Contains(got, want) {
			t.Errorf("%q, %v; want one saying %q", p, err, want)
		}
	}
}
