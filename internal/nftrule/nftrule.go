// Package nftrule builds the pieces of pontoon's nftables rules. Each piece is a Match: its
// nft(8) syntax and the expressions it compiles to, built from one value, so the text that
// --dry-run and status print and the rule the kernel gets cannot drift apart. Every rule
// pontoon installs, in any table, is built here. Values are encoded as nft(8) encodes the
// same text (MetaClear and a lookup of host-order meta fields are the exceptions, said
// there), so `nft list ruleset` reads pontoon's rules back as the text says.
package nftrule

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"
)

// Match is one piece of an nftables rule.
type Match struct {
	Text  string
	Exprs []expr.Any
}

// Rule is a rule as the sequence of its pieces, verdict last.
type Rule []Match

// Text renders the rule in nft syntax.
func (r Rule) Text() string {
	parts := make([]string, len(r))
	for i, m := range r {
		parts[i] = m.Text
	}
	return strings.Join(parts, " ")
}

// Exprs is the rule as the kernel takes it.
func (r Rule) Exprs() []expr.Any {
	var out []expr.Any
	for _, m := range r {
		out = append(out, m.Exprs...)
	}
	return out
}

// reg is the register every single-field match loads into: NFT_REG_1, as nft(8) uses.
const reg = 1

// IfnameBytes is an interface name as nft(8) compares it and as an ifname set or map key
// holds it: the whole IFNAMSIZ buffer, padded with NULs. The kernel keeps names NUL-padded
// to IFNAMSIZ too, so a shorter encoding would match the same interfaces; the full buffer is
// what `nft` itself writes for an exact name, so rules read back byte for byte as nft(8)
// would have made them.
func IfnameBytes(name string) []byte {
	data := make([]byte, unix.IFNAMSIZ)
	copy(data, name)
	return data
}

// ifname matches the input or output interface name. A trailing '*' matches every name that
// starts with the rest; like nft(8), that compares only the prefix's bytes (no NUL, no
// padding), which is what makes it a prefix match.
func ifname(key expr.MetaKey, kw string, op expr.CmpOp, name string) Match {
	data := IfnameBytes(name)
	if p, ok := strings.CutSuffix(name, "*"); ok {
		data = []byte(p)
	}
	return Match{
		Text: fmt.Sprintf("%s %s%q", kw, opText(op), name),
		Exprs: []expr.Any{
			&expr.Meta{Key: key, Register: reg},
			&expr.Cmp{Op: op, Register: reg, Data: data},
		},
	}
}

func opText(op expr.CmpOp) string {
	if op == expr.CmpOpNeq {
		return "!= "
	}
	return ""
}

// Iifname matches the interface a packet came in on; "name*" matches a prefix.
func Iifname(name string) Match { return ifname(expr.MetaKeyIIFNAME, "iifname", expr.CmpOpEq, name) }

// Oifname matches the interface a packet goes out of; "name*" matches a prefix.
func Oifname(name string) Match { return ifname(expr.MetaKeyOIFNAME, "oifname", expr.CmpOpEq, name) }

// NotOifname matches a packet going out of any other interface than name.
func NotOifname(name string) Match {
	return ifname(expr.MetaKeyOIFNAME, "oifname", expr.CmpOpNeq, name)
}

// ipField matches an IPv4 address field of the network header (kw names it as nft(8) does:
// "ip saddr" at offset 12, "ip daddr" at 16, "arp daddr ip" at 24) against a prefix or
// address. Like nft(8), it compares a prefix of whole bytes as those bytes alone and masks
// any other.
func ipField(kw string, offset uint32, p netip.Prefix, op expr.CmpOp) Match {
	a, n := p.Masked().Addr().As4(), uint32(4)
	if p.Bits() > 0 && p.Bits()%8 == 0 {
		n = uint32(p.Bits() / 8)
	}
	ex := []expr.Any{&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: n}}
	if p.Bits()%8 != 0 || p.Bits() == 0 {
		m := binary.BigEndian.AppendUint32(nil, ^uint32(0)<<(32-p.Bits()))
		ex = append(ex, &expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4, Mask: m, Xor: []byte{0, 0, 0, 0}})
	}
	ex = append(ex, &expr.Cmp{Op: op, Register: reg, Data: a[:n]})
	s := p.String()
	if p.Bits() == 32 {
		s = p.Addr().String()
	}
	return Match{Text: fmt.Sprintf("%s %s%s", kw, opText(op), s), Exprs: ex}
}

