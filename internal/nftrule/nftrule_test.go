package nftrule

import (
	"bytes"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/pontoon-dev/pontoon/internal/kernel"
	"github.com/pontoon-dev/pontoon/internal/testkit"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"golang.org/x/sys/unix"
)

// TestIfnameEncoding: an exact name is compared over the whole NUL-padded IFNAMSIZ buffer, a
// "name*" prefix over the prefix's bytes alone; the rest of a name must not take part.
func TestIfnameEncoding(t *testing.T) {
	for name, want := range map[string][]byte{
		"g1":       append([]byte("g1"), make([]byte, 14)...),
		"pontoon0": append([]byte("pontoon0"), make([]byte, 8)...),
		"g*":       []byte("g"),
		"s*":       []byte("s"),
	} {
		for _, m := range []Match{Iifname(name), Oifname(name), NotOifname(name)} {
			cmp, ok := m.Exprs[len(m.Exprs)-1].(*expr.Cmp)
			if !ok || !bytes.Equal(cmp.Data, want) {
				t.Errorf("%s: compares %v, want %q", m.Text, m.Exprs[len(m.Exprs)-1], want)
			}
		}
	}
	if got := NotOifname("pontoon0").Text; got != `oifname != "pontoon0"` {
		t.Errorf("text %q", got)
	}
}

// TestConcatKey: fields of a concatenated key each take whole 4-byte registers, the layout
// loadKeys loads them in.
func TestConcatKey(t *testing.T) {
	mac := []byte{2, 0x70, 0xac, 0x12, 0, 1}
	got := ConcatKey(mac, []byte{172, 18, 0, 1})
	want := []byte{2, 0x70, 0xac, 0x12, 0, 1, 0, 0, 172, 18, 0, 1}
	if !bytes.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	ex, text := loadKeys([]Key{KeyEtherSaddr, KeyIPSaddr})
	if text != "ether saddr . ip saddr" || ex[0].(*expr.Payload).DestRegister != 1 || ex[1].(*expr.Payload).DestRegister != 10 {
		t.Errorf("ether saddr . ip saddr loads as %q into %v, %v; want registers 1 and 10 (NFT_REG32_02)", text, ex[0], ex[1])
	}
}

// builderCase is a rule in one of the test tables' chains. otherForm, when set, says why
// nft(8) writes the rule's text in another form than the builders (which the kernel runs alike).
type builderCase struct {
	table, chain string
	rule         Rule
	otherForm    string
}

// builderCases cover every builder, in the order nft lists their chains. The sets, maps and chains they
// name exist in both scratch rule sets of TestTextMatchesKernel.
func builderCases() []builderCase {
	guests, blocked := &nftables.Set{Name: "guests"}, &nftables.Set{Name: "blocked"}
	asked, asked6 := &nftables.Set{Name: "asked"}, &nftables.Set{Name: "asked6"}
	src, dst, dstmac := &nftables.Set{Name: "sources"}, &nftables.Set{Name: "dests"}, &nftables.Set{Name: "destmacs"}
	p := netip.MustParsePrefix("172.18.0.0/24")
	h := Host(netip.MustParseAddr("172.18.0.7"))
	return []builderCase{
		{"ip", "forward", Rule{Iifname("eth0"), Oifname("s*"), Accept()}, ""},
		{"ip", "forward", Rule{Iifname("s*"), NotOifname("pontoon0"), Drop()}, ""},
		{"ip", "forward", Rule{Saddr(p), Daddr(h), NotDaddr(p), Jump("target")}, ""},
		{"ip", "forward", Rule{Saddr(netip.MustParsePrefix("172.18.255.0/30")), NotDaddr(netip.MustParsePrefix("172.18.192.0/19")), Accept()}, ""},
		{"ip", "forward", Rule{L4Proto("tcp"), NoSYN(), RejectTCPReset()}, ""},
		{"ip", "forward", Rule{CtEstablished(), RandomBelow(10000, 1250), Drop()}, ""},
		{"ip", "postrouting", Rule{Saddr(p), Oifname("uplink"), Masquerade()}, ""},
		{"ip", "prerouting", Rule{Dport("tcp", 8080), DNAT(h.Addr(), 80)}, ""},
		{"inet", "forward", Rule{RejectAdminProhibited()}, ""},
		{"bridge", "prerouting", Rule{EtherType("arp", unix.ETH_P_ARP), ARPRequest(), ARPTargetIn(p), Update(asked, KeyARPTargetIP)}, ""},
		{"bridge", "prerouting", Rule{EtherType("ip6", unix.ETH_P_IPV6), ICMPv6Type(ICMPv6NeighborSolicit), Update(asked6, KeyNDTargetLast)}, ""},
		{"bridge", "prerouting", Rule{EtherType("ip", unix.ETH_P_IP), InSet(guests, KeyEtherSaddr, KeyIPSaddr), Accept()}, ""},
		{"bridge", "prerouting", Rule{EtherType("arp", unix.ETH_P_ARP), InSet(guests, KeyARPSenderMAC, KeyARPSenderIP), Accept()}, ""},
		{"bridge", "prerouting", Rule{NotProtocol("arp", unix.ETH_P_ARP), MetaSetMap(MetaMark, src, KeyIifname)}, ""},
		{"bridge", "prerouting", Rule{Protocol("ip", unix.ETH_P_IP), MetaSetMap(MetaPriority, dst, KeyIPDaddr)}, ""},
		{"bridge", "prerouting", Rule{MetaSetMap(MetaPriority, dstmac, KeyEtherDaddr)}, ""},
		{"bridge", "prerouting", Rule{InSet(blocked, KeyMark, KeyPriority), Drop()},
			"nft converts the host-order fields of an interval set's key to network order; pontoon stores them as they are"},
		{"bridge", "prerouting", Rule{MetaClear(MetaMark, MetaPriority)}, "nft loads the 0 once for each field"},
	}
}

