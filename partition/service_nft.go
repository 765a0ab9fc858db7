package partition

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/nftrule"
)

func serviceTable() *nftables.Table {
	return &nftables.Table{Name: ServiceTable, Family: nftables.TableFamilyINet}
}

// serviceSet is one of the service table's named sets.
func serviceSet(t *nftables.Table, name string) *nftables.Set {
	s := &nftables.Set{Table: t, Name: name, Concatenation: true}
	ip, ip6 := nftables.TypeIPAddr, nftables.TypeIP6Addr
	switch name {
	case ServiceFlows, serviceMarks:
		s.KeyType = nftables.MustConcatSetType(nftables.TypeMark, ip)
	case ServiceFlows6, serviceMarks6:
		s.KeyType = nftables.MustConcatSetType(nftables.TypeMark, ip6)
	case serviceBlockedMark:
		s.KeyType = nftables.MustConcatSetType(ip, nftables.TypeMark)
	case serviceBlockedMark6:
		s.KeyType = nftables.MustConcatSetType(ip6, nftables.TypeMark)
	case serviceBlocked, ServiceDropped, ServiceRejected:
		s.KeyType = nftables.MustConcatSetType(ip, ip)
	default:
		s.KeyType = nftables.MustConcatSetType(ip6, ip6)
	}
	if name == serviceMarks || name == serviceMarks6 {
		s.IsMap, s.DataType = true, nftables.TypeMark
	}
	if !slices.Contains(filledSets, name) {
		s.Dynamic, s.Size = true, maxCounted
	}
	return s
}

// filledSets are the sets written anew with every change; the others count.
var filledSets = []string{serviceBlocked, serviceBlocked6, serviceBlockedMark, serviceBlockedMark6, serviceMarks, serviceMarks6}

// queueServices queues, into the batch that switches the partition's rules, the service
// table as sr says (nothing when sr is nil). The chains are flushed and filled again; the
// counter sets are kept, so counts run across changes; connections already translated keep
// their member, conntrack holding the translation.
func queueServices(c *nftables.Conn, sr *serviceRules) error {
	if sr == nil {
		return nil
	}
	t := serviceTable()
	if sr.empty {
		// Only a table that is there is deleted: deleting leaves the kernel work that the
		// socket's close waits for (see linger.go).
		tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
		if err != nil {
			return fmt.Errorf("list inet tables: %w", err)
		}
		if slices.ContainsFunc(tables, func(x *nftables.Table) bool { return x.Name == ServiceTable }) {
			removed.Store(true)
			c.DelTable(t)
		}
		return nil
	}
	// Flushing the chains frees the maps of their rules.
	removed.Store(true)
	c.AddTable(t)
	sets := map[string]*nftables.Set{}
	for _, name := range filledSets {
		s := serviceSet(t, name)
		if err := c.AddSet(s, nil); err != nil {
			return fmt.Errorf("queue set %s: %w", name, err)
		}
		c.FlushSet(s)
		if els := sr.elements[name]; len(els) > 0 {
			if err := c.SetAddElements(s, els); err != nil {
				return fmt.Errorf("queue elements of set %s: %w", name, err)
			}
		}
		sets[name] = s
	}
	for _, name := range sr.counters {
		s := serviceSet(t, name)
		if err := c.AddSet(s, nil); err != nil {
			return fmt.Errorf("queue set %s: %w", name, err)
		}
		sets[name] = s
	}
	for _, ch := range sr.chains {
		nc := c.AddChain(&nftables.Chain{Name: ch.name, Table: t, Type: ch.typ, Hooknum: ch.hook, Priority: ch.priority})
		c.FlushChain(nc)
		for i, r := range ch.rules {
			exprs := r.rule.Exprs()
			if r.clients != nil {
				set, err := clientSet(c, t, r.clients, r.ipv6)
				if err != nil {
					return fmt.Errorf("chain %s rule %d: %w", ch.name, i, err)
				}
				key := nftrule.KeyIPSaddr
				if r.ipv6 {
					key = nftrule.KeyIP6Saddr
				}
				exprs = append(exprs, nftrule.InSet(set, key).Exprs...)
			}
			exprs = append(exprs, r.mark.Exprs...)
			if r.members != nil {
				m, err := memberMap(c, t, r.members, r.ipv6)
				if err != nil {
					return fmt.Errorf("chain %s rule %d: %w", ch.name, i, err)
				}
				exprs = append(exprs, nftrule.DNATMap(r.ipv6, r.random, uint32(len(r.members)), m).Exprs...)
			}
			c.AddRule(&nftables.Rule{Table: t, Chain: nc, Exprs: exprs})
		}
	}
	return nil
}

// memberMap queues the anonymous map from the numbers 0..n-1 to the members' addresses.
func memberMap(c *nftables.Conn, t *nftables.Table, members []netip.Addr, ipv6 bool) (*nftables.Set, error) {
	m := &nftables.Set{Table: t, Anonymous: true, Constant: true, IsMap: true, KeyType: nftables.TypeInteger, DataType: nftables.TypeIPAddr}
	if ipv6 {
		m.DataType = nftables.TypeIP6Addr
	}
	els := make([]nftables.SetElement, len(members))
	for i, a := range members {
		els[i] = nftables.SetElement{Key: nftrule.NumgenKey(uint32(i)), Val: a.AsSlice()}
	}
	if err := c.AddSet(m, els); err != nil {
		return nil, fmt.Errorf("queue the map of members: %w", err)
	}
	return m, nil
}

// clientSet queues the anonymous set of the clients' addresses.
func clientSet(c *nftables.Conn, t *nftables.Table, clients []netip.Addr, ipv6 bool) (*nftables.Set, error) {
	s := &nftables.Set{Table: t, Anonymous: true, Constant: true, KeyType: nftables.TypeIPAddr}
	if ipv6 {
		s.KeyType = nftables.TypeIP6Addr
	}
	els := make([]nftables.SetElement, len(clients))
	for i, a := range clients {
		els[i] = nftables.SetElement{Key: a.AsSlice()}
	}
	if err := c.AddSet(s, els); err != nil {
		return nil, fmt.Errorf("queue the set of clients: %w", err)
	}
	return s, nil
}