// Saddr matches the IPv4 source against a prefix (Host for one address).
func Saddr(p netip.Prefix) Match { return ipField("ip saddr", 12, p, expr.CmpOpEq) }

// NotSaddr matches an IPv4 source outside the prefix.
func NotSaddr(p netip.Prefix) Match { return ipField("ip saddr", 12, p, expr.CmpOpNeq) }

// Daddr matches the IPv4 destination against a prefix (Host for one address).
func Daddr(p netip.Prefix) Match { return ipField("ip daddr", 16, p, expr.CmpOpEq) }

// NotDaddr matches an IPv4 destination outside the prefix.
func NotDaddr(p netip.Prefix) Match { return ipField("ip daddr", 16, p, expr.CmpOpNeq) }

// ARPRequest matches an ARP request (operation 1); the frame's protocol is checked before.
func ARPRequest() Match {
	return Match{Text: "arp operation request", Exprs: []expr.Any{
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: 6, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{0, 1}},
	}}
}

// ARPTargetIn matches an ARP target address (at its Ethernet/IPv4 offset) in the prefix.
func ARPTargetIn(p netip.Prefix) Match { return ipField("arp daddr ip", 24, p, expr.CmpOpEq) }

// Host is the prefix of one IPv4 address.
func Host(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, 32) }

func protocol(name string, ethertype uint16, op expr.CmpOp) Match {
	return Match{
		Text: "meta protocol " + opText(op) + name,
		Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: reg},
			&expr.Cmp{Op: op, Register: reg, Data: binary.BigEndian.AppendUint16(nil, ethertype)},
		},
	}
}

// Protocol matches the packet's ethertype (meta protocol), named as nft(8) names it (ip,
// arp, ip6).
func Protocol(name string, ethertype uint16) Match { return protocol(name, ethertype, expr.CmpOpEq) }

// EtherType matches the ethertype the frame carries after its addresses (ether type), named
// as nft(8) names it. Unlike meta protocol it sees a VLAN tag, which the kernel moves out of
// the frame on receipt and which leaves meta protocol naming the protocol inside the tag:
// the kernel puts the tag back for this read.
func EtherType(name string, ethertype uint16) Match {
	return Match{
		Text: "ether type " + name,
		Exprs: []expr.Any{
			&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseLLHeader, Offset: 12, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: binary.BigEndian.AppendUint16(nil, ethertype)},
		},
	}
}

// NotProtocol matches every other ethertype than the one given.
func NotProtocol(name string, ethertype uint16) Match {
	return protocol(name, ethertype, expr.CmpOpNeq)
}

// l4protoExprs match "udp", or else TCP.
func l4protoExprs(proto string) []expr.Any {
	p := byte(unix.IPPROTO_TCP)
	if proto == "udp" {
		p = unix.IPPROTO_UDP
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{p}},
	}
}

// L4Proto matches the transport protocol, "tcp" or "udp" (meta l4proto).
func L4Proto(proto string) Match {
	return Match{Text: "meta l4proto " + proto, Exprs: l4protoExprs(proto)}
}

// Dport matches a "tcp" or "udp" destination port. The port's bytes mean a port only in
// that protocol's header, so the match carries the meta l4proto guard that nft(8) writes
// implicitly (and does not print).
func Dport(proto string, port uint16) Match {
	return Match{
		Text: fmt.Sprintf("%s dport %d", proto, port),
		Exprs: append(l4protoExprs(proto),
			&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: binary.BigEndian.AppendUint16(nil, port)},
		),
	}
}

