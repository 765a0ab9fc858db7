package partition

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/pontoon-dev/pontoon/internal/nftwire"
)

// tableNow is what step 1 and step 2 need to know of the table in the kernel.
type tableNow struct {
	exists bool
	chains []string                 // names of the table's chains
	hooks  map[string]nftwire.Chain // the table's chains, by name: where the base ones sit
	inUse  int                      // the buffer the rules use; -1 when none
	marker string                   // the marker of the rules in force; "" when none
	others []Backend                // other families that hold a partition table
	tables tableList
	// wroteGen is the namespace's nftables generation the last change expected to leave
	// (genKey), haveGen whether it said; gen is the generation now, seenGen whether the
	// kernel's answers said. When they are equal, nothing was committed in the namespace
	// since, by hand or otherwise, and the chains that change left are as it left them.
	// Low 16 bits, as the kernel stamps them on its answers.
	wroteGen, gen    uint16
	haveGen, seenGen bool
}

// tableList is the namespace's tables, listed at most once per change: the
// partition's steps and the service table's all need them.
type tableList struct {
	tables []*nftables.Table
	listed bool
}

func (l *tableList) get(c *nftables.Conn) ([]*nftables.Table, error) {
	if !l.listed {
		tables, err := c.ListTables()
		if err != nil {
			return nil, fmt.Errorf("list nftables tables: %w", err)
		}
		l.tables, l.listed = tables, true
	}
	return l.tables, nil
}

// ErrTableMixed is returned when the partition table's rules use both set
// buffers: someone else edited it. Heal removes it.
var ErrTableMixed = errors.New("its rules use both set buffers")

// readTableNow lists the table's chains and finds the buffer its rules use.
func readTableNow(w *nftwire.Conn, b Backend) (tableNow, error) {
	c := w.Conn
	now := tableNow{inUse: -1}
	tables, err := now.tables.get(c)
	if err != nil {
		return now, err
	}
	for _, t := range tables {
		if t.Name != TableName {
			continue
		}
		if t.Family == b.nftFamily() {
			now.exists = true
		} else if other, ok := backendOf(t.Family); ok {
			now.others = append(now.others, other)
		}
	}
	if !now.exists {
		return now, nil
	}
	chains, err := w.Chains(b.nftFamily(), TableName)
	if err != nil {
		return now, fmt.Errorf("family %s: %w", b.Family(), err)
	}
	now.hooks = make(map[string]nftwire.Chain, len(chains))
	for _, ch := range chains {
		now.chains = append(now.chains, ch.Name)
		now.hooks[ch.Name] = ch
	}
	t := nftTable(b)
	// A table of an older layout, or edited by hand, may lack the set or the
	// buffer element; then the rules say which buffer they use.
	bufferKnown := false
	if els, err := nftwire.SetElements(c, markerSet(t)); err == nil {
		for _, el := range els {
			switch be(el.Key) {
			case markerKey:
				now.marker = el.Comment
			case bufferKey:
				if n, err := strconv.Atoi(el.Comment); err == nil && n >= 0 && n < buffers {
					now.inUse, bufferKnown = n, true
				}
			case genKey:
				now.wroteGen, now.haveGen = parseGen(el.Comment)
			}
		}
	}
	if bufferKnown || !slices.Contains(now.chains, FilterChain) {
		return now, nil
	}
	rules, err := c.GetRules(t, &nftables.Chain{Name: FilterChain, Table: t})
	if err != nil {
		return now, fmt.Errorf("read chain %s of table %s %s: %w", FilterChain, b.Family(), TableName, err)
	}
	used := map[int]bool{}
	for _, r := range rules {
		for _, e := range r.Exprs {
			if l, ok := e.(*expr.Lookup); ok {
				for buf := range buffers {
					for _, set := range classSets {
						if l.SetName == bufferName(set, buf) {
							used[buf] = true
						}
					}
				}
			}
		}
	}
	switch len(used) {
	case 0:
	case 1:
		for buf := range used {
			now.inUse = buf
		}
	default:
		return now, fmt.Errorf("table %s %s: %w", b.Family(), TableName, ErrTableMixed)
	}
	return now, nil
}
