package netsetup

import (
	"bytes"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/kernel"
	"github.com/pontoon-dev/pontoon/internal/testkit"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
)

// testTables are the tables pontoon installs, in the shapes that matter: with and without
// port forwards and DNS redirect, default and moved plan.
func testTables() map[string]struct {
	spec tableSpec
	want string
} {
	plan := DefaultPlan()
	moved, _ := ParsePlan("10.77.0.0/16")
	withPorts := &BridgeState{Name: "web", Slot: 3, Phase: PhaseReady,
		Ports:  []Port{{8080, "front", 80, "tcp"}, {5353, "172.18.0.9", 53, "udp"}, {9000, "later", 90, "tcp"}},
		Guests: []Guest{{Name: "front", IP: netip.MustParseAddr("172.18.0.7")}}}
	other := &BridgeState{Name: "api", Slot: 2047, Phase: PhaseReady, Ports: []Port{{8443, "a", 443, "tcp"}}}
	creating := &BridgeState{Name: "new", Slot: 5, Phase: PhaseCreating, Ports: []Port{{7000, "a", 70, "tcp"}}}
	return map[string]struct {
		spec tableSpec
		want string
	}{
		"bridge l2": {bridgeL2Table(plan), `table bridge pontoon {
  set guests { type ether_addr . ipv4_addr; size 253; elements = { ` + planPairs("02:70:ac:12:00:%02x . 172.18.0.%d") + ` } }
  set asked { type ipv4_addr; size 1024; flags dynamic,timeout; timeout 3s; }
  chain prerouting { type filter hook prerouting priority -300; ether type ip ether saddr . ip saddr @guests accept; ether type arp arp operation request arp daddr ip 172.18.0.0/24 update @asked { arp daddr ip }; ether type arp ether saddr . arp saddr ip @guests arp saddr ether . arp saddr ip @guests accept; iifname "g*" drop; }
  chain forward { type filter hook forward priority 0; meta protocol ip6 drop; }
}`},
		"moved bridge l2": {bridgeL2Table(moved), `table bridge pontoon {
  set guests { type ether_addr . ipv4_addr; size 253; elements = { ` + planPairs("02:70:0a:4d:00:%02x . 10.77.0.%d") + ` } }
  set asked { type ipv4_addr; size 1024; flags dynamic,timeout; timeout 3s; }
  chain prerouting { type filter hook prerouting priority -300; ether type ip ether saddr . ip saddr @guests accept; ether type arp arp operation request arp daddr ip 10.77.0.0/24 update @asked { arp daddr ip }; ether type arp ether saddr . arp saddr ip @guests arp saddr ether . arp saddr ip @guests accept; iifname "g*" drop; }
  chain forward { type filter hook forward priority 0; meta protocol ip6 drop; }
}`},
		"gateway": {gatewayTable(plan, nil), `table ip pontoon {
  chain postrouting { type nat hook postrouting priority 100; oifname "uplink" masquerade; }
  chain prerouting { type nat hook prerouting priority -100; }
  chain forward { type filter hook forward priority 0; iifname "s*" oifname "s*" drop; }
  chain input { type filter hook input priority 0; iifname "s*" ip daddr 172.18.192.0/19 drop; }
}`},
		"gateway with forwards": {gatewayTable(plan, gatewayForwards(plan, []*BridgeState{withPorts, other, creating})), `table ip pontoon {
  chain postrouting { type nat hook postrouting priority 100; oifname "uplink" masquerade; }
  chain prerouting { type nat hook prerouting priority -100; iifname "uplink" ip daddr 172.18.255.2 tcp dport 8080 dnat to 172.18.192.14:8080; iifname "uplink" ip daddr 172.18.255.2 udp dport 5353 dnat to 172.18.192.14:5353; iifname "uplink" ip daddr 172.18.255.2 tcp dport 9000 dnat to 172.18.192.14:9000; iifname "uplink" ip daddr 172.18.255.2 tcp dport 8443 dnat to 172.18.223.254:8443; }
  chain forward { type filter hook forward priority 0; iifname "s*" oifname "s*" drop; }
  chain input { type filter hook input priority 0; iifname "s*" ip daddr 172.18.192.0/19 drop; }
}`},
		"moved gateway": {gatewayTable(moved, nil), `table ip pontoon {
  chain postrouting { type nat hook postrouting priority 100; oifname "uplink" masquerade; }
  chain prerouting { type nat hook prerouting priority -100; }
  chain forward { type filter hook forward priority 0; iifname "s*" oifname "s*" drop; }
  chain input { type filter hook input priority 0; iifname "s*" ip daddr 10.77.192.0/19 drop; }
}`},
		"host": {hostTable(plan, netip.Addr{}), `table ip pontoon {
  chain postrouting { type nat hook postrouting priority 100; ip saddr 172.18.255.0/30 oifname != "pontoon0" masquerade; }
  chain prerouting { type nat hook prerouting priority -100; }
}`},
		"host with dns": {hostTable(plan, netip.MustParseAddr("127.0.0.53")), `table ip pontoon {
  chain postrouting { type nat hook postrouting priority 100; ip saddr 172.18.255.0/30 oifname != "pontoon0" masquerade; }
  chain prerouting { type nat hook prerouting priority -100; iifname "pontoon0" ip daddr 172.18.255.1 udp dport 53 dnat to 127.0.0.53:53; iifname "pontoon0" ip daddr 172.18.255.1 tcp dport 53 dnat to 127.0.0.53:53; }
}`},
		"bridge": {bridgeTable(plan, &BridgeState{Name: "plain", Slot: 0}), `table ip pontoon {
  chain postrouting { type nat hook postrouting priority 100; ip saddr 172.18.0.0/24 oifname "uplink" masquerade; }
  chain prerouting { type nat hook prerouting priority -100; }
}`},
		// The forward to "later" waits for that guest; the one given by IP needs no guest.
		"bridge with forwards": {bridgeTable(plan, withPorts), `table ip pontoon {
  chain postrouting { type nat hook postrouting priority 100; ip saddr 172.18.0.0/24 oifname "uplink" masquerade; }
  chain prerouting { type nat hook prerouting priority -100; iifname "uplink" ip daddr 172.18.192.14 tcp dport 8080 dnat to 172.18.0.7:80; iifname "uplink" ip daddr 172.18.192.14 udp dport 5353 dnat to 172.18.0.9:53; }
}`},
	}
}

