package nftwire

import "github.com/google/nftables"

// SetElements reads the elements of s, each once.
//
// The kernel grows and shrinks a hash set without a fixed size in the background, after the
// transactions that fill or empty it. A walk that meets such a resize starts over, and lists
// again what it had listed (rhashtable_walk_next's -EAGAIN): a dump read then holds an element
// twice, and counters read with it would count twice. A set holds each key once (an interval
// set its start and its end, told apart by a flag), so a repeated one is dropped.
func SetElements(c *nftables.Conn, s *nftables.Set) ([]nftables.SetElement, error) {
	els, err := c.GetSetElements(s)
	if err != nil {
		return nil, err
	}
	return unique(els), nil
}

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
