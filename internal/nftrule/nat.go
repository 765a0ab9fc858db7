package nftrule

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The pieces of service addresses' rules: balancing NAT and conntrack matches.

// KeyCtMark is the connection's mark, host order as the kernel keeps it.
var KeyCtMark = Key{Text: "ct mark", Len: 4, from: fromCt, ct: expr.CtKeyMARK}

// NFProto matches the packet's family in an inet table: "ipv4" or "ipv6".
func NFProto(family string) Match {
	p := byte(unix.NFPROTO_IPV4)
	if family == "ipv6" {
		p = unix.NFPROTO_IPV6
	}
	return Match{Text: "meta nfproto " + family, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{p}},
	}}
}

// CtMarkSet sets the connection's mark.
func CtMarkSet(v uint32) Match {
	return Match{Text: fmt.Sprintf("ct mark set 0x%08x", v), Exprs: []expr.Any{
		immediate(reg, binary.NativeEndian.AppendUint32(nil, v)),
		&expr.Ct{Register: reg, SourceRegister: true, Key: expr.CtKeyMARK},
	}}
}

// CtMark matches the connection's mark.
func CtMark(v uint32) Match {
	return Match{Text: fmt.Sprintf("ct mark 0x%08x", v), Exprs: []expr.Any{
		&expr.Ct{Register: reg, Key: expr.CtKeyMARK},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: binary.NativeEndian.AppendUint32(nil, v)},
	}}
}

// CtMarkNonzero matches a connection with any mark.
func CtMarkNonzero() Match {
	return Match{Text: "ct mark != 0x00000000", Exprs: []expr.Any{
		&expr.Ct{Register: reg, Key: expr.CtKeyMARK},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg, Data: []byte{0, 0, 0, 0}},
	}}
}

func ctBits(key expr.CtKey, text string, bits uint32) Match {
	mask := binary.NativeEndian.AppendUint32(nil, bits)
	return Match{Text: text, Exprs: []expr.Any{
		&expr.Ct{Register: reg, Key: key},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg, Data: []byte{0, 0, 0, 0}},
	}}
}

// CtNew matches the first packet of a connection.
func CtNew() Match { return ctBits(expr.CtKeySTATE, "ct state new", expr.CtStateBitNEW) }

// CtDNAT matches packets, either way, of a connection whose destination was translated.
func CtDNAT() Match { return ctBits(expr.CtKeySTATUS, "ct status dnat", ipsDstNAT) }

// DNATMap rewrites the destination to the address map m gives for a number counted round
// (inc) or drawn at random from 0 to mod-1: `dnat ip to numgen inc mod 3 map @m`. The
// numbers are host order, as m's keys (NumgenKey) are.
func DNATMap(ipv6, random bool, mod uint32, m *nftables.Set) Match {
	typ, kind := uint32(unix.NFT_NG_INCREMENTAL), "inc"
	if random {
		typ, kind = unix.NFT_NG_RANDOM, "random"
	}
	fam, famText := uint32(unix.NFPROTO_IPV4), "ip"
	if ipv6 {
		fam, famText = unix.NFPROTO_IPV6, "ip6"
	}
	return Match{
		Text: fmt.Sprintf("dnat %s to numgen %s mod %d map @%s", famText, kind, mod, m.Name),
		Exprs: []expr.Any{
			&expr.Numgen{Register: reg, Modulus: mod, Type: typ},
			&expr.Lookup{SourceRegister: reg, DestRegister: reg, IsDestRegSet: true, SetName: m.Name, SetID: m.ID},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: fam, RegAddrMin: reg},
		},
	}
}

// NumgenKey is the key of number n in a map DNATMap looks up.
func NumgenKey(n uint32) []byte { return binary.NativeEndian.AppendUint32(nil, n) }

// SNATPrefix rewrites the source to the same host part in another network: the bits of the
// source outside net's prefix are kept, those inside it are net's (`snat ip to ip saddr &
// 0.0.0.255 | 10.0.2.0`).
func SNATPrefix(net netip.Prefix) Match {
	a := net.Masked().Addr()
	n := uint32(a.BitLen() / 8)
	host := make([]byte, n)
	for i := range host {
		bit := i * 8
		switch {
		case bit >= net.Bits():
			host[i] = 0xff
		case bit+8 > net.Bits():
			host[i] = 0xff >> (net.Bits() - bit)
		}
	}
	offset, fam, kw := uint32(12), uint32(unix.NFPROTO_IPV4), "ip"
	if a.Is6() {
		offset, fam, kw = 8, unix.NFPROTO_IPV6, "ip6"
	}
	hostText := netip.AddrFrom4([4]byte(host[:4])).String()
	if a.Is6() {
		hostText = netip.AddrFrom16([16]byte(host)).String()
	}
	return Match{
		Text: fmt.Sprintf("snat %s to %s saddr & %s | %s", kw, kw, hostText, a),
		Exprs: []expr.Any{
			&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: n},
			&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: n, Mask: host, Xor: a.AsSlice()},
			&expr.NAT{Type: expr.NATTypeSourceNAT, Family: fam, RegAddrMin: reg},
		},
	}
}

// RejectPortUnreachable drops the packet and answers it with an ICMP (or ICMPv6) port
// unreachable, what a host without a listener on the port answers for UDP.
func RejectPortUnreachable() Match {
	return Match{
		Text:  "reject with icmpx port-unreachable",
		Exprs: []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH}},
	}
}

// ipsDstNAT is IPS_DST_NAT of the connection's status bits.
const ipsDstNAT = 1 << 5

// CtOriginal matches packets going the way the connection's first packet went.
func CtOriginal() Match {
	return Match{Text: "ct direction original", Exprs: []expr.Any{
		&expr.Ct{Register: reg, Key: expr.CtKeyDIRECTION},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{0}},
	}}
}

// CtReply matches packets going the way the connection's replies go.
func CtReply() Match {
	return Match{Text: "ct direction reply", Exprs: []expr.Any{
		&expr.Ct{Register: reg, Key: expr.CtKeyDIRECTION},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{1}},
	}}
}

// NotCtNew matches packets of a connection past its first packet.
func NotCtNew() Match {
	mask := binary.NativeEndian.AppendUint32(nil, expr.CtStateBitNEW)
	return Match{Text: "ct state != new", Exprs: []expr.Any{
		&expr.Ct{Register: reg, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{0, 0, 0, 0}},
	}}
}

// CtMarkSetMap sets the connection's mark to what map m gives for the concatenation of keys;
// a packet whose key m lacks ends the rule there, unchanged.
func CtMarkSetMap(m *nftables.Set, keys ...Key) Match {
	ex, text := loadKeys(keys)
	l := lookup(m)
	l.DestRegister, l.IsDestRegSet = reg, true
	return Match{Text: "ct mark set " + text + " map @" + m.Name,
		Exprs: append(ex, l, &expr.Ct{Register: reg, SourceRegister: true, Key: expr.CtKeyMARK})}
}
