package netsetup

import (
	"bytes"
	"fmt"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/nftrule"
)

// User links meet the same foreign forward chains with policy drop as the host link (see
// hostfw.go): each link gets its own two exceptions there, marked apart from the gateway's,
// naming its interface exactly rather than by a wildcard that could match someone else's.

// userLinkComment is commentUserData("pontoon-users"), written out (see pontoonComment).
var userLinkComment = []byte("\x00\x0epontoon-users\x00")

// syncUserForward makes the user-link exceptions in every foreign drop chain of the host
// those of links, in one transaction: old ones removed, current ones inserted at the top.
func syncUserForward(host *handle, links []UserLink) error {
	c, err := host.Nftables()
	if err != nil {
		return err
	}
	defer c.Close()
	chains, err := c.ListChains()
	if err != nil {
		return fmt.Errorf("list host nftables chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Hooknum == nil || *ch.Hooknum != *nftables.ChainHookForward {
			continue
		}
		rules, err := c.GetRules(ch.Table, ch)
		if err != nil {
			return fmt.Errorf("list rules of %s %s: %w", ch.Table.Name, ch.Name, err)
		}
		for _, r := range rules {
			if bytes.Equal(r.UserData, userLinkComment) {
				if err := c.DelRule(r); err != nil {
					return fmt.Errorf("delete pontoon rule from %s %s: %w", ch.Table.Name, ch.Name, err)
				}
			}
		}
	}
	drop, err := foreignDropChains(c.Conn)
	if err != nil {
		return err
	}
	for _, ch := range drop {
		var rules []nftrule.Rule
		for _, l := range links {
			rules = append(rules, forwardExceptions(ch, l.HostIf())...)
		}
		for i := len(rules) - 1; i >= 0; i-- {
			c.InsertRule(&nftables.Rule{Table: ch.Table, Chain: ch, Exprs: rules[i].Exprs(), UserData: userLinkComment})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("update the user links' exceptions in the host's forward chains: %w", err)
	}
	return nil
}
