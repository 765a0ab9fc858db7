package nftrule

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// IPv6 and neighbour discovery keys. The ND fields are read at their offsets in the ICMPv6
// message (RFC 4861): the target address of a neighbour solicitation or advertisement, and
// the address of a link-layer address option that follows the target directly.
var (
	KeyIP6Saddr = PayloadKey("ip6 saddr", expr.PayloadBaseNetworkHeader, 8, 16)
	KeyIP6Daddr = PayloadKey("ip6 daddr", expr.PayloadBaseNetworkHeader, 24, 16)
	KeyNDTarget = PayloadKey("@th,64,128", expr.PayloadBaseTransportHeader, 8, 16)
	KeyNDOptMAC = PayloadKey("@th,208,48", expr.PayloadBaseTransportHeader, 26, 6)
	// The last byte of the target address alone.
	KeyNDTargetLast = PayloadKey("@th,184,8", expr.PayloadBaseTransportHeader, 23, 1)
)

// OneByte is the key type of a set keyed by a one-byte raw field (KeyNDTargetLast): nft(8)
// declares such a set by its key (typeof) and lists one made through netlink as "type 0".
var OneByte = func() nftables.SetDatatype { t := nftables.TypeInteger; t.Bytes = 1; return t }()

// ICMPv6 types that neighbour discovery uses.
const (
	ICMPv6RouterSolicit    = 133
	ICMPv6RouterAdvert     = 134
	ICMPv6NeighborSolicit  = 135
	ICMPv6NeighborAdvert   = 136
	ICMPv6Redirect         = 137
	NDOptSourceLinkAddr    = 1
	NDOptTargetLinkAddr    = 2
	ndMessageLen           = 24 // ICMPv6 header, flags or reserved, target
	ndMessageWithOptionLen = 32 // and one link-layer address option for Ethernet
)

var icmpv6Names = map[byte]string{
	ICMPv6RouterSolicit: "nd-router-solicit", ICMPv6RouterAdvert: "nd-router-advert",
	ICMPv6NeighborSolicit: "nd-neighbor-solicit", ICMPv6NeighborAdvert: "nd-neighbor-advert",
	ICMPv6Redirect: "nd-redirect",
}

// ICMPv6Type matches an ICMPv6 message of the given type, with the meta l4proto guard that
// nft(8) adds implicitly: the transport header is ICMPv6 behind any extension headers.
func ICMPv6Type(typ byte) Match {
	name := icmpv6Names[typ]
	if name == "" {
		name = fmt.Sprint(typ)
	}
	return Match{
		Text: "icmpv6 type " + name,
		Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{unix.IPPROTO_ICMPV6}},
			&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{typ}},
		},
	}
}

// IP6Length matches the IPv6 payload length, which counts any extension headers too.
func IP6Length(n uint16) Match {
	return Match{
		Text: fmt.Sprintf("ip6 length %d", n),
		Exprs: []expr.Any{
			&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: 4, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: binary.BigEndian.AppendUint16(nil, n)},
		},
	}
}

// NDBare matches a neighbour solicitation or advertisement that is nothing but its header and
// target: no extension header, no option.
func NDBare() Match { return IP6Length(ndMessageLen) }

// NDOneLinkAddr matches a neighbour solicitation or advertisement that carries exactly one
// option, a link-layer address option of type opt for an Ethernet address, right after the
// target (and no extension header): where KeyNDOptMAC reads it.
func NDOneLinkAddr(opt byte) Match {
	m := IP6Length(ndMessageWithOptionLen)
	m.Text += fmt.Sprintf(" @th,192,16 0x%02x01", opt)
	m.Exprs = append(m.Exprs,
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 24, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{opt, 1}},
	)
	return m
}

// ND matches neighbour solicitations and advertisements, the messages that resolve addresses
// (address resolution's counterpart of ARP): one match for either, by a lookup of the type
// in an anonymous range.
func ND() Match {
	return Match{
		Text: "icmpv6 type 135-136",
		Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{unix.IPPROTO_ICMPV6}},
			&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
			&expr.Range{Op: expr.CmpOpEq, Register: reg, FromData: []byte{ICMPv6NeighborSolicit}, ToData: []byte{ICMPv6NeighborAdvert}},
		},
	}
}

// Daddr6 matches one IPv6 destination address.
func Daddr6(a netip.Addr) Match { return ip6Field("daddr", 24, netip.PrefixFrom(a, 128)) }

// ip6Field matches the IPv6 source (offset 8) or destination (24) against a prefix, comparing
// whole bytes alone and masking the last partial one, as nft(8) does.
func ip6Field(kw string, offset uint32, p netip.Prefix) Match {
	a := p.Masked().Addr().As16()
	n := uint32((p.Bits() + 7) / 8)
	ex := []expr.Any{&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: n}}
	if p.Bits()%8 != 0 {
		mask := make([]byte, n)
		for i := range mask {
			mask[i] = 0xff
		}
		mask[n-1] = byte(0xff << (8 - p.Bits()%8))
		ex = append(ex, &expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: n, Mask: mask, Xor: make([]byte, n)})
	}
	ex = append(ex, &expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: a[:n]})
	s := p.String()
	if p.Bits() == 128 {
		s = p.Addr().String()
	}
	return Match{Text: fmt.Sprintf("ip6 %s %s", kw, s), Exprs: ex}
}

// Saddr6 matches the IPv6 source against a prefix.
func Saddr6(p netip.Prefix) Match { return ip6Field("saddr", 8, p) }

// Daddr6Prefix matches the IPv6 destination against a prefix.
func Daddr6Prefix(p netip.Prefix) Match { return ip6Field("daddr", 24, p) }

// DNAT6 rewrites the IPv6 destination to address to, port port.
func DNAT6(to netip.Addr, port uint16) Match {
	a := to.As16()
	return Match{
		Text: fmt.Sprintf("dnat to [%s]:%d", to, port),
		Exprs: []expr.Any{
			immediate(1, a[:]),
			immediate(2, binary.BigEndian.AppendUint16(nil, port)),
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV6, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
		},
	}
}
