package nftrule

import (
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Key is one field of a set or map key: its nft syntax, its length in bytes and where the
// kernel loads it from. It is plain data, so that the keys below cost no start-up code.
type Key struct {
	Text string
	Len  uint32
	from keySource
	base expr.PayloadBase // payload
	off  uint32           // payload
	meta expr.MetaKey     // meta
	ct   expr.CtKey       // ct
}

type keySource uint8

const (
	fromPayload keySource = iota
	fromMeta
	fromCt
)

// PayloadKey is a field of a packet header.
func PayloadKey(text string, base expr.PayloadBase, offset, n uint32) Key {
	return Key{Text: text, Len: n, from: fromPayload, base: base, off: offset}
}

// MetaKey is a field of the packet's metadata.
func MetaKey(text string, key expr.MetaKey, n uint32) Key {
	return Key{Text: text, Len: n, from: fromMeta, meta: key}
}

// load loads the key into register r.
func (k Key) load(r uint32) expr.Any {
	switch k.from {
	case fromMeta:
		return &expr.Meta{Key: k.meta, Register: r}
	case fromCt:
		return &expr.Ct{Register: r, Key: k.ct}
	}
	return &expr.Payload{DestRegister: r, Base: k.base, Offset: k.off, Len: k.Len}
}

// The keys pontoon's sets and maps use.
var (
	KeyEtherSaddr = PayloadKey("ether saddr", expr.PayloadBaseLLHeader, 6, 6)
	KeyEtherDaddr = PayloadKey("ether daddr", expr.PayloadBaseLLHeader, 0, 6)
	KeyIPSaddr    = PayloadKey("ip saddr", expr.PayloadBaseNetworkHeader, 12, 4)
	KeyIPDaddr    = PayloadKey("ip daddr", expr.PayloadBaseNetworkHeader, 16, 4)
	// The ARP sender fields, at the offsets of an Ethernet/IPv4 ARP header; the kernel
	// ignores ARP with other address lengths, so no other layout can update a neighbour.
	KeyARPSenderMAC = PayloadKey("arp saddr ether", expr.PayloadBaseNetworkHeader, 8, 6)
	KeyARPSenderIP  = PayloadKey("arp saddr ip", expr.PayloadBaseNetworkHeader, 14, 4)
	KeyARPTargetIP  = PayloadKey("arp daddr ip", expr.PayloadBaseNetworkHeader, 24, 4)
	KeyIifname      = MetaKey("iifname", expr.MetaKeyIIFNAME, 16)
	KeyOifname      = MetaKey("oifname", expr.MetaKeyOIFNAME, 16)
	KeyMark         = MetaKey("meta mark", expr.MetaKeyMARK, 4)
	KeyPriority     = MetaKey("meta priority", expr.MetaKeyPRIORITY, 4)
)

// loadKeys loads the concatenation of keys from NFT_REG_1 on, as nft(8) lays it out: each
// field starts on a 4-byte register boundary, and a field starting on a 16-byte boundary is
// addressed by its 16-byte register number (NFT_REG_1 + n), any other by its 32-bit one
// (NFT_REG32_00 + n). Both numbers name the same bytes; nft writes, and the kernel lists,
// the 16-byte one where there is one.
func loadKeys(keys []Key) ([]expr.Any, string) {
	var ex []expr.Any
	texts := make([]string, len(keys))
	word := uint32(0) // offset into the registers in 4-byte words
	for i, k := range keys {
		r := 8 + word // NFT_REG32_00 + word
		if word%4 == 0 {
			r = 1 + word/4 // NFT_REG_1 + word/4
		}
		ex = append(ex, k.load(r))
		texts[i] = k.Text
		word += (k.Len + 3) / 4
	}
	return ex, strings.Join(texts, " . ")
}

func lookup(set *nftables.Set) *expr.Lookup {
	return &expr.Lookup{SourceRegister: reg, SetName: set.Name, SetID: set.ID}
}

// InSet matches when the concatenation of keys is an element of set (by its name, and its
// ID when the set is added in the same batch). Fields are looked up as they are loaded: for
// host-order fields (meta mark, meta priority) of an interval set nft(8) would convert them
// to network order first, so such a set's elements must hold them as the packet does.
func InSet(set *nftables.Set, keys ...Key) Match {
	ex, text := loadKeys(keys)
	return Match{Text: text + " @" + set.Name, Exprs: append(ex, lookup(set))}
}

// MetaField is a field of the packet's metadata that a rule can set.
type MetaField struct {
	key  expr.MetaKey
	text string
	zero string // nft's name for the value 0
}

// The packet fields pontoon's rules set: the mark, and the priority (nft shows a priority
// as a tc class id, whose 0 is "none").
var (
	MetaMark     = MetaField{expr.MetaKeyMARK, "meta mark", "0"}
	MetaPriority = MetaField{expr.MetaKeyPRIORITY, "meta priority", "none"}
)

func (f MetaField) set() expr.Any { return &expr.Meta{Key: f.key, SourceRegister: true, Register: reg} }

// MetaSetMap stores in field the value that map m gives for the concatenation of keys; a
// packet whose key m lacks ends the rule there, unchanged.
func MetaSetMap(field MetaField, m *nftables.Set, keys ...Key) Match {
	ex, text := loadKeys(keys)
	l := lookup(m)
	l.DestRegister, l.IsDestRegSet = reg, true
	return Match{Text: field.text + " set " + text + " map @" + m.Name, Exprs: append(ex, l, field.set())}
}

// MetaClear sets each field to 0, from one register loaded once (nft(8) loads it again
// for each field; the kernel does the same either way).
func MetaClear(fields ...MetaField) Match {
	ex := []expr.Any{immediate(reg, make([]byte, 4))}
	texts := make([]string, len(fields))
	for i, f := range fields {
		ex = append(ex, f.set())
		texts[i] = f.text + " set " + f.zero
	}
	return Match{Text: strings.Join(texts, " "), Exprs: ex}
}

// ConcatKey is the element key of a set with a concatenated type: each field padded to whole
// 4-byte registers, as loadKeys loads the fields and as the kernel stores the elements.
func ConcatKey(fields ...[]byte) []byte {
	n := 0
	for _, f := range fields {
		n += (len(f) + 3) &^ 3
	}
	out, at := make([]byte, n), 0
	for _, f := range fields {
		copy(out[at:], f)
		at += (len(f) + 3) &^ 3
	}
	return out
}
