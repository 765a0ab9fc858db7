package nftwire

import "github.com/google/nftables"

// SetElements reads the elements of s, each once.
//
// The kernel grows and shrinks a hash set without a fixed size in the background, after the
// transactions that fill or empty it. A walk that meets such a resize starts over, and lists
// again what it had listed (rhashtable_walk_next's -EAGAIN): a dump read then holds an element
// twice, and counters read with it would count twice. A set holds each key once (an interval
// set its start and its end, told apart by a flag), so a repeated one is dropped.
//
// A dump longer than a datagram is also resumed by count: the kernel walks the set again and
// skips as many elements as it sent. An element added or removed meanwhile (the packet path
// changes dynamic sets) moves the rest along, so the one at a seam is not listed at all: with
// another connection adding and removing elements, 185 of 300 reads of a 4,000-element set
// missed one (TestSetElementsWhileChanging). So a long dump is read again, up to reads times,
// until a read lists nothing the others did not, and the reads are merged, the latest
// element winning (its counters are newer): an element is missed only if every read misses
// it (2 reads: 10 of 300 missed one; 3: 1 of 900; 4: none of 1,500). A set that changes
// only in transactions, as partition's own sets do under their lock, is read twice. For one
// read, see SetElementsOnce.
func SetElements(c *nftables.Conn, s *nftables.Set) ([]nftables.SetElement, error) {
	all, err := c.GetSetElements(s)
	all = unique(all)
	if err != nil || len(all) < oneDatagram {
		return all, err
	}
	for range reads - 1 {
		more, err := c.GetSetElements(s)
		if err != nil {
			return nil, err
		}
		n := len(all)
		if all = unique(append(more, all...)); len(all) == n {
			break // nothing new: the reads agree
		}
	}
	return all, nil
}

// SetElementsOnce is SetElements with one read: for a caller to whom a missed element costs
// little and a second read of a long set does (a change pruning counters it ends: one it
// misses is pruned by the next).
func SetElementsOnce(c *nftables.Conn, s *nftables.Set) ([]nftables.SetElement, error) {
	els, err := c.GetSetElements(s)
	return unique(els), err
}

// reads bounds the reads of a long dump.
const reads = 4

// oneDatagram is fewer elements than any dump spreads over two datagrams (a datagram holds
// some 16 KiB; an element with counters about 100 bytes).
const oneDatagram = 64

// unique returns els without the elements that repeat an earlier one, in place.
func unique(els []nftables.SetElement) []nftables.SetElement {
	if len(els) < 2 {
		return els
	}
	seen := make(map[string]bool, len(els))
	out := els[:0]
	for _, el := range els {
		id := string(el.Key) + "\x00" + string(el.KeyEnd)
		if el.IntervalEnd {
			id += "\x01"
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, el)
		}
	}
	return out
}