// NoSYN matches a TCP segment without SYN, i.e. one of a connection already under way. It
// reads the TCP header, so it belongs after L4Proto("tcp").
func NoSYN() Match {
	return Match{
		Text: "tcp flags & syn == 0",
		Exprs: []expr.Any{
			&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
			&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 1, Mask: []byte{0x02}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{0}},
		},
	}
}

const ctEstablishedText = "ct state established,related"

// CtEstablished matches packets of a connection conntrack has seen both ways, or related to one.
func CtEstablished() Match {
	mask := binary.NativeEndian.AppendUint32(nil, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED)
	return Match{
		Text: ctEstablishedText,
		Exprs: []expr.Any{
			&expr.Ct{Register: reg, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: reg, Data: []byte{0, 0, 0, 0}},
		},
	}
}

// CtEstablishedXtables is CtEstablished as the xtables conntrack match that iptables itself
// writes for -m conntrack --ctstate ESTABLISHED,RELATED. A chain iptables-nft manages must
// get this form: iptables-nft cannot read a native "ct state" expression and then refuses to
// list, check or save the whole chain.
func CtEstablishedXtables() Match {
	return Match{Text: ctEstablishedText, Exprs: []expr.Any{&expr.Match{Name: "conntrack", Rev: 3, Info: &xt.ConntrackMtinfo3{
		ConntrackMtinfo2: xt.ConntrackMtinfo2{
			ConntrackMtinfoBase: xt.ConntrackMtinfoBase{MatchFlags: uint16(xt.ConntrackState)},
			StateMask:           uint16(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
		},
	}}}}
}

// RandomBelow matches with probability below/mod: a random number in [0, mod) is below
// below. numgen yields a host-order integer and cmp compares bytes, so the number is
// converted to network order first, as nft(8) does.
func RandomBelow(mod, below uint32) Match {
	return Match{
		Text: fmt.Sprintf("numgen random mod %d < %d", mod, below),
		Exprs: []expr.Any{
			&expr.Numgen{Register: reg, Modulus: mod, Type: unix.NFT_NG_RANDOM},
			&expr.Byteorder{SourceRegister: reg, DestRegister: reg, Op: expr.ByteorderHton, Len: 4, Size: 4},
			&expr.Cmp{Op: expr.CmpOpLt, Register: reg, Data: binary.BigEndian.AppendUint32(nil, below)},
		},
	}
}

func verdict(k expr.VerdictKind, text string) Match {
	return Match{Text: text, Exprs: []expr.Any{&expr.Verdict{Kind: k}}}
}

// Accept ends the chain's processing of the packet with accept.
func Accept() Match { return verdict(expr.VerdictAccept, "accept") }

// Drop drops the packet.
func Drop() Match { return verdict(expr.VerdictDrop, "drop") }

// Jump goes on in chain, and comes back when chain ends without a verdict.
func Jump(chain string) Match {
	return Match{Text: "jump " + chain, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: chain}}}
}

// RejectTCPReset drops the packet and answers it with a TCP reset; for TCP only.
func RejectTCPReset() Match {
	return Match{Text: "reject with tcp reset", Exprs: []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_TCP_RST}}}
}

// RejectAdminProhibited drops the packet and answers it with an ICMP (or ICMPv6)
// "administratively prohibited" of the packet's family.
func RejectAdminProhibited() Match {
	return Match{
		Text:  "reject with icmpx admin-prohibited",
		Exprs: []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED}},
	}
}

// Masquerade rewrites the source to the address of the interface the packet leaves by.
func Masquerade() Match { return Match{Text: "masquerade", Exprs: []expr.Any{&expr.Masq{}}} }

// immediate loads data into register r, for a statement that follows.
func immediate(r uint32, data []byte) expr.Any { return &expr.Immediate{Register: r, Data: data} }

// DNAT rewrites the destination to address to, port port.
func DNAT(to netip.Addr, port uint16) Match {
	a := to.As4()
	return Match{
		Text: fmt.Sprintf("dnat to %s:%d", to, port),
		Exprs: []expr.Any{
			immediate(1, a[:]),
			immediate(2, binary.BigEndian.AppendUint16(nil, port)),
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
		},
	}
}
