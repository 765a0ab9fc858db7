package partition

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/nftpool"
	"github.com/pontoon-dev/pontoon/internal/nftrule"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
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
	case ServiceDropped, ServiceRejected:
		s.KeyType = nftables.MustConcatSetType(nftables.TypeMark, ip, ip)
	case ServiceDropped6, ServiceRejected6:
		s.KeyType = nftables.MustConcatSetType(nftables.TypeMark, ip6, ip6)
	case serviceBlocked:
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
func queueServices(c *nftables.Conn, sr *serviceRules, list *tableList) error {
	if sr == nil {
		return nil
	}
	// Only a table that is there is deleted: deleting leaves the kernel work that the
	// socket's close waits for (see nftpool); one there holds counters to prune.
	tables, err := list.get(c)
	if err != nil {
		return err
	}
	has := func(f nftables.TableFamily) bool {
		return slices.ContainsFunc(tables, func(x *nftables.Table) bool { return x.Name == ServiceTable && x.Family == f })
	}
	queueServiceLoss(c, sr, has(nftables.TableFamilyBridge))
	t := serviceTable()
	if sr.empty {
		if has(nftables.TableFamilyINet) {
			nftpool.MarkRemoved()
			c.DelTable(t)
		}
		return nil
	}
	// Flushing the chains frees the maps of their rules.
	nftpool.MarkRemoved()
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
	if has(nftables.TableFamilyINet) {
		if err := queueStoppedPrune(c, t, sr); err != nil {
			return fmt.Errorf("queue the removal of stopped counters: %w", err)
		}
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

// bridgeNetfilterKnobs are the bridge namespace's br_netfilter switches (present while the
// host has the module loaded, which container engines do; each new namespace starts with
// them on).
var bridgeNetfilterKnobs = []string{"bridge-nf-call-iptables", "bridge-nf-call-ip6tables", "bridge-nf-call-arptables"}

// bridgeNetfilterOff turns br_netfilter off in a bridge namespace with services. With it on,
// frames the bridge forwards from port to port pass the IP layer's hooks too: a service
// connection is then translated on the bridge itself and sent out of a port, never back out
// of the port it came in on, so a member whose connection to its own service picks itself
// gets nothing. Off, it is routed by the bridge's IP layer, as the service rules expect.
func bridgeNetfilterOff(nsPath string) error {
	return ns.Do(nsPath, func() error {
		for _, k := range bridgeNetfilterKnobs {
			p := "/proc/sys/net/bridge/" + k
			cur, err := os.ReadFile(p)
			if errors.Is(err, os.ErrNotExist) {
				return nil // no br_netfilter
			}
			if err != nil {
				return fmt.Errorf("read %s in %s: %w", p, nsPath, err)
			}
			if strings.TrimSpace(string(cur)) == "0" {
				continue
			}
			// Where the namespace's owner may not (a read-only /proc/sys), only a member's
			// connection to its own service is lost: the rest works either way.
			if err := os.WriteFile(p, []byte("0\n"), 0o644); err != nil && !errors.Is(err, os.ErrPermission) && !errors.Is(err, syscall.EROFS) {
				return fmt.Errorf("turn br_netfilter off in %s (%s): %w", nsPath, p, err)
			}
		}
		return nil
	})
}

// queueServiceLoss queues the bridge-family table of the pairs' loss on service connections
// (see pairLoss), or the removal of the one there is when there is no such loss.
func queueServiceLoss(c *nftables.Conn, sr *serviceRules, there bool) {
	t := &nftables.Table{Name: ServiceTable, Family: nftables.TableFamilyBridge}
	if sr.empty || len(sr.loss) == 0 {
		if there {
			nftpool.MarkRemoved()
			c.DelTable(t)
		}
		return
	}
	nftpool.MarkRemoved()
	c.AddTable(t)
	// A client's packet is lost as it leaves for the member, a member's as it arrives: each
	// rule's addresses hold in one of the two places only.
	for _, hook := range []*nftables.ChainHook{nftables.ChainHookPrerouting, nftables.ChainHookPostrouting} {
		name := "prerouting"
		if hook == nftables.ChainHookPostrouting {
			name = "postrouting"
		}
		ch := c.AddChain(&nftables.Chain{Name: name, Table: t, Type: nftables.ChainTypeFilter, Hooknum: hook, Priority: nftables.ChainPriorityFilter})
		c.FlushChain(ch)
		for _, r := range sr.loss {
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: r.Exprs()})
		}
	}
}
