package partition

// How a Rule becomes nft expressions.

import (
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/pontoon-dev/pontoon/internal/nftrule"
	"golang.org/x/sys/unix"
)

// chainHook is the hook a chain's hook name stands for; false for a name that is none.
func chainHook(name string) (*nftables.ChainHook, bool) {
	switch name {
	case "ingress":
		return nftables.ChainHookIngress, true
	case "egress":
		return nftables.ChainHookEgress, true
	case "prerouting": // NF_BR_PRE_ROUTING == NF_INET_PRE_ROUTING
		return nftables.ChainHookPrerouting, true
	case "postrouting":
		return nftables.ChainHookPostrouting, true
	}
	return nil, false
}

// be32 encodes a class number big-endian, so that the blocked set's ranges,
// which the kernel compares byte by byte, order classes by number.
func be32(v uint32) []byte { return binaryutil.BigEndian.PutUint32(v) }

// logicalSet stands for a set in the text form of a rule, which names the
// set without its buffer (see commit.go).
func logicalSet(name string) *nftables.Set { return &nftables.Set{Name: name} }

// matches turns r into nft matches, in the order of Rule's fields. set gives
// the set that a lookup of the named set uses: the buffer the rule is for, or
// logicalSet for the text form; nil means the rule set has no such set.
func (r Rule) matches(set func(name string) *nftables.Set) (nftrule.Rule, error) {
	var m nftrule.Rule
	if r.Iifname != "" {
		m = append(m, nftrule.Iifname(r.Iifname))
	}
	if r.Oifname != "" {
		m = append(m, nftrule.Oifname(r.Oifname))
	}
	if r.IPv4 {
		m = append(m, nftrule.Protocol("ip", unix.ETH_P_IP))
	}
	if r.IPv6 {
		m = append(m, nftrule.Protocol("ip6", unix.ETH_P_IPV6))
	}
	if r.ND {
		m = append(m, nftrule.ND())
	}
	if r.NotARP {
		m = append(m, nftrule.NotProtocol("arp", unix.ETH_P_ARP))
	}
	switch {
	case r.Daddr.Is4():
		m = append(m, nftrule.Daddr(nftrule.Host(r.Daddr)))
	case r.Daddr.IsValid():
		m = append(m, nftrule.Daddr6(r.Daddr))
	}
	lookup := func(name string) (*nftables.Set, error) {
		s := set(name)
		if s == nil {
			return nil, fmt.Errorf("set %q is not in the rule set", name)
		}
		return s, nil
	}
	classify := func(field nftrule.MetaField, name string, key nftrule.Key) error {
		s, err := lookup(name)
		if err == nil {
			m = append(m, nftrule.MetaSetMap(field, s, key))
		}
		return err
	}
	var err error
	switch r.Classify {
	case "":
	case ClassifyReset:
		m = append(m, nftrule.MetaClear(nftrule.MetaMark, nftrule.MetaPriority))
	case ClassifyClearColumn:
		m = append(m, nftrule.MetaClear(nftrule.MetaPriority))
	case ClassifyRow:
		err = classify(nftrule.MetaMark, SourceMap, nftrule.KeyIifname)
	case ClassifyColumnByIP:
		err = classify(nftrule.MetaPriority, DestMap, nftrule.KeyIPDaddr)
	case ClassifyColumnByIP6:
		err = classify(nftrule.MetaPriority, DestMap6, nftrule.KeyIP6Daddr)
	case ClassifyColumnByPort:
		err = classify(nftrule.MetaPriority, DestPortMap, nftrule.KeyOifname)
	default:
		err = fmt.Errorf("unknown class lookup %q", r.Classify)
	}
	if err != nil {
		return m, err
	}
	if r.Blocked {
		s, err := lookup(BlockedSet)
		if err != nil {
			return m, err
		}
		m = append(m, nftrule.InSet(s, nftrule.KeyMark, nftrule.KeyPriority))
	}
	if r.TCP {
		m = append(m, nftrule.L4Proto("tcp"))
	}
	if r.NoSYN {
		if !r.TCP {
			return m, errors.New("tcp flags match without meta l4proto tcp")
		}
		m = append(m, nftrule.NoSYN())
	}
	if r.Chance != 0 {
		m = append(m, nftrule.RandomBelow(LossScale, r.Chance))
	}
	if r.Count != "" {
		s, err := lookup(r.Count)
		if err != nil {
			return m, err
		}
		m = append(m, nftrule.UpdateCounter(s, counterKeys.Get()[r.Count]...))
	}
	switch r.Action {
	case ActionDrop:
		m = append(m, nftrule.Drop())
	case ActionRejectTCPReset:
		m = append(m, nftrule.RejectTCPReset())
	case ActionRejectAdmin:
		m = append(m, nftrule.RejectAdminProhibited())
	case ActionJump:
		m = append(m, nftrule.Jump(r.Jump))
	case ActionAccept:
		m = append(m, nftrule.Accept())
	case "":
		// A classification step: no verdict, the packet goes on.
	default:
		return m, fmt.Errorf("unknown action %q", r.Action)
	}
	return m, nil
}
