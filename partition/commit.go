package partition

import (
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/userdata"
	"github.com/pontoon-dev/pontoon/internal/kernel"
	"github.com/pontoon-dev/pontoon/internal/nftpool"
	"github.com/pontoon-dev/pontoon/internal/nftrule"
	"github.com/pontoon-dev/pontoon/internal/nftwire"
	"golang.org/x/sys/unix"
)

// How a change reaches the kernel, atomically.
//
// The kernel makes a batch's rules and hash-set elements visible at once, when
// it switches generation. An interval set with concatenated keys (pipapo, the
// blocked set) is different: its new content is swapped in after the switch,
// so for a moment new rules would meet the set's old content (or, for a set
// created in the same batch, an empty one) and packets would cross a
// partition. Hence two buffers of every set the class lookup uses, and two
// transactions:
//
//  1. fill the buffer no rule uses (flush it, add the new elements): nothing
//     packets see changes;
//  2. replace the rules, now pointing at that buffer, the per-port chains
//     and the marker: a pure generation switch.
//
// The buffer the old rules used keeps its content, unused, until the next
// change fills it.
//
// The table itself stays, so no change waits for the kernel to destroy the
// previous one. A change of backend creates the new family's table in step 1
// and deletes the old one in a third step; Heal (an empty rule set) deletes
// the table in one transaction.

// buffers of the class sets; a set's name in the kernel is its logical name
// followed by the buffer's digit.
const buffers = 2

func bufferName(set string, buf int) string { return fmt.Sprintf("%s%d", set, buf) }

// classSets are the logical sets of the class matrix, in the order step 1
// writes them.
var classSets = []string{SourceMap, DestMap, DestMap6, DestPortMap, BlockedSet}

// committed is what the record says the kernel holds: the marker of the last
// commit and a fingerprint of each of its chains. While the kernel holds that
// marker, a chain whose fingerprint is unchanged is left alone: on a full
// bridge most of the per-port chains are, and rewriting them cost most of a
// change.
type committed struct {
	marker string
	chains map[string]uint64
}

// commitRuleSet makes rs the content of the partition table (see above). An
// empty rs removes the table in every family.
func commitRuleSet(nsPath string, rs RuleSet, families []Backend, prev committed) error {
	what := "table " + TableName
	if rs.Empty() {
		nftpool.MarkRemoved()
		return nftpool.With(nsPath, func(c *nftables.Conn) error {
			deleteTables(c, families, "")
			if err := queueServices(c, rs.services, &tableList{}); err != nil {
				return err
			}
			if err := flush(c); err != nil {
				return fmt.Errorf("commit nftables %s in %q: %w", what, nsPath, err)
			}
			return nil
		})
	}
	what = fmt.Sprintf("table %s %s", rs.Family, TableName)
	if !rs.Backend.valid() {
		return fmt.Errorf("rule set for backend %q: want %q or %q", rs.Backend, BackendNetdev, BackendBridge)
	}
	t := nftTable(rs.Backend)
	// Step 1. After an error the connection is replaced (nftpool.With): answers to
	// the failed batch may still be queued on it.
	var now tableNow
	spare := 0
	var flushErr error
	err := nftpool.WithConn(nsPath, func(w *nftwire.Conn) error {
		c := w.Conn
		var err error
		w.ForgetGen()
		if now, err = readTableNow(w, rs.Backend); err != nil {
			return err
		}
		// The listings' answers carry it; without one (a namespace without tables), no
		// chain is taken as unchanged and no generation is written.
		now.gen, now.seenGen = w.SeenGen()
		if now.inUse == 0 {
			spare = 1
		}
		// Both steps replace something in a table that exists: set elements,
		// rules, the marker.
		if now.exists {
			nftpool.MarkRemoved()
		}
		if err := queueBuffer(c, t, rs, spare, !now.exists); err != nil {
			return err
		}
		// Also what makes step 1 a transaction of its own on every kernel, whatever else
		// it changes (a buffer written with what it held already may change nothing).
		if err := queueGen(c, t, now.gen+1, now.seenGen); err != nil {
			return err
		}
		flushErr = flush(c)
		return flushErr
	})
	switch {
	case err == nil:
	case flushErr == nil:
		return err // reading the table or building the batch failed: nothing was sent
	default:
		written := false
		_ = nftpool.With(nsPath, func(c *nftables.Conn) error { written = bufferWritten(c, t, spare, rs); return nil })
		if !written {
			return fmt.Errorf("commit nftables %s in %q (filling set buffer %d): %w", what, nsPath, spare, err)
		}
		answersLost.Add(1)
		// The buffer holds what step 1 would have written, but whether step 1 was
		// committed is not known: its generation is not either.
		now.seenGen = false
	}
	stopAt("step1")
	// Step 2.
	unchanged := map[string]bool{}
	// A chain is left as it is only when nothing was committed in the namespace since the
	// change that wrote it: a chain edited by hand is rewritten by the next change.
	if now.marker != "" && now.marker == prev.marker && now.haveGen && now.seenGen && now.wroteGen == now.gen {
		sums := rs.chainSums()
		for _, ch := range rs.Chains {
			// A chain that looks sets up is rewritten every time: it must point
			// at the buffer just written.
			if sum, ok := prev.chains[ch.Name]; ok && sum == sums[ch.Name] && !ch.usesSets() && slices.Contains(now.chains, ch.Name) {
				unchanged[ch.Name] = true
			}
		}
	}
	rules := func(rs RuleSet) error {
		return nftpool.With(nsPath, func(c *nftables.Conn) error {
			if err := queueRules(c, t, rs, spare, now, unchanged); err != nil {
				return err
			}
			if err := queueServices(c, rs.services, &now.tables); err != nil {
				return err
			}
			return flush(c)
		})
	}
	err = rules(rs)
	if err != nil && errors.Is(err, unix.ENOENT) && hasDevices(rs) {
		// Kernels before 6.16 refuse a netdev chain for a device that does
		// not exist (a guest that is gone). Keep the chains of present ports.
		present, lerr := presentLinks(nsPath)
		if lerr != nil {
			return fmt.Errorf("commit nftables %s: %w (listing ports: %v)", what, err, lerr)
		}
		rs.Chains = slices.DeleteFunc(slices.Clone(rs.Chains), func(ch Chain) bool { return ch.Device != "" && !present[ch.Device] })
		rs.sums = nil // fingerprints of the chains as sealed, not of these
		err = rules(rs)
	}
	if err != nil {
		return fmt.Errorf("commit nftables %s in %q: %w", what, nsPath, err)
	}
	return dropOthers(nsPath, now.others)
}

