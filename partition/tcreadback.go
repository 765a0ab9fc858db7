package partition

import (
	"fmt"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
)

// Status reads the shaping back whole, not only its root: a class's rate changed with `tc
// class change`, a netem's settings changed or removed, a pair's filter deleted all leave the
// root in place while what reaches the guest is no longer what the record says. A change
// repairs what this finds (applyShaping).

// shapingDrift says how the traffic control on sh's device differs from the tree addShaping
// builds for sh: "" when it is that tree, "is gone" without pontoon's root qdisc (or device),
// else "differs: " and what does.
func shapingDrift(hs *handles, sh Shaping) string {
	h, err := hs.get(sh.Netns)
	if err != nil {
		return "is gone"
	}
	link, err := h.LinkByName(sh.Device)
	if err != nil {
		return "is gone"
	}
	qs, err := h.QdiscList(link)
	if err != nil {
		return unreadable(err)
	}
	var root netlink.Qdisc
	under := map[uint32]netlink.Qdisc{} // qdiscs in pontoon's tree, by parent class
	for _, q := range qs {
		switch a := q.Attrs(); {
		case isOwnRoot(q):
			root = q
		case a.Parent>>16 == QdiscMajor:
			under[a.Parent] = q
		}
	}
	if root == nil {
		return "is gone"
	}
	htb, ok := root.(*netlink.Htb)
	if !ok {
		return fmt.Sprintf("differs: a %s root qdisc has pontoon's handle instead of pontoon's htb", root.Type())
	}
	var problems []string
	if htb.Defcls != classDefault {
		problems = append(problems, fmt.Sprintf("the default class is %x, pontoon's %x", htb.Defcls, classDefault))
	}
	classes, err := h.ClassList(link, netlink.MakeHandle(QdiscMajor, 0))
	if err != nil {
		return unreadable(err)
	}
	have := map[uint32]netlink.Class{}
	for _, c := range classes {
		have[c.Attrs().Handle] = c
	}
	for _, w := range wantClasses(link.Attrs().Index, sh) {
		id := w.class.Handle
		name := classString(id)
		got, ok := have[id].(*netlink.HtbClass)
		delete(have, id)
		switch {
		case !ok:
			problems = append(problems, "class "+name+" is gone")
		case got.Rate != w.class.Rate || got.Ceil != w.class.Ceil:
			problems = append(problems, fmt.Sprintf("class %s rate %s ceil %s, pontoon's %s", name,
				Rate(got.Rate*8), Rate(got.Ceil*8), Rate(w.class.Rate*8)))
		case got.Buffer != w.class.Buffer || got.Cbuffer != w.class.Cbuffer || got.Prio != w.class.Prio:
			// (Not the quantum: the kernel derives its own from the rate.)
			problems = append(problems, fmt.Sprintf("class %s burst, cburst or prio changed", name))
		}
		q, hasQdisc := under[id]
		delete(under, id)
		switch {
		case w.netem == nil && hasQdisc:
			problems = append(problems, fmt.Sprintf("class %s has a %s qdisc pontoon did not add", name, q.Type()))
		case w.netem != nil && !hasQdisc:
			problems = append(problems, "the netem of class "+name+" is gone")
		case w.netem != nil:
			if d := netemDrift(q, w.netem); d != "" {
				problems = append(problems, "the netem of class "+name+" "+d)
			}
		}
	}
	for id, c := range have {
		problems = append(problems, fmt.Sprintf("%s class %s is not pontoon's", c.Type(), classString(id)))
	}
	for parent, q := range under {
		problems = append(problems, fmt.Sprintf("%s qdisc under %s is not pontoon's", q.Type(), classString(parent)))
	}
	filters, err := h.FilterList(link, netlink.MakeHandle(QdiscMajor, 0))
	if err != nil {
		return unreadable(err)
	}
	problems = append(problems, filterDrift(filters, sh)...)
	if len(problems) == 0 {
		return ""
	}
	slices.Sort(problems)
	return "differs: " + strings.Join(problems, ", ")
}

// unreadable is shapingDrift's answer when a dump fails: a device removed meanwhile (a guest
// leaving) is gone like one that was never found.
func unreadable(err error) string {
	if isGone(err) {
		return "is gone"
	}
	return "cannot be read: " + err.Error()
}

type wantClass struct {
	class *netlink.HtbClass
	netem *netlink.Netem
}

