package nftwire

import (
	"encoding/binary"
	"fmt"
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
	msgs, err := c.dump(unix.NFT_MSG_GETRULE, family, unix.NFTA_RULE_TABLE, table)
	if err != nil {
		return nil, fmt.Errorf("list the rules of table %s: %w", table, err)
	}
	out := make([]Rule, 0, len(msgs))
	for _, m := range msgs {
		var r Rule
		err := decode(m.Data[4:], func(ad *mnl.AttributeDecoder) {
			switch ad.Type() {
			case unix.NFTA_RULE_CHAIN:
				r.Chain = ad.String()
			case unix.NFTA_RULE_USERDATA:
				r.UserData = ad.Bytes()
			case unix.NFTA_RULE_EXPRESSIONS:
				nested(ad, func(ad *mnl.AttributeDecoder) {
					var e Expr
					nested(ad, func(ad *mnl.AttributeDecoder) {
						switch ad.Type() {
						case unix.NFTA_EXPR_NAME:
							e.Name = ad.String()
						case unix.NFTA_EXPR_DATA:
							e.Data = ad.Bytes()
						}
					})
					r.Exprs = append(r.Exprs, e)
				})
			}
		})
		if err != nil {
			return nil, fmt.Errorf("a rule of table %s: %w", table, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// Chains lists the chains of table in family.
func (c *Conn) Chains(family nftables.TableFamily, table string) ([]Chain, error) {
	msgs, err := c.dump(unix.NFT_MSG_GETCHAIN, family, unix.NFTA_CHAIN_TABLE, table)
	if err != nil {
		return nil, fmt.Errorf("list the chains of table %s: %w", table, err)
	}
	var out []Chain
	for _, m := range msgs {
		var ch Chain
		var devs []string
		err := decode(m.Data[4:], func(ad *mnl.AttributeDecoder) {
			switch ad.Type() {
			case unix.NFTA_CHAIN_NAME:
				ch.Name = ad.String()
			case unix.NFTA_CHAIN_TYPE:
				ch.Type = ad.String()
			case unix.NFTA_CHAIN_POLICY:
				ch.Policy = ad.Uint32()
			case unix.NFTA_CHAIN_HOOK:
				ch.Hooked = true
				nested(ad, func(ad *mnl.AttributeDecoder) {
					switch ad.Type() {
					case unix.NFTA_HOOK_HOOKNUM:
						ch.Hook = ad.Uint32()
					case unix.NFTA_HOOK_PRIORITY:
						ch.Priority = int32(ad.Uint32())
					case unix.NFTA_HOOK_DEV:
						ch.Device = ad.String()
					case nftaHookDevs:
						// A chain of several devices, or of a prefix (6.16), names them here only.
						nested(ad, func(ad *mnl.AttributeDecoder) {
							dev := ad.String()
							if ad.Type() == nftaDevicePrefix {
								dev += "*"
							}
							devs = append(devs, dev)
						})
					}
				})
			}
		})
		if err != nil {
			return nil, fmt.Errorf("a chain of table %s: %w", table, err)
		}
		if len(devs) > 1 || len(devs) == 1 && ch.Device == "" {
			ch.Device = strings.Join(devs, ",")
		}
		out = append(out, ch)
	}
	return out, nil
}

// dump sends a listing request of type typ for table (named by attribute tableAttr) and
// returns the answers' messages of that table. The kernel filters some listings by the
// table named and not others (chains: it lists every table's).
func (c *Conn) dump(typ int, family nftables.TableFamily, tableAttr uint16, table string) ([]mnl.Message, error) {
	m, err := holdsMessage(typ, family, func(ae *mnl.AttributeEncoder) { ae.String(tableAttr, table) })
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
		if a.Header.Type == mnl.Done || a.Header.Type == mnl.Error || len(a.Data) < 4 {
			continue
		}
		of := ""
		if err := decode(a.Data[4:], func(ad *mnl.AttributeDecoder) {
			if ad.Type() == tableAttr {
				of = ad.String()
			}
		}); err != nil {
			return nil, err
		}
		if of == table {
			out = append(out, a)
		}
	}
	return out, nil
}

// nested calls each for every attribute nested in ad's current one.
func nested(ad *mnl.AttributeDecoder, each func(*mnl.AttributeDecoder)) {
	ad.Nested(func(ad *mnl.AttributeDecoder) error {
		for ad.Next() {
			each(ad)
		}
		return nil
	})
}

// TableFlags are t's flags as the kernel has them: the library reads the kernel's big-endian
// number in the host's byte order.
func TableFlags(t *nftables.Table) uint32 {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], t.Flags)
	return binary.BigEndian.Uint32(b[:])
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

// NFTA_HOOK_DEVS and NFTA_DEVICE_PREFIX (linux/netfilter/nf_tables.h), which x/sys does not
// name.
const (
	nftaHookDevs     = 4
	nftaDevicePrefix = 2
)