// dropOthers is step 3, after a change of backend: the other family's table
// goes last. Between steps 2 and 3 both tables are in force, so a packet that
// passed one family's hook under the old rules and reaches the other's under
// the new is judged by at least one of them. The buffer the old rules used
// keeps its content, unused, until the next change fills it.
func dropOthers(nsPath string, others []Backend) error {
	if len(others) == 0 {
		return nil
	}
	nftpool.MarkRemoved()
	return nftpool.With(nsPath, func(c *nftables.Conn) error {
		deleteTables(c, others, "")
		if err := flush(c); err != nil {
			return fmt.Errorf("remove the partition table of family %s in %q: %w", others[0].Family(), nsPath, err)
		}
		return nil
	})
}

// deleteTables queues the deletion of the partition table in each family of
// families except keep's.
func deleteTables(c *nftables.Conn, families []Backend, keep Backend) {
	for _, b := range families {
		if b == keep {
			continue
		}
		// "add" never fails on an existing table, so the following delete
		// always has something to delete: together they mean "delete if
		// present".
		t := nftTable(b)
		c.AddTable(t)
		c.DelTable(t)
	}
}

// queueBuffer queues step 1: the table and both buffers of every set (when
// fresh), and the class matrix written into buffer buf.
func queueBuffer(c *nftables.Conn, t *nftables.Table, rs RuleSet, buf int, fresh bool) error {
	// Also when it exists: the library's message carries flags 0, which wakes a table made
	// dormant by hand (then none of its rules ran); the kernel commits nothing for a table
	// that is awake.
	c.AddTable(t)
	cl := rs.Classes
	var srcEls, dstEls, dst6Els, portEls, runEls []nftables.SetElement
	for _, p := range cl.Sources {
		srcEls = append(srcEls, nftables.SetElement{Key: nftrule.IfnameBytes(p.Port), Val: be32(p.Row)})
	}
	for _, d := range cl.Dests {
		if d.IP.IsValid() {
			ip := d.IP.As4()
			dstEls = append(dstEls, nftables.SetElement{Key: ip[:], Val: be32(d.Col)})
		}
		if d.IP6.IsValid() {
			ip6 := d.IP6.As16()
			dst6Els = append(dst6Els, nftables.SetElement{Key: ip6[:], Val: be32(d.Col)})
		}
		if d.Port != "" {
			portEls = append(portEls, nftables.SetElement{Key: nftrule.IfnameBytes(d.Port), Val: be32(d.Col)})
		}
	}
	for _, r := range cl.Runs {
		runEls = append(runEls, nftables.SetElement{
			Key:    nftrule.ConcatKey(be32(r.Row), be32(r.From)),
			KeyEnd: nftrule.ConcatKey(be32(r.Row), be32(r.To)),
		})
	}
	elements := map[string][]nftables.SetElement{SourceMap: srcEls, DestMap: dstEls, DestMap6: dst6Els, DestPortMap: portEls, BlockedSet: runEls}
	for b := range buffers {
		for _, name := range classSets {
			set := classSet(t, name, b)
			if fresh || b == buf {
				// Adding an existing set with the same properties changes nothing.
				if err := c.AddSet(set, nil); err != nil {
					return fmt.Errorf("queue set %s: %w", set.Name, err)
				}
			}
			if b != buf {
				continue
			}
			if !fresh {
				c.FlushSet(set)
			}
			for chunk := range slices.Chunk(elements[name], elemChunk) {
				if err := c.SetAddElements(set, chunk); err != nil {
					return fmt.Errorf("queue elements of set %s: %w", set.Name, err)
				}
			}
		}
	}
	// Adding an existing set changes nothing; a table of an older layout gets it.
	if err := c.AddSet(markerSet(t), nil); err != nil {
		return fmt.Errorf("queue set %s: %w", MarkerSet, err)
	}
	return queueCounterSets(c, t, rs)
}