// wantClasses are the classes addShaping adds for sh, with their netem, as netlink encodes
// them: the top class first, then one for each of sh.Classes.
func wantClasses(idx int, sh Shaping) []wantClass {
	rate := func(r Rate) uint64 {
		if r == 0 {
			r = MaxRate
		}
		return uint64(r)
	}
	top := netlink.MakeHandle(QdiscMajor, classTop)
	out := []wantClass{{class: netlink.NewHtbClass(netlink.ClassAttrs{LinkIndex: idx, Parent: netlink.MakeHandle(QdiscMajor, 0), Handle: top},
		netlink.HtbClassAttrs{Rate: rate(sh.Rate), Ceil: rate(sh.Rate)})}}
	for _, c := range sh.Classes {
		id := netlink.MakeHandle(QdiscMajor, c.Minor)
		w := wantClass{class: netlink.NewHtbClass(netlink.ClassAttrs{LinkIndex: idx, Parent: top, Handle: id},
			netlink.HtbClassAttrs{Rate: rate(c.Rate), Ceil: rate(c.Rate)})}
		if c.Netem != nil {
			w.netem = netlink.NewNetem(netlink.QdiscAttrs{LinkIndex: idx, Parent: id, Handle: netlink.MakeHandle(0x7000+c.Minor, 0)}, netemAttrs(c.Netem))
		}
		out = append(out, w)
	}
	return out
}

// netemDrift compares a netem read back with the one pontoon adds, in the kernel's units
// (scheduler ticks, probabilities scaled to 2^32).
func netemDrift(q netlink.Qdisc, want *netlink.Netem) string {
	got, ok := q.(*netlink.Netem)
	if !ok {
		return "is a " + q.Type() + " qdisc"
	}
	var d []string
	for _, f := range []struct {
		name      string
		got, want uint32
	}{
		{"delay", got.Latency, want.Latency}, {"jitter", got.Jitter, want.Jitter},
		{"loss", got.Loss, want.Loss}, {"duplicate", got.Duplicate, want.Duplicate},
		{"corrupt", got.CorruptProb, want.CorruptProb}, {"reorder", got.ReorderProb, want.ReorderProb},
		{"gap", got.Gap, want.Gap}, {"limit", got.Limit, want.Limit},
	} {
		if f.got != f.want {
			d = append(d, f.name)
		}
	}
	if len(d) == 0 {
		return ""
	}
	return "was changed (" + strings.Join(d, ", ") + ")"
}

// filterDrift compares the u32 filters that put a pair's packets into its class with those
// addShaping adds: for each class and family, those matching the source's addresses.
func filterDrift(filters []netlink.Filter, sh Shaping) []string {
	type key struct {
		class uint32
		proto uint16
	}
	have := map[key][][]netlink.TcU32Key{}
	var problems []string
	for _, f := range filters {
		u, ok := f.(*netlink.U32)
		if !ok {
			problems = append(problems, fmt.Sprintf("a %s filter is not pontoon's", f.Type()))
			continue
		}
		if u.ClassId == 0 && u.Sel == nil && len(u.Actions) == 0 {
			continue // a u32 hash table's own entry, which every u32 filter comes with
		}
		var keys []netlink.TcU32Key
		if u.Sel != nil {
			keys = u.Sel.Keys
		}
		k := key{u.ClassId, u.Protocol}
		have[k] = append(have[k], keys)
	}
	check := func(c Class, proto uint16, want [][]netlink.TcU32Key, family string) {
		k := key{ClassID(c.Minor), proto}
		got := have[k]
		delete(have, k)
		switch {
		case len(got) == 0:
			problems = append(problems, fmt.Sprintf("the %s filter of %s's class is gone", family, c.From))
		case !sameKeySets(got, want):
			problems = append(problems, fmt.Sprintf("the %s filter of %s's class was changed", family, c.From))
		}
	}
	for _, c := range sh.Classes {
		if c.Src.IsValid() {
			check(c, netlinkProtoIP, [][]netlink.TcU32Key{srcKeys4(c.Src)}, "IPv4")
		}
		if src6 := c.sources6(); len(src6) > 0 {
			var want [][]netlink.TcU32Key
			for _, src := range src6 {
				want = append(want, srcKeys6(src))
			}
			check(c, netlinkProtoIPv6, want, "IPv6")
		}
	}
	for k := range have {
		problems = append(problems, "a filter to class "+classString(k.class)+" is not pontoon's")
	}
	return problems
}

// sameKeySets reports whether got holds the filters of want and no others; want's differ from
// one another (an address and a link-local one), so equal lengths and each found suffice.
func sameKeySets(got, want [][]netlink.TcU32Key) bool {
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g []netlink.TcU32Key) bool { return sameKeys(g, w) }) {
			return false
		}
	}
	return true
}

func sameKeys(a, b []netlink.TcU32Key) bool {
	return slices.EqualFunc(a, b, func(x, y netlink.TcU32Key) bool {
		return x.Mask == y.Mask && x.Val == y.Val && x.Off == y.Off && x.OffMask == y.OffMask
	})
}

func classString(id uint32) string { return fmt.Sprintf("%x:%x", id>>16, id&0xffff) }
