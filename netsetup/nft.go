package netsetup

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/kernel"
	"github.com/pontoon-dev/pontoon/internal/nftpool"
	"github.com/pontoon-dev/pontoon/internal/nftrule"
	"github.com/pontoon-dev/pontoon/internal/nftwire"
)

// chainSpec is a base chain of pontoon's table with its rules.
type chainSpec struct {
	name     string
	typ      nftables.ChainType
	hook     *nftables.ChainHook
	priority *nftables.ChainPriority
	rules    []nftrule.Rule
}

// setSpec is a named set of pontoon's table with its elements.
type setSpec struct {
	name  string
	types []nftables.SetDatatype // one per field of a concatenation
	// typeOf, when set, declares the set in the text form by the expressions of its key
	// (nft's typeof): a key with a raw payload field has no type nft(8) would compare it
	// with. The kernel sees the same key bytes either way.
	typeOf string
	elems  []setElem
	// room is how many elements may be added to the set after it is made (by attaches, or
	// for a dynamic set by rules); with its elements it makes the set's size, its limit in
	// the kernel.
	room int
	// timeout, when set, makes the set dynamic: rules add its elements (up to room of them),
	// each for this long.
	timeout time.Duration
}

// setElem is one element of a set: its nft syntax and its key as the kernel stores it.
type setElem struct {
	key []byte
	// text writes key as nft does, for the dry run's nft script only: a function shared by
	// the elements of a set, since a plan's sets hold some 1,500 elements.
	text func(key []byte) string
}

// macAndAddr writes a key of a MAC and an address, IPv4 or IPv6.
func macAndAddr(key []byte) string {
	ip, _ := netip.AddrFromSlice(key[8:])
	return fmt.Sprintf("%s . %s", net.HardwareAddr(key[:6]), ip)
}

// macAndRaw writes a key of a MAC and a raw field of n bytes (nft's hex form).
func macAndRaw(n int) func([]byte) string {
	return func(key []byte) string { return fmt.Sprintf("%s . 0x%x", net.HardwareAddr(key[:6]), key[8:8+n]) }
}

func (s setSpec) typeText() string {
	names := make([]string, len(s.types))
	for i, t := range s.types {
		names[i] = t.Name
	}
	return strings.Join(names, " . ")
}

// nftSet is the set as an object for the nftables library, bound to tbl.
func (s setSpec) nftSet(tbl *nftables.Table) *nftables.Set {
	set := &nftables.Set{Table: tbl, Name: s.name, KeyType: s.types[0]}
	if len(s.types) > 1 {
		set.KeyType = nftables.MustConcatSetType(s.types...)
		set.Concatenation = true
	}
	if n := s.size(); n > 0 {
		// Sized for all it will hold, the kernel allocates the set's hash table once instead
		// of growing it while its elements arrive.
		set.Size = uint32(n)
	}
	if s.timeout > 0 {
		set.Dynamic, set.HasTimeout, set.Timeout = true, true, s.timeout
	}
	return set
}

// size is the set's limit: for a set filled when it is made, what it holds then and the
// room left for attaches; for a dynamic set its room; 0 (no limit) for any other set that
// starts empty.
func (s setSpec) size() int {
	if len(s.elems) == 0 && s.timeout == 0 {
		return 0
	}
	return len(s.elems) + s.room
}

// decl is the set's key and size declaration in nft syntax.
func (s setSpec) decl() string {
	d := "type " + s.typeText()
	if s.typeOf != "" {
		d = "typeof " + s.typeOf
	}
	if n := s.size(); n > 0 {
		d += fmt.Sprintf("; size %d", n)
	}
	if s.timeout > 0 {
		d += fmt.Sprintf("; flags dynamic,timeout; timeout %s", s.timeout)
	}
	return d
}

func (s setSpec) text() string {
	if len(s.elems) == 0 {
		return fmt.Sprintf("set %s { %s; }", s.name, s.decl())
	}
	texts := make([]string, len(s.elems))
	for i, e := range s.elems {
		texts[i] = e.text(e.key)
	}
	return fmt.Sprintf("set %s { %s; elements = { %s } }", s.name, s.decl(), strings.Join(texts, ", "))
}

func nftElems(es []setElem) []nftables.SetElement {
	out := make([]nftables.SetElement, len(es))
	for i, e := range es {
		out[i] = nftables.SetElement{Key: e.key}
	}
	return out
}

// tableSpec is pontoon's whole table in one namespace. It is always replaced as a whole in a
// single transaction, so the namespace never holds half a rule set.
type tableSpec struct {
	family nftables.TableFamily // zero: ip
	sets   []setSpec
	chains []chainSpec
}

func (t tableSpec) nftFamily() nftables.TableFamily {
	if t.family == 0 {
		return nftables.TableFamilyIPv4
	}
	return t.family
}

// familyName is the family as nft(8) spells it.
func (t tableSpec) familyName() string { return nftrule.FamilyName(t.nftFamily()) }

// text renders the table as an nft script, as `nft -f` would take it.
func (t tableSpec) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table %s %s {\n", t.familyName(), TableName)
	for _, s := range t.sets {
		fmt.Fprintf(&b, "  %s\n", s.text())
	}
	for _, c := range t.chains {
		fmt.Fprintf(&b, "  chain %s { type %s hook %s priority %d;", c.name, c.typ, hookName(*c.hook), *c.priority)
		for _, r := range c.rules {
			fmt.Fprintf(&b, " %s;", r.Text())
		}
		b.WriteString(" }\n")
	}
	b.WriteString("}")
	return b.String()
}