// planPairs lists the MAC . IP pairs of guests 1-253 in the given format (octet twice).
func planPairs(format string) string {
	pairs := make([]string, 253)
	for i := range pairs {
		pairs[i] = fmt.Sprintf(format, i+1, i+1)
	}
	return strings.Join(pairs, ", ")
}

func TestTableText(t *testing.T) {
	for name, c := range testTables() {
		if got := c.spec.text(); got != c.want {
			t.Errorf("%s table:\ngot\n%s\nwant\n%s", name, got, c.want)
		}
	}
}

func TestTableShow(t *testing.T) {
	spec := gatewayTable(DefaultPlan(), nil)
	for nsName, prefix := range map[string]string{"pontoon-gw": "ip netns exec pontoon-gw nft -f - <<'EOF'\n", "": "nft -f - <<'EOF'\n"} {
		got := spec.show(nsName)
		if !strings.HasPrefix(got, prefix) || !strings.HasSuffix(got, "\n"+spec.text()+"\nEOF") {
			t.Errorf("show(%q) is not a heredoc of the table:\n%s", nsName, got)
		}
	}
}

// heredoc returns the script inside a show() command.
func heredoc(show string) string {
	_, body, _ := strings.Cut(show, "<<'EOF'\n")
	body, _ = strings.CutSuffix(body, "EOF")
	return body
}

func TestHostForwardRulesText(t *testing.T) {
	want := []string{`iifname "pontoon0" accept`, `oifname "pontoon0" ct state established,related accept`}
	for _, ch := range []*nftables.Chain{
		{Name: "FORWARD", Table: &nftables.Table{Name: "filter", Family: nftables.TableFamilyIPv4}},
		{Name: "fwd", Table: &nftables.Table{Name: "fw", Family: nftables.TableFamilyINet}},
	} {
		var got []string
		for _, r := range hostForwardRules(ch) {
			got = append(got, r.Text())
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s %s: got %q, want %q", ch.Table.Name, ch.Name, got, want)
		}
	}
}

