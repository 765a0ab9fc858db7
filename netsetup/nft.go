package netsetup

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// match is one piece of an nftables rule: its nft syntax (for --dry-run and messages) and
// the expressions it compiles to. Building both from one value keeps them from drifting.
type match struct {
	text  string
	exprs []expr.Any
}

type rule []match

func (r rule) text() string {
	parts := make([]string, len(r))
	for i, m := range r {
		parts[i] = m.text
	}
	return strings.Join(parts, " ")
}

func (r rule) exprs() []expr.Any {
	var out []expr.Any
	for _, m := range r {
		out = append(out, m.exprs...)
	}
	return out
}

// ifname matches an input or output interface name; a trailing '*' matches a prefix.
func ifname(key expr.MetaKey, kw string, op expr.CmpOp, name string) match {
	data := []byte(name + "\x00")
	if p, ok := strings.CutSuffix(name, "*"); ok {
		data = []byte(p)
	}
	sym := ""
	if op == expr.CmpOpNeq {
		sym = "!= "
	}
	return match{
		text: fmt.Sprintf("%s %s%q", kw, sym, name),
		exprs: []expr.Any{
			&expr.Meta{Key: key, Register: 1},
			&expr.Cmp{Op: op, Register: 1, Data: data},
		},
	}
}

func iif(name string) match    { return ifname(expr.MetaKeyIIFNAME, "iifname", expr.CmpOpEq, name) }
func oif(name string) match    { return ifname(expr.MetaKeyOIFNAME, "oifname", expr.CmpOpEq, name) }
func notOif(name string) match { return ifname(expr.MetaKeyOIFNAME, "oifname", expr.CmpOpNeq, name) }

// ipField matches the IPv4 source (offset 12) or destination (16) against a prefix or address.
func ipField(kw string, offset uint32, p netip.Prefix, op expr.CmpOp) match {
	a := p.Masked().Addr().As4()
	ex := []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4}}
	if p.Bits() < 32 {
		m := binary.BigEndian.AppendUint32(nil, ^uint32(0)<<(32-p.Bits()))
		ex = append(ex, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: m, Xor: []byte{0, 0, 0, 0}})
	}
	ex = append(ex, &expr.Cmp{Op: op, Register: 1, Data: a[:]})
	sym := ""
	if op == expr.CmpOpNeq {
		sym = "!= "
	}
	s := p.String()
	if p.Bits() == 32 {
		s = p.Addr().String()
	}
	return match{text: fmt.Sprintf("ip %s %s%s", kw, sym, s), exprs: ex}
}

func saddr(p netip.Prefix) match    { return ipField("saddr", 12, p, expr.CmpOpEq) }
func daddr(p netip.Prefix) match    { return ipField("daddr", 16, p, expr.CmpOpEq) }
func notDaddr(p netip.Prefix) match { return ipField("daddr", 16, p, expr.CmpOpNeq) }

func host(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, 32) }

// dport matches a TCP or UDP destination port.
func dport(proto string, port uint16) match {
	p := byte(unix.IPPROTO_TCP)
	if proto == "udp" {
		p = unix.IPPROTO_UDP
	}
	return match{
		text: fmt.Sprintf("%s dport %d", proto, port),
		exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, port)},
		},
	}
}

func ctEstablished() match {
	mask := binary.NativeEndian.AppendUint32(nil, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED)
	return match{
		text: "ct state established,related",
		exprs: []expr.Any{
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
		},
	}
}

// protocol matches the packet's ethertype (meta protocol), e.g. ip6.
func protocol(name string, ethertype uint16) match {
	return match{
		text: "meta protocol " + name,
		exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, ethertype)},
		},
	}
}

func masquerade() match { return match{text: "masquerade", exprs: []expr.Any{&expr.Masq{}}} }

func verdict(k expr.VerdictKind, text string) match {
	return match{text: text, exprs: []expr.Any{&expr.Verdict{Kind: k}}}
}

func accept() match { return verdict(expr.VerdictAccept, "accept") }
func drop() match   { return verdict(expr.VerdictDrop, "drop") }

func dnat(to netip.Addr, port uint16) match {
	a := to.As4()
	return match{
		text: fmt.Sprintf("dnat to %s:%d", to, port),
		exprs: []expr.Any{
			&expr.Immediate{Register: 1, Data: a[:]},
			&expr.Immediate{Register: 2, Data: binary.BigEndian.AppendUint16(nil, port)},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
		},
	}
}

