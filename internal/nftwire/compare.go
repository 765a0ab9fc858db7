package nftwire

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"slices"

	"github.com/google/nftables/expr"
	mnl "github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// What a request carries and what the kernel reports back of it differ in form but not in
// meaning; these compare them by meaning.

// Encode is e as a request carries it, less the batch-local ID of a set it looks up or
// updates: the kernel reports the set by its name only.
func Encode(fam byte, e expr.Any) (Expr, error) {
	switch v := e.(type) {
	case *expr.Lookup:
		c := *v
		c.SetID = 0
		e = &c
	case *expr.Dynset:
		c := *v
		c.SetID = 0
		e = &c
	case *expr.NAT:
		// The kernel reports a range's end register as its start when a request gave no end.
		c := *v
		if c.RegAddrMax == 0 {
			c.RegAddrMax = c.RegAddrMin
		}
		if c.RegProtoMax == 0 {
			c.RegProtoMax = c.RegProtoMin
		}
		e = &c
	}
	b, err := expr.Marshal(fam, e)
	if err != nil {
		return Expr{}, err
	}
	var out Expr
	err = decode(b, func(ad *mnl.AttributeDecoder) {
		switch ad.Type() {
		case unix.NFTA_EXPR_NAME:
			out.Name = ad.String()
		case unix.NFTA_EXPR_DATA:
			out.Data = ad.Bytes()
		}
	})
	if n, ok := e.(*expr.NAT); ok && err == nil && n.RegAddrMin != 0 {
		out.Data, err = withNATFlag(out.Data, natRangeMapIPs)
	}
	return out, err
}

// natRangeMapIPs is NF_NAT_RANGE_MAP_IPS: the kernel sets it on a NAT expression that maps
// to an address, and reports it, while the library has no field for it.
const natRangeMapIPs = 1

// withNATFlag is a nat expression's data with flag set in its flags.
func withNATFlag(data []byte, flag uint32) ([]byte, error) {
	ad, err := mnl.NewAttributeDecoder(data)
	if err != nil {
		return nil, err
	}
	ad.ByteOrder = binary.BigEndian
	ae := mnl.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	flags := flag
	for ad.Next() {
		if ad.Type() == unix.NFTA_NAT_FLAGS {
			flags |= ad.Uint32()
			continue
		}
		ae.Bytes(ad.Type(), ad.Bytes())
	}
	if err := ad.Err(); err != nil {
		return nil, err
	}
	ae.Uint32(unix.NFTA_NAT_FLAGS, flags)
	return ae.Encode()
}

// SameExpr tells whether have, as the kernel reports it, does what want (Encode) does. A
// counter goes by being there: its values are the kernel's.
func SameExpr(want, have Expr) bool {
	return want.Name == have.Name && (want.Name == "counter" || SameData(want.Data, have.Data))
}

// SameExprs tells whether the kernel's expressions of a rule (have) do what want's do, in
// the family fam.
func SameExprs(fam byte, want []expr.Any, have []Expr) bool {
	if len(want) != len(have) {
		return false
	}
	for i, e := range want {
		w, err := Encode(fam, e)
		if err != nil || !SameExpr(w, have[i]) {
			return false
		}
	}
	return true
}

// SameData tells whether two expressions' data say the same: the same attributes, those of
// a type found once in any order, where an attribute only one side has counts when it is not
// all zeros (the kernel reports flags and operations at their default that a request may
// leave out). The kernel's dumps do not flag what they nest (NLA_F_NESTED) and a request
// flags only some of it, so two attributes that differ in that flag alone are compared as
// nested when both hold a list of attributes; two that hold lists, neither flagged, are
// compared so too, then with no allowance for zeros; anything else by its bytes.
func SameData(a, b []byte) bool { return sameAttrs(a, b, true) }

func sameAttrs(a, b []byte, lenient bool) bool {
	if bytes.Equal(a, b) {
		return true
	}
	x, ok1 := attrs(a)
	y, ok2 := attrs(b)
	if !ok1 || !ok2 {
		return false
	}
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case j == len(y) || i < len(x) && x[i].typ < y[j].typ:
			if !lenient || !zero(x[i].data) {
				return false
			}
			i++
		case i == len(x) || y[j].typ < x[i].typ:
			if !lenient || !zero(y[j].data) {
				return false
			}
			j++
		default:
			p, q := x[i], y[j]
			same := bytes.Equal(p.data, q.data) && p.nested == q.nested
			if !same && !(isList(p.data) && isList(q.data) && sameAttrs(p.data, q.data, p.nested || q.nested)) {
				return false
			}
			i, j = i+1, j+1
		}
	}
	return true
}

type attr struct {
	typ    uint16 // without NLA_F_NESTED (NLA_F_NET_BYTEORDER stays: it changes the value)
	nested bool
	data   []byte
}

// attrs splits data into its attributes, ordered by type (those of one type, a list's
// members, in their order); false when data is not a list of attributes.
func attrs(data []byte) ([]attr, bool) {
	var out []attr
	for len(data) >= 4 {
		l := int(binary.NativeEndian.Uint16(data))
		t := binary.NativeEndian.Uint16(data[2:])
		if l < 4 || l > len(data) {
			return nil, false
		}
		out = append(out, attr{typ: t &^ unix.NLA_F_NESTED, nested: t&unix.NLA_F_NESTED != 0, data: data[4:l]})
		data = data[min((l+3)&^3, len(data)):]
	}
	if len(data) != 0 {
		return nil, false
	}
	slices.SortStableFunc(out, func(a, b attr) int { return cmp.Compare(a.typ, b.typ) })
	return out, true
}

// isList tells data that reads as a non-empty list of attributes.
func isList(data []byte) bool {
	l, ok := attrs(data)
	return ok && len(l) > 0
}

func zero(b []byte) bool { return !slices.ContainsFunc(b, func(c byte) bool { return c != 0 }) }