func TestCommentUserData(t *testing.T) {
	// NFTNL_UDATA_RULE_COMMENT (type 0), length including the NUL, the text, the NUL.
	want := []byte{0, 8, 'p', 'o', 'n', 't', 'o', 'o', 'n', 0}
	if !bytes.Equal(pontoonComment, want) {
		t.Errorf("got %v, want %v", pontoonComment, want)
	}
}

// TestTableTextMatchesKernel installs every table twice in scratch namespaces, once from its
// dry-run script through nft(8) and once from its expressions through netlink, and compares what
// the kernel lists: the dry-run text and the applied rules must be the same rule set.
func TestTableTextMatchesKernel(t *testing.T) {
	testkit.NeedRoot(t, "creates network namespaces")
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft(8) to load the text form")
	}
	t.Parallel()
	dir := t.TempDir()
	for name, c := range testTables() {
		t.Run(name, func(t *testing.T) {
			viaText := scratchNetns(t, dir, "text-"+name)
			viaExprs := scratchNetns(t, dir, "exprs-"+name)
			// What --dry-run prints, run twice: the second run must replace, not add.
			for range 2 {
				cmd := exec.Command("nsenter", "--net="+viaText, "nft", "-f", "-")
				cmd.Stdin = strings.NewReader(heredoc(c.spec.show("")))
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("nft -f rejected the dry-run script: %v\n%s\n%s", err, out, c.spec.show(""))
				}
			}
			n, err := kernel.OpenNS(viaExprs)
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			if err := replaceTable(n, c.spec); err != nil {
				t.Fatal(err)
			}
			a, b := listTable(t, viaText, c.spec.familyName()), listTable(t, viaExprs, c.spec.familyName())
			if a != b {
				t.Errorf("kernel rule sets differ\nfrom text:\n%s\nfrom expressions:\n%s", a, b)
			}
		})
	}
}

func scratchNetns(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
	if err := ns.New(ns.Spec{Net: p}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Remove(p) })
	return p
}

// l4proto is what netlink rules carry to guard a port match; nft(8) writes the same guard as
// a payload match it does not print. Both mean "this is TCP/UDP".
var l4proto = regexp.MustCompile(`meta l4proto (tcp|udp) `)

func listTable(t *testing.T, nsPath, family string) string {
	t.Helper()
	out, err := exec.Command("nsenter", "--net="+nsPath, "nft", "list", "table", family, TableName).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list table: %v\n%s", err, out)
	}
	return l4proto.ReplaceAllString(string(out), "")
}

// TestReplaceTableReplacesSetElements replaces a bridge table of one plan by the table of
// another, through netlink and through the dry-run script: flushing a table keeps its sets'
// elements, so a replacement must drop them itself.
func TestReplaceTableReplacesSetElements(t *testing.T) {
	testkit.NeedRoot(t, "creates network namespaces")
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft(8) to load the text form")
	}
	t.Parallel()
	dir := t.TempDir()
	moved, _ := ParsePlan("10.77.0.0/16")
	viaText, viaExprs := scratchNetns(t, dir, "text"), scratchNetns(t, dir, "exprs")
	for _, spec := range []tableSpec{bridgeL2Table(DefaultPlan()), bridgeL2Table(moved)} {
		cmd := exec.Command("nsenter", "--net="+viaText, "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(heredoc(spec.show("")))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nft -f rejected the dry-run script: %v\n%s", err, out)
		}
		n, err := kernel.OpenNS(viaExprs)
		if err != nil {
			t.Fatal(err)
		}
		err = replaceTable(n, spec)
		n.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	for how, nsPath := range map[string]string{"text": viaText, "expressions": viaExprs} {
		got := listTable(t, nsPath, "bridge")
		if strings.Contains(got, "172.18.0.") || !strings.Contains(got, "02:70:0a:4d:00:fd . 10.77.0.253") {
			t.Errorf("replaced via %s, the set does not hold exactly the new plan's pairs:\n%s", how, got)
		}
	}
}
