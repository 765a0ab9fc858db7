package netsetup

import (
	"bytes"
	"fmt"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/nftrule"
)

// A packet accepted by pontoon's own chain still meets every other forward chain of the
// host, and a drop there is final: Docker sets the iptables FORWARD policy to DROP, which
// would cut guests off. The only way through is an exception inside that chain. pontoon adds
// two rules, scoped to its own host link and marked with a "pontoon" comment, at the top of
// each foreign forward chain whose policy is drop, and removes exactly those rules on
// `gateway down`. Nobody else's rules are changed.

// commentUserData encodes a rule comment the way nft(8) stores it (NFTNL_UDATA_RULE_COMMENT),
// so `nft list ruleset` shows it.
func commentUserData(s string) []byte {
	return append([]byte{0, byte(len(s) + 1)}, append([]byte(s), 0)...)
}

// pontoonComment is commentUserData("pontoon"), written out: a call here would run at every
// start-up of the binary.
var pontoonComment = []byte("\x00\x08pontoon\x00")

// hostForwardShow is what a dry run prints for ensureHostForward.
const hostForwardShow = `# for every forward chain with policy drop: nft insert rule ... iifname "` + HostLinkName + `" accept; ... oifname "` + HostLinkName + `" ct state established,related accept`

// hostForwardRules are the exceptions for chain ch. The FORWARD chain of iptables-nft gets
// the xtables form of the conntrack match, which iptables-nft (so Docker and iptables-save)
// can read.
func hostForwardRules(ch *nftables.Chain) []nftrule.Rule { return forwardExceptions(ch, HostLinkName) }

// forwardExceptions are the exceptions for chain ch that let traffic in from ifname, and
// replies back out to it.
func forwardExceptions(ch *nftables.Chain, ifname string) []nftrule.Rule {
	est := nftrule.CtEstablished()
	if ch.Table.Family == nftables.TableFamilyIPv4 && ch.Table.Name == "filter" && ch.Name == "FORWARD" {
		est = nftrule.CtEstablishedXtables()
	}
	return []nftrule.Rule{
		{nftrule.Iifname(ifname), nftrule.Accept()},
		{nftrule.Oifname(ifname), est, nftrule.Accept()},
	}
}

// foreignDropChains lists forward base chains with policy drop in other tables than pontoon's.
func foreignDropChains(c *nftables.Conn) ([]*nftables.Chain, error) {
	chains, err := c.ListChains()
	if err != nil {
		return nil, fmt.Errorf("list host nftables chains: %w", err)
	}
	var out []*nftables.Chain
	for _, ch := range chains {
		if ch.Table.Name == TableName || ch.Hooknum == nil || *ch.Hooknum != *nftables.ChainHookForward {
			continue
		}
		if ch.Table.Family != nftables.TableFamilyIPv4 && ch.Table.Family != nftables.TableFamilyINet {
			continue
		}
		if ch.Policy != nil && *ch.Policy == nftables.ChainPolicyDrop {
			out = append(out, ch)
		}
	}
	return out, nil
}

func ownRules(c *nftables.Conn, ch *nftables.Chain) ([]*nftables.Rule, error) {
	rules, err := c.GetRules(ch.Table, ch)
	if err != nil {
		return nil, fmt.Errorf("list rules of %s %s: %w", ch.Table.Name, ch.Name, err)
	}
	var own []*nftables.Rule
	for _, r := range rules {
		if bytes.Equal(r.UserData, pontoonComment) {
			own = append(own, r)
		}
	}
	return own, nil
}

// withHostNft runs fn with an nftables connection in the host namespace, opened for it.
func withHostNft(env Env, fn func(h *handle) error) error {
	h, err := openHandle(env.hostNetns())
	if err != nil {
		return err
	}
	defer h.Close()
	return fn(h)
}

// ensureHostForward adds pontoon's exceptions to every foreign forward chain with policy drop
// that does not have them yet.
func ensureHostForward(host *handle) error {
	c, err := host.Nftables()
	if err != nil {
		return err
	}
	defer c.Close()
	chains, err := foreignDropChains(c.Conn)
	if err != nil {
		return err
	}
	changed := false
	for _, ch := range chains {
		own, err := ownRules(c.Conn, ch)
		if err != nil {
			return err
		}
		if len(own) > 0 {
			continue
		}
		rules := hostForwardRules(ch)
		// InsertRule prepends: insert in reverse so they end up in order at the top.
		for i := len(rules) - 1; i >= 0; i-- {
			c.InsertRule(&nftables.Rule{Table: ch.Table, Chain: ch, Exprs: rules[i].Exprs(), UserData: pontoonComment})
		}
		changed = true
	}
	if !changed {
		return nil
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("add pontoon exceptions to the host's forward chains: %w", err)
	}
	return nil
}

// removeHostForward deletes the rules ensureHostForward added, wherever they are.
func removeHostForward(host *handle) error {
	c, err := host.Nftables()
	if err != nil {
		return err
	}
	defer c.Close()
	chains, err := c.ListChains()
	if err != nil {
		return fmt.Errorf("list host nftables chains: %w", err)
	}
	n := 0
	for _, ch := range chains {
		if ch.Table.Name == TableName || ch.Hooknum == nil || *ch.Hooknum != *nftables.ChainHookForward {
			continue
		}
		own, err := ownRules(c.Conn, ch)
		if err != nil {
			return err
		}
		for _, r := range own {
			if err := c.DelRule(r); err != nil {
				return fmt.Errorf("delete pontoon rule from %s %s: %w", ch.Table.Name, ch.Name, err)
			}
			n++
		}
	}
	if n == 0 {
		return nil
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("remove pontoon exceptions from the host's forward chains: %w", err)
	}
	return nil
}