var acceptPolicy = nftables.ChainPolicyAccept

// answersLost counts commits whose answer was lost but which took effect (for
// tests, which provoke it).
var answersLost atomic.Int64

// Keys in MarkerSet: the rule set's marker, and the buffer its rules use
// (written with the rules, so read together they are never out of step).
// The third, genKey, is the namespace's nftables generation once the change that writes it
// is committed: its buffer's and its rules' transactions after the one read before them
// (tableNow.gen). A transaction of anyone else's in between makes it wrong, and the next
// change rewrites every chain.
const (
	markerKey = 1
	bufferKey = 2
	genKey    = 3
)

// bufferWritten reports whether buffer buf holds exactly rs's classes: the
// batch that wrote it was committed although its answer was lost.
func bufferWritten(c *nftables.Conn, t *nftables.Table, buf int, rs RuleSet) bool {
	var kt kernelTable
	err := kt.readClasses(func(name string) ([]nftables.SetElement, error) {
		return nftwire.SetElements(c, classSet(t, name, buf))
	})
	return err == nil && sameClasses(kt.Classes, rs.Classes)
}

func classSet(t *nftables.Table, name string, buf int) *nftables.Set {
	s := &nftables.Set{Table: t, Name: bufferName(name, buf)}
	switch name {
	case SourceMap:
		// An interface name is a host-order key to nft's printer: without saying so in the
		// set, `nft list` shows every port as "".
		s.IsMap, s.KeyType, s.DataType, s.KeyByteOrder = true, nftables.TypeIFName, nftables.TypeMark, binaryutil.NativeEndian
	case DestMap:
		s.IsMap, s.KeyType, s.DataType = true, nftables.TypeIPAddr, nftables.TypeClassID
	case DestMap6:
		s.IsMap, s.KeyType, s.DataType = true, nftables.TypeIP6Addr, nftables.TypeClassID
	case DestPortMap:
		s.IsMap, s.KeyType, s.DataType, s.KeyByteOrder = true, nftables.TypeIFName, nftables.TypeClassID, binaryutil.NativeEndian
	case BlockedSet:
		s.Interval, s.Concatenation = true, true
		s.KeyType = nftables.MustConcatSetType(nftables.TypeMark, nftables.TypeClassID)
	}
	return s
}

// ruleSets are the sets the rules look up, by logical name, with the class sets of buffer buf.
func ruleSets(t *nftables.Table, buf int) map[string]*nftables.Set {
	sets := map[string]*nftables.Set{MarkerSet: markerSet(t)}
	for _, name := range classSets {
		sets[name] = classSet(t, name, buf)
	}
	for _, name := range counterSets {
		sets[name] = counterSet(t, name)
	}
	return sets
}

func markerSet(t *nftables.Table) *nftables.Set {
	return &nftables.Set{Table: t, Name: MarkerSet, KeyType: nftables.TypeInteger}
}