func hookName(h nftables.ChainHook) string {
	switch h {
	case *nftables.ChainHookPrerouting:
		return "prerouting"
	case *nftables.ChainHookInput:
		return "input"
	case *nftables.ChainHookForward:
		return "forward"
	case *nftables.ChainHookOutput:
		return "output"
	case *nftables.ChainHookPostrouting:
		return "postrouting"
	}
	return fmt.Sprint(uint32(h))
}

// show renders the equivalent command; an empty nsName means the host's own namespace.
func (t tableSpec) show(nsName string) string {
	prefix := ""
	if nsName != "" {
		prefix = "ip netns exec " + nsName + " "
	}
	f := t.familyName()
	// Flushing a table removes its rules but keeps its sets' elements: each set is declared
	// (so that it exists) and flushed before the table brings its elements back.
	var sets strings.Builder
	for _, s := range t.sets {
		fmt.Fprintf(&sets, "add set %s %s %s { %s; }\nflush set %s %s %s\n", f, TableName, s.name, s.decl(), f, TableName, s.name)
	}
	return fmt.Sprintf("%snft -f - <<'EOF'\ntable %s %s\nflush table %s %s\n%s%s\nEOF", prefix, f, TableName, f, TableName, sets.String(), t.text())
}

// replaceTable installs t as pontoon's table in the namespace n, replacing
// the rules of any previous version, in one atomic transaction.
//
// The table's rules are flushed and refilled rather than the table deleted and re-added: deleting a
// base chain unregisters its hook, which makes the commit wait for an RCU grace period (about
// 10-30 ms), while a flush costs microseconds. Both happen in one batch, so no packet sees the
// namespace without its rules.
func replaceTable(n *kernel.NS, t tableSpec) error { return replaceTables(n, t) }

// replaceTables installs several of pontoon's tables (one per family) in one transaction: a
// namespace gets all its rules at once, and the kernel commits once.
func replaceTables(n *kernel.NS, ts ...tableSpec) error {
	c, err := n.Nftables()
	if err != nil {
		return err
	}
	defer c.Close()
	return commitTables(c.Conn, ts)
}

// rewriteTables is replaceTables for a namespace that has the tables already (a forward
// added or gone, a guest of a forward arriving or leaving). The rules a rewrite replaces go
// to the kernel's destroy list, which the close of a fresh socket would wait for (10 ms and
// more): the pooled connection stays open instead, and a command hands it on at its exit
// (nftpool).
func rewriteTables(nsPath string, ts ...tableSpec) error {
	nftpool.MarkRemoved()
	return nftpool.With(nsPath, func(c *nftables.Conn) error { return commitTables(c, ts) })
}

// commitTables queues ts on c, each table flushed and refilled, and commits them as one
// transaction.
func commitTables(c *nftables.Conn, ts []tableSpec) error {
	for _, t := range ts {
		if err := addTable(c, t); err != nil {
			return err
		}
	}
	if err := nftwire.Flush(c); err != nil {
		return fmt.Errorf("install nftables table %s: %w", TableName, err)
	}
	return nil
}

// addTable queues t's table, flushed and refilled, on c.
func addTable(c *nftables.Conn, t tableSpec) error {
	tbl := c.AddTable(&nftables.Table{Name: TableName, Family: t.nftFamily()})
	c.FlushTable(tbl)
	for _, s := range t.sets {
		// Adding a set that exists with the same type keeps it and its elements: flush them.
		set := s.nftSet(tbl)
		if err := c.AddSet(set, nil); err != nil {
			return fmt.Errorf("add set %s: %w", s.name, err)
		}
		c.FlushSet(set)
		if len(s.elems) > 0 {
			if err := c.SetAddElements(set, nftElems(s.elems)); err != nil {
				return fmt.Errorf("add elements to set %s: %w", s.name, err)
			}
		}
	}
	for _, cs := range t.chains {
		ch := c.AddChain(&nftables.Chain{Name: cs.name, Table: tbl, Type: cs.typ, Hooknum: cs.hook, Priority: cs.priority})
		for _, r := range cs.rules {
			c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: r.Exprs()})
		}
	}
	return nil
}

// deleteTable removes pontoon's tables (ip and ip6) from a namespace; a missing table is
// not an error.
func deleteTable(n *kernel.NS) error {
	c, err := n.Nftables()
	if err != nil {
		return err
	}
	defer c.Close()
	for _, f := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6} {
		tbl := &nftables.Table{Name: TableName, Family: f}
		c.AddTable(tbl)
		c.DelTable(tbl)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("delete nftables table %s: %w", TableName, err)
	}
	return nil
}

func natChain(name string, hook *nftables.ChainHook, prio *nftables.ChainPriority, rules ...nftrule.Rule) chainSpec {
	return chainSpec{name: name, typ: nftables.ChainTypeNAT, hook: hook, priority: prio, rules: rules}
}

func filterChain(name string, hook *nftables.ChainHook, rules ...nftrule.Rule) chainSpec {
	return chainSpec{name: name, typ: nftables.ChainTypeFilter, hook: hook, priority: nftables.ChainPriorityFilter, rules: rules}
}
