package nftrule

import (
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// UpdateCounter adds the concatenation of keys to the dynamic set (when missing) and counts
// the packet and its bytes in the element's counter: `update @set { keys counter }`. Placed
// just before a verdict, it costs only the packets that reach that verdict.
func UpdateCounter(set *nftables.Set, keys ...Key) Match {
	return update(set, " counter", []expr.Any{&expr.Counter{}}, keys)
}

// Update adds the concatenation of keys to the dynamic set, or restarts the timeout of the
// element that is there: `update @set { keys }`.
func Update(set *nftables.Set, keys ...Key) Match { return update(set, "", nil, keys) }

func update(set *nftables.Set, extra string, exprs []expr.Any, keys []Key) Match {
	ex, text := loadKeys(keys)
	return Match{
		Text: "update @" + set.Name + " { " + text + extra + " }",
		Exprs: append(ex, &expr.Dynset{SrcRegKey: reg, SetName: set.Name, SetID: set.ID,
			Operation: unix.NFT_DYNSET_OP_UPDATE, Exprs: exprs}),
	}
}
