package nftwire

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
	mnl "github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The library decodes the rules it lists into its own types and drops, without a word, every
// expression it has no type for (google/nftables v0.3.0 has none for byteorder, notrack, fwd,
// dup's netdev form, ...), and the chains it lists without their device. A check of what the
// kernel enforces cannot go by that: Rules and Chains report them as the kernel encodes them.

// Rule is a rule as the kernel reports it.
type Rule struct {
	Chain    string
	UserData []byte
	Exprs    []Expr
}

// Expr is an expression of a rule: its name and its data, as the kernel encodes them.
type Expr struct {
	Name string
	Data []byte
}

// Chain is a chain as the kernel reports it. Hooked tells a base chain, whose Type, Hook,
// Priority, Device (devices joined by commas when it has several) and Policy say where it
// sits and what it does with what no rule decides.
type Chain struct {
	Name, Type, Device string
	Hooked             bool
	Hook               uint32
	Priority           int32
	Policy             uint32
}

// Rules lists the rules of table in family, of every chain, in each chain's order.
func (c *Conn) Rules(family nftables.TableFamily, table string) ([]Rule, error) {
	msgs, err := c.dump(unix.NFT_MSG_GETRULE, family, func(ae *mnl.AttributeEncoder) {
		ae.String(unix.NFTA_RULE_TABLE, table)
	})
	if err != nil {
		return nil, fmt.Errorf("list the rules of table %s: %w", table, err)
	}
	out := make([]Rule, 0, len(msgs))
	for _, m := range msgs {
		var r Rule
		var of string
		err := decode(m.Data[4:], func(ad *mnl.AttributeDecoder) {
			switch ad.Type() {
			case unix.NFTA_RULE_TABLE:
				of = ad.String()
			case unix.NFTA_RULE_CHAIN:
				r.Chain = ad.String()
			case unix.NFTA_RULE_USERDATA:
				r.UserData = ad.Bytes()
			case unix.NFTA_RULE_EXPRESSIONS:
				ad.Nested(func(ad *mnl.AttributeDecoder) error {
					for ad.Next() {
						var e Expr
						ad.Nested(func(ad *mnl.AttributeDecoder) error {
							for ad.Next() {
								switch ad.Type() {
								case unix.NFTA_EXPR_NAME:
									e.Name = ad.String()
								case unix.NFTA_EXPR_DATA:
									e.Data = ad.Bytes()
								}
							}
							return nil
						})
						r.Exprs = append(r.Exprs, e)
					}
					return nil
				})
			}
		})
		if err != nil {
			return nil, fmt.Errorf("a rule of table %s: %w", table, err)
		}
		if of == table {
			out = append(out, r)
		}
	}
	return out, nil
}

// Chains lists the chains of table in family.
func (c *Conn) Chains(family nftables.TableFamily, table string) ([]Chain, error) {
	msgs, err := c.dump(unix.NFT_MSG_GETCHAIN, family, func(ae *mnl.AttributeEncoder) {
		ae.String(unix.NFTA_CHAIN_TABLE, table)
	})
	if err != nil {
		return nil, fmt.Errorf("list the chains of table %s: %w", table, err)
	}
	var out []Chain
	for _, m := range msgs {
		var ch Chain
		var of string
		var devs []string
		err := decode(m.Data[4:], func(ad *mnl.AttributeDecoder) {
			switch ad.Type() {
			case unix.NFTA_CHAIN_TABLE:
				of = ad.String()
			case unix.NFTA_CHAIN_NAME:
				ch.Name = ad.String()
			case unix.NFTA_CHAIN_TYPE:
				ch.Type = ad.String()
			case unix.NFTA_CHAIN_POLICY:
				ch.Policy = ad.Uint32()
			case unix.NFTA_CHAIN_HOOK:
				ch.Hooked = true
				ad.Nested(func(ad *mnl.AttributeDecoder) error {
					for ad.Next() {
						switch ad.Type() {
						case unix.NFTA_HOOK_HOOKNUM:
							ch.Hook = ad.Uint32()
						case unix.NFTA_HOOK_PRIORITY:
							ch.Priority = int32(ad.Uint32())
						case unix.NFTA_HOOK_DEV:
							ch.Device = ad.String()
						case nftaHookDevs:
							// A chain of several devices, or of a prefix (6.16), names
							// them here only.
							ad.Nested(func(ad *mnl.AttributeDecoder) error {
								for ad.Next() {
									dev := ad.String()
									if ad.Type() == nftaDevicePrefix {
										dev += "*"
									}
									devs = append(devs, dev)
								}
								return nil
							})
						}
					}
					return nil
				})
			}
		})
		if err != nil {
			return nil, fmt.Errorf("a chain of table %s: %w", table, err)
		}
		if len(devs) > 1 || len(devs) == 1 && ch.Device == "" {
			ch.Device = strings.Join(devs, ",")
		}
		if of == table {
			out = append(out, ch)
		}
	}
	return out, nil
}

// dump sends a listing request of type typ and returns the answers' messages (without the
// closing one). The kernel filters some listings by the table named and not others (chains:
// it lists every table's), so the callers keep what is of their table.
func (c *Conn) dump(typ int, family nftables.TableFamily, attrs func(*mnl.AttributeEncoder)) ([]mnl.Message, error) {
	m, err := holdsMessage(typ, family, attrs)
	if err != nil {
		return nil, err
	}
	m.Header.Flags |= mnl.Dump
	answers, err := c.w.request([]mnl.Message{m})
	if err != nil {
		return nil, err
	}
	var out []mnl.Message
	for _, a := range answers {
		if errno := answerErrno(a); errno != 0 {
			return nil, errno
		}
		if a.Header.Type != mnl.Done && a.Header.Type != mnl.Error && len(a.Data) >= 4 {
			out = append(out, a)
		}
	}
	return out, nil
}

// decode calls each for every attribute of data, big-endian as nftables encodes numbers.
func decode(data []byte, each func(*mnl.AttributeDecoder)) error {
	ad, err := mnl.NewAttributeDecoder(data)
	if err != nil {
		return err
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		each(ad)
	}
	return ad.Err()
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
			lists := isList(p.data) && isList(q.data)
			switch {
			case bytes.Equal(p.data, q.data) && p.nested == q.nested:
			case !lists:
				return false
			case !sameAttrs(p.data, q.data, p.nested || q.nested):
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

// NFTA_HOOK_DEVS and NFTA_DEVICE_PREFIX (linux/netfilter/nf_tables.h), which x/sys does not
// name.
const (
	nftaHookDevs     = 4
	nftaDevicePrefix = 2
)