// chainSpec is a base chain of pontoon's table with its rules.
type chainSpec struct {
	name     string
	typ      nftables.ChainType
	hook     *nftables.ChainHook
	priority *nftables.ChainPriority
	rules    []rule
}

// tableSpec is pontoon's whole table in one namespace. It is always replaced as a whole in a
// single transaction, so the namespace never holds half a rule set.
type tableSpec struct {
	family nftables.TableFamily // zero: ip
	chains []chainSpec
}

func (t tableSpec) nftFamily() nftables.TableFamily {
	if t.family == 0 {
		return nftables.TableFamilyIPv4
	}
	return t.family
}

// familyName is the family as nft(8) spells it.
func (t tableSpec) familyName() string {
	if t.nftFamily() == nftables.TableFamilyBridge {
		return "bridge"
	}
	return "ip"
}

// text renders the table as an nft script, as `nft -f` would take it.
func (t tableSpec) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table %s %s {\n", t.familyName(), TableName)
	for _, c := range t.chains {
		fmt.Fprintf(&b, "  chain %s { type %s hook %s priority %d;", c.name, c.typ, hookName(*c.hook), *c.priority)
		for _, r := range c.rules {
			fmt.Fprintf(&b, " %s;", r.text())
		}
		b.WriteString(" }\n")
	}
	b.WriteString("}")
	return b.String()
}

func hookName(h nftables.ChainHook) string {
	switch h {
	case *nftables.ChainHookPrerouting:
		return "prerouting"
	case *nftables.ChainHookInput:
		return "input"
	case *nftables.ChainHookForward:
		return "forward"
	case *nftables.ChainHookOutput:
		return "output"
	case *nftables.ChainHookPostrouting:
		return "postrouting"
	}
	return fmt.Sprint(uint32(h))
}

// show renders the equivalent command; an empty nsName means the host's own namespace.
func (t tableSpec) show(nsName string) string {
	prefix := ""
	if nsName != "" {
		prefix = "ip netns exec " + nsName + " "
	}
	f := t.familyName()
	return fmt.Sprintf("%snft -f - <<'EOF'\ntable %s %s\nflush table %s %s\n%s\nEOF", prefix, f, TableName, f, TableName, t.text())
}

// replaceTable installs t as pontoon's table in the namespace whose fd is given, replacing
// the rules of any previous version, in one atomic transaction.
//
// The table's rules are flushed and refilled rather than the table deleted and re-added: deleting a
// base chain unregisters its hook, which makes the commit wait for an RCU grace period (about
// 10-30 ms), while a flush costs microseconds. Both happen in one batch, so no packet sees the
// namespace without its rules.
func replaceTable(nsfd int, t tableSpec) error {
	c, err := nftables.New(nftables.WithNetNSFd(nsfd))
	if err != nil {
		return fmt.Errorf("open nftables: %w", err)
	}
	tbl := c.AddTable(&nftables.Table{Name: TableName, Family: t.nftFamily()})
	c.FlushTable(tbl)
	for _, cs := range t.chains {
		ch := c.AddChain(&nftables.Chain{Name: cs.name, Table: tbl, Type: cs.typ, Hooknum: cs.hook, Priority: cs.priority})
		for _, r := range cs.rules {
			c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: r.exprs()})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("install nftables table %s: %w", TableName, err)
	}
	return nil
}

// deleteTable removes pontoon's table from a namespace; a missing table is not an error.
func deleteTable(nsfd int) error {
	c, err := nftables.New(nftables.WithNetNSFd(nsfd))
	if err != nil {
		return fmt.Errorf("open nftables: %w", err)
	}
	tbl := &nftables.Table{Name: TableName, Family: nftables.TableFamilyIPv4}
	c.AddTable(tbl)
	c.DelTable(tbl)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("delete nftables table %s: %w", TableName, err)
	}
	return nil
}

func natChain(name string, hook *nftables.ChainHook, prio *nftables.ChainPriority, rules ...rule) chainSpec {
	return chainSpec{name: name, typ: nftables.ChainTypeNAT, hook: hook, priority: prio, rules: rules}
}

func filterChain(name string, hook *nftables.ChainHook, rules ...rule) chainSpec {
	return chainSpec{name: name, typ: nftables.ChainTypeFilter, hook: hook, priority: nftables.ChainPriorityFilter, rules: rules}
}