// queueRules queues step 2: every chain of rs with its rules replaced, rules
// using the sets of the buffer just written, chains rs no longer has deleted,
// and the marker.
func queueRules(c *nftables.Conn, t *nftables.Table, rs RuleSet, buf int, now tableNow, unchanged map[string]bool) error {
	sets := ruleSets(t, buf)
	chains := map[string]*nftables.Chain{}
	// A chain of pontoon's that sits elsewhere in the kernel (made a base chain, a base chain
	// moved or made regular, by hand) cannot be added again as it should be: it is deleted
	// and added anew, and no chain is kept unchanged then. A base chain goes at once (nothing
	// can jump to one); a regular one once every chain that could jump to it is flushed.
	moved := map[string]bool{}
	for _, ch := range rs.Chains {
		if k, ok := now.hooks[ch.Name]; ok && chainMoved(ch, k) {
			moved[ch.Name] = true
			unchanged = nil
		}
	}
	var later []*nftables.Chain
	// Chains first, rules after: a jump must name a chain that already exists
	// in the batch.
	for _, ch := range rs.Chains {
		if unchanged[ch.Name] {
			continue
		}
		nc := &nftables.Chain{Name: ch.Name, Table: t}
		if ch.Hook != "" {
			hook, ok := chainHook(ch.Hook)
			if !ok {
				return fmt.Errorf("chain %s: unknown hook %q", ch.Name, ch.Hook)
			}
			nc.Hooknum = hook
			nc.Priority = nftables.ChainPriorityRef(nftables.ChainPriority(ch.Priority))
			nc.Type = nftables.ChainTypeFilter
			nc.Device = ch.Device
			// Said every time: adding a chain that exists keeps the policy it has, and one
			// set to drop by hand would stay.
			nc.Policy = &acceptPolicy
		}
		switch {
		case moved[ch.Name] && now.hooks[ch.Name].Hooked:
			c.DelChain(nc) // its rules go with it
			chains[ch.Name] = c.AddChain(nc)
		case moved[ch.Name]:
			c.FlushChain(nc)
			later = append(later, nc)
		default:
			chains[ch.Name] = c.AddChain(nc)
			if slices.Contains(now.chains, ch.Name) {
				c.FlushChain(nc)
			}
		}
	}
	if len(later) > 0 {
		// The chains that go, deleted further on, may jump to it too.
		planned := make(map[string]bool, len(rs.Chains))
		for _, ch := range rs.Chains {
			planned[ch.Name] = true
		}
		for _, name := range now.chains {
			if !planned[name] {
				c.FlushChain(&nftables.Chain{Name: name, Table: t})
			}
		}
	}
	for _, nc := range later {
		c.DelChain(nc)
		chains[nc.Name] = c.AddChain(nc)
	}
	sums := rs.chainSums()
	for _, ch := range rs.Chains {
		if unchanged[ch.Name] {
			continue
		}
		for i, r := range ch.Rules {
			m, err := r.matches(func(name string) *nftables.Set { return sets[name] })
			if err != nil {
				return fmt.Errorf("chain %s rule %d (%s): %w", ch.Name, i, r, err)
			}
			c.AddRule(&nftables.Rule{Table: t, Chain: chains[ch.Name], Exprs: m.Exprs(), UserData: ruleTag(sums[ch.Name], i)})
		}
	}
	// A chain rs no longer has goes with its rules (the port of a guest that
	// left, the postrouting chain of a loss that ended); the regular chains
	// last, once no rule of this batch jumps to them any more.
	stale := func(name string) bool { return chains[name] == nil && !unchanged[name] }
	for _, name := range now.chains {
		if stale(name) && name != FilterChain && name != EgressChain && !isCountingChain(name) {
			c.DelChain(&nftables.Chain{Name: name, Table: t})
		}
	}
	for _, name := range []string{EgressChain, FilterChain} {
		if stale(name) && slices.Contains(now.chains, name) {
			c.DelChain(&nftables.Chain{Name: name, Table: t})
		}
	}
	// The counting chains after every chain whose rules could jump to them.
	for _, name := range now.chains {
		if stale(name) && isCountingChain(name) {
			c.DelChain(&nftables.Chain{Name: name, Table: t})
		}
	}
	marker := sets[MarkerSet]
	if now.marker != "" {
		// The marker and buffer of the rules in force go. Adding both first
		// makes the delete safe where a table of an older layout lacks one.
		old := []nftables.SetElement{{Key: be32(markerKey)}, {Key: be32(bufferKey)}}
		if err := c.SetAddElements(marker, old); err != nil {
			return fmt.Errorf("queue the marker: %w", err)
		}
		if err := c.SetDeleteElements(marker, old); err != nil {
			return fmt.Errorf("queue the marker: %w", err)
		}
	}
	if err := c.SetAddElements(marker, []nftables.SetElement{
		{Key: be32(markerKey), Comment: rs.Marker},
		{Key: be32(bufferKey), Comment: strconv.Itoa(buf)},
	}); err != nil {
		return fmt.Errorf("queue the marker: %w", err)
	}
	// The buffer's transaction and this one.
	return queueGen(c, t, now.gen+2, now.seenGen)
}