// TestTextMatchesKernel loads each builder's text through nft(8) and its expressions through
// netlink into scratch namespaces and compares the expressions the kernel lists, byte for
// byte: every builder encodes its match as nft(8) encodes its text, except where a case says
// why not. Even those, nft(8) must list as the same rules.
func TestTextMatchesKernel(t *testing.T) {
	testkit.NeedRoot(t, "creates network namespaces")
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft(8) to load the text form")
	}
	dir := t.TempDir()
	viaText, viaExprs := scratchNetns(t, dir, "text"), scratchNetns(t, dir, "exprs")
	cases := builderCases()
	cmd := exec.Command("nsenter", "--net="+viaText, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script(cases))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v\n%s\n%s", err, out, script(cases))
	}
	if err := install(viaExprs, cases); err != nil {
		t.Fatal(err)
	}
	a, b := ruleExprs(t, viaText), ruleExprs(t, viaExprs)
	if len(a) != len(cases) || len(b) != len(cases) {
		t.Fatalf("listed %d rules from text and %d from expressions, want %d", len(a), len(b), len(cases))
	}
	for i, c := range cases {
		if c.otherForm == "" && a[i] != b[i] {
			t.Errorf("%s: nft(8) writes\n%s\nthe builders write\n%s", c.rule.Text(), a[i], b[i])
		}
	}
	for _, table := range tables {
		// nft(8) keeps a set's typeof declaration in the set's user data, which the netlink
		// library cannot write: the same one-byte key lists without its name.
		a := strings.Replace(listTable(t, viaText, table, ""), "typeof @th,184,8", "type 0", 1)
		if b := listTable(t, viaExprs, table, ""); a != b {
			t.Errorf("nft lists table %s t\nfrom text:\n%s\nfrom expressions:\n%s", table, a, b)
		}
	}
}

func scratchNetns(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := ns.New(ns.Spec{Net: p}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Remove(p) })
	return p
}

// script is the nft(8) form of the test tables holding cases.
func script(cases []builderCase) string {
	rules := func(table, chain string) string {
		var b strings.Builder
		for _, c := range cases {
			if c.table == table && c.chain == chain {
				fmt.Fprintf(&b, "    %s\n", c.rule.Text())
			}
		}
		return b.String()
	}
	return `table ip t {
  chain target { }
  chain forward { type filter hook forward priority 0;
` + rules("ip", "forward") + `  }
  chain postrouting { type nat hook postrouting priority 100;
` + rules("ip", "postrouting") + `  }
  chain prerouting { type nat hook prerouting priority -100;
` + rules("ip", "prerouting") + `  }
}
table inet t {
  chain forward { type filter hook forward priority 0;
` + rules("inet", "forward") + `  }
}
table bridge t {
  set guests { type ether_addr . ipv4_addr; }
  map sources { type ifname : mark; }
  map dests { type ipv4_addr : classid; }
  map destmacs { type ether_addr : classid; }
  set blocked { type mark . classid; flags interval; }
  set asked { type ipv4_addr; size 256; flags dynamic,timeout; timeout 3s; }
  set asked6 { typeof @th,184,8; size 256; flags dynamic,timeout; timeout 3s; }
  chain prerouting { type filter hook prerouting priority 0;
` + rules("bridge", "prerouting") + `  }
}
`
}