// queueGen queues genKey's replacement by gen, the generation the batch leaves once
// committed (when nobody else commits meanwhile), or with known false its removal: a
// generation that is not known must not be written, since one too high would let a later
// edit by hand match it.
func queueGen(c *nftables.Conn, t *nftables.Table, gen uint16, known bool) error {
	marker := markerSet(t)
	old := []nftables.SetElement{{Key: be32(genKey)}}
	if err := c.SetAddElements(marker, old); err != nil {
		return fmt.Errorf("queue the generation: %w", err)
	}
	if err := c.SetDeleteElements(marker, old); err != nil {
		return fmt.Errorf("queue the generation: %w", err)
	}
	if !known {
		return nil
	}
	if err := c.SetAddElements(marker, []nftables.SetElement{{Key: be32(genKey), Comment: strconv.FormatUint(uint64(gen), 10)}}); err != nil {
		return fmt.Errorf("queue the generation: %w", err)
	}
	return nil
}

// recordedGen is the generation genKey holds in the marker set, if it holds one.
func recordedGen(c *nftables.Conn, t *nftables.Table) (uint16, bool) {
	els, err := nftwire.SetElements(c, markerSet(t))
	if err != nil {
		return 0, false
	}
	for _, el := range els {
		if be(el.Key) == genKey {
			return parseGen(el.Comment)
		}
	}
	return 0, false
}

// parseGen reads genKey's comment.
func parseGen(comment string) (uint16, bool) {
	n, err := strconv.ParseUint(comment, 10, 16)
	return uint16(n), err == nil
}

// sum is a fingerprint of the chain: its hook and its rules, and in its top 16 bits their
// number, so that a chain emptied by hand is told from one committed empty (see checkRules).
func (ch Chain) sum() uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s %s %s %d\n", ch.Name, ch.Hook, ch.Device, ch.Priority)
	for _, r := range ch.Rules {
		fmt.Fprintf(h, "%s\n", r)
	}
	return h.Sum64()&(1<<48-1) | uint64(min(len(ch.Rules), 1<<16-1))<<48
}

// ruleCount is the number of rules of the chain whose fingerprint is sum.
func ruleCount(sum uint64) int { return int(sum >> 48) }

// ruleTag is the comment rule i of the chain whose fingerprint is sum carries (nft shows it:
// comment "pontoon SUM I"), so that what is in a chain can be checked against what was
// committed without rendering the kernel's rules (checkRules).
func ruleTag(sum uint64, i int) []byte {
	b := make([]byte, 2, 40)
	b[0] = byte(userdata.TypeComment)
	b = append(b, rulePrefix...)
	b = strconv.AppendUint(b, sum, 16)
	b = strconv.AppendInt(append(b, ' '), int64(i), 10)
	b = append(b, 0) // nft reads a comment as a C string
	b[1] = byte(len(b) - 2)
	return b
}

const rulePrefix = "pontoon "

// usesSets reports whether a rule of the chain looks the class sets up.
func (ch Chain) usesSets() bool {
	return slices.ContainsFunc(ch.Rules, func(r Rule) bool { return r.Classify != "" || r.Blocked })
}

// chainSums fingerprints every chain of rs, for the marker, the commit and the
// record (see committed); a sealed rule set has them already.
func (rs RuleSet) chainSums() map[string]uint64 {
	if rs.sums != nil {
		return rs.sums
	}
	out := make(map[string]uint64, len(rs.Chains))
	for _, ch := range rs.Chains {
		out[ch.Name] = ch.sum()
	}
	return out
}

// seal makes rs the rule set to commit as generation: its chains'
// fingerprints, computed once, and the marker made from them.
func (rs *RuleSet) seal(generation uint64) {
	rs.sums = rs.chainSums()
	rs.Marker = marker(generation, *rs)
}

func hasDevices(rs RuleSet) bool {
	for _, ch := range rs.Chains {
		if ch.Device != "" {
			return true
		}
	}
	return false
}

func presentLinks(nsPath string) (map[string]bool, error) {
	h, err := kernel.OpenNS(nsPath)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links in %s: %w", nsPath, err)
	}
	out := map[string]bool{}
	for _, l := range links {
		out[l.Attrs().Name] = true
	}
	return out, nil
}