// install adds the test tables holding cases through netlink, in the order of script.
func install(nsPath string, cases []builderCase) error {
	n, err := kernel.OpenNS(nsPath)
	if err != nil {
		return err
	}
	defer n.Close()
	c, err := n.Nftables()
	if err != nil {
		return err
	}
	defer c.Close()
	ip := c.AddTable(&nftables.Table{Name: "t", Family: nftables.TableFamilyIPv4})
	inet := c.AddTable(&nftables.Table{Name: "t", Family: nftables.TableFamilyINet})
	br := c.AddTable(&nftables.Table{Name: "t", Family: nftables.TableFamilyBridge})
	chains := map[string]*nftables.Chain{
		"ip target": c.AddChain(&nftables.Chain{Name: "target", Table: ip}),
		"ip forward": c.AddChain(&nftables.Chain{Name: "forward", Table: ip, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter}),
		"ip postrouting": c.AddChain(&nftables.Chain{Name: "postrouting", Table: ip, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource}),
		"ip prerouting": c.AddChain(&nftables.Chain{Name: "prerouting", Table: ip, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest}),
	}
	chains["inet forward"] = c.AddChain(&nftables.Chain{Name: "forward", Table: inet, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter})
	for _, s := range []*nftables.Set{
		{Table: br, Name: "guests", Concatenation: true, KeyType: nftables.MustConcatSetType(nftables.TypeEtherAddr, nftables.TypeIPAddr)},
		{Table: br, Name: "sources", IsMap: true, KeyType: nftables.TypeIFName, DataType: nftables.TypeMark},
		{Table: br, Name: "dests", IsMap: true, KeyType: nftables.TypeIPAddr, DataType: nftables.TypeClassID},
		{Table: br, Name: "destmacs", IsMap: true, KeyType: nftables.TypeEtherAddr, DataType: nftables.TypeClassID},
		{Table: br, Name: "blocked", Interval: true, Concatenation: true, KeyType: nftables.MustConcatSetType(nftables.TypeMark, nftables.TypeClassID)},
		{Table: br, Name: "asked", KeyType: nftables.TypeIPAddr, Size: 256, Dynamic: true, HasTimeout: true, Timeout: 3 * time.Second},
		{Table: br, Name: "asked6", KeyType: OneByte, Size: 256, Dynamic: true, HasTimeout: true, Timeout: 3 * time.Second},
	} {
		if err := c.AddSet(s, nil); err != nil {
			return err
		}
	}
	chains["bridge prerouting"] = c.AddChain(&nftables.Chain{Name: "prerouting", Table: br, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(0)})
	for _, cs := range cases {
		ch := chains[cs.table+" "+cs.chain]
		c.AddRule(&nftables.Rule{Table: ch.Table, Chain: ch, Exprs: cs.rule.Exprs()})
	}
	return c.Flush()
}

// tables are the families of the test tables, in the order nft lists them.
var tables = []string{"ip", "inet", "bridge"}

func listTable(t *testing.T, nsPath, table string, debug string) string {
	t.Helper()
	args := []string{"--net=" + nsPath, "nft", "list", "table", table, "t"}
	if debug != "" {
		args = slices.Insert(args, 2, "--debug="+debug)
	}
	out, err := exec.Command("nsenter", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list: %v\n%s", err, out)
	}
	return string(out)
}

// ruleExprs lists the expressions of every rule in the namespace, as the kernel gives them,
// one string a rule, in the order of script.
func ruleExprs(t *testing.T, nsPath string) []string {
	t.Helper()
	var out []string
	for _, table := range tables {
		text := listTable(t, nsPath, table, "netlink")
		// A rule's expressions are the "  [ ... ]" lines after its "family table chain" line.
		var cur []string
		flush := func() {
			if len(cur) > 0 {
				out = append(out, strings.Join(cur, "\n"))
			}
			cur = nil
		}
		for _, line := range strings.Split(string(text), "\n") {
			switch {
			case strings.HasPrefix(line, "  ["):
				cur = append(cur, line)
			default:
				flush()
			}
		}
	}
	return out
}
