package partition

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pontoon-dev/pontoon/internal/kernel"
	"github.com/pontoon-dev/pontoon/internal/nftpool"
	"github.com/pontoon-dev/pontoon/internal/statefile"
)

// Status returns the bridge's state as the kernel enforces it: the blocked
// pairs are read back from the kernel's table (with Since from the record),
// and Record.Kernel says whether they, the mode and the table's marker match
// what was recorded as applied. Without a reachable bridge namespace it
// returns the record with Record.Kernel saying why it could not check.
// Nothing applied ever is fullmesh.
func Status(t Target) (Record, error) {
	if t.StateDir == "" {
		return Record{}, errors.New("target: StateDir is empty; pass the run's state directory")
	}
	// Port security and the bridge's own tables, read under netsetup's lock before this
	// takes the partition's: a change of netsetup's may take the partition's lock under its own.
	var bridgeProblems []string
	if t.bridgeProblems != nil && t.NetnsPath != "" {
		p, err := t.bridgeProblems()
		if err != nil {
			p = []string{"the bridge's port security could not be read back: " + err.Error()}
		}
		bridgeProblems = p
	}
	// Under the bridge's lock: a change committing between the reads of the record and of the
	// kernel would pass for one made by hand. (Nothing was ever applied without the file.)
	unlock, err := statefile.LockIfThere(filepath.Join(t.StateDir, LockFile))
	if err != nil {
		return Record{}, err
	}
	if unlock != nil {
		defer unlock()
	}
	// The guests as they are now, under the lock: one that left and came back under another
	// port name since they were read would count its pairs against the old one.
	if t.guests != nil {
		if now, err := t.guests(); err == nil {
			t.Guests = now
		}
	}
	st, _, err := readStatus(t.StateDir)
	if err != nil {
		return Record{}, err
	}
	nftpool.NoteChange(st.AppliedAt)
	st = st.clone()
	if t.NetnsPath == "" {
		return st, nil
	}
	kt, err := readKernel(t.NetnsPath)
	if err != nil {
		// The bridge check says why, when its namespace is what failed (a pin another tool
		// hid or covered), in words the read's own error lacks.
		st.Kernel = &KernelCheck{Unread: true, Detail: strings.Join(append(bridgeProblems, err.Error()), "; ")}
		return st, nil
	}
	problems := compareTable(t.NetnsPath, kt, &st, t.Guests)
	hs := newHandles(t.NetnsPath) // the bridge's namespace and those of shaped guests, once each
	defer hs.close()
	problems = append(problems, shapingProblems(hs, st.Shaping, t.Guests)...)
	pp := portProblems(hs, t.Bridge, t.Guests, st.Shaping)
	if len(pp) > 0 && t.guests != nil {
		// A guest leaving since its bridge's guests were read sets its port down on its way
		// out: what holds for the guests there now, as for those before, stands.
		if now, err := t.guests(); err == nil {
			again := portProblems(hs, t.Bridge, now, st.Shaping)
			pp = slices.DeleteFunc(pp, func(p string) bool { return !slices.Contains(again, p) })
		}
	}
	problems = append(problems, pp...)
	for _, name := range kt.Dormant {
		// The partition's wakes at the next change; the bridge's and the services' do not.
		problems = append(problems, fmt.Sprintf("table %s is dormant (set by hand): none of its rules run (`nft add table %s` wakes it)", name, name))
	}
	problems = append(problems, bridgeProblems...)
	if len(kt.Foreign) > 0 {
		problems = append(problems, fmt.Sprintf("the bridge's namespace holds nftables tables that are not pontoon's (%s): their rules may drop what the partition lets through", strings.Join(kt.Foreign, ", ")))
	}
	if st.Before != nil {
		if in, err := aheadInForce(t.NetnsPath, st); err == nil && !in {
			// Written ahead for its deadline, or for its shaping alone (writeAhead).
			what, who := "a --for", "the --for's restorer or the next change records"
			if !slices.ContainsFunc(st.Pending, func(p Timed) bool { return p.Change == st.Change }) {
				what, who = "it changes shaping", "the next change records"
			}
			// First: it says what the differences that follow come from.
			problems = append([]string{fmt.Sprintf("the change of generation %d (%s) was recorded ahead of its commit and its command stopped before the kernel got it: the kernel holds the state before it, which %s (`pontoon partition heal` clears both)", st.Change, what, who)}, problems...)
		}
	}
	if len(problems) > 0 {
		if st.Kernel.InEffect {
			st.Kernel = &KernelCheck{Detail: strings.Join(problems, "; ")}
		} else {
			st.Kernel.Detail += "; " + strings.Join(problems, "; ")
		}
	}
	return st, nil
}

// tableProblems says how the kernel's partition table differs from what st records, as
// Status reports it; none when it holds st.
func tableProblems(nsPath string, kt kernelTable, st Record, guests []Guest) []string {
	seen := st.clone()
	problems := compareTable(nsPath, kt, &seen, guests)
	if !seen.Kernel.InEffect {
		problems = append([]string{seen.Kernel.Detail}, problems...)
	}
	return problems
}

// compareTable puts the kernel's pairs and mode in st (compareKernel, which sets st.Kernel)
// and says what else of the table differs from what st recorded: its class maps and rules.
func compareTable(nsPath string, kt kernelTable, st *Record, guests []Guest) []string {
	recorded := st.clone() // the rules are compared with what the record compiles to
	st.Kernel = compareKernel(kt, st, guests)
	return append(classProblems(kt, *st), ruleProblems(nsPath, kt, recorded, guests)...)
}

// compareKernel replaces st's blocked pairs and mode by the kernel's and says
// whether the kernel holds what st records.
func compareKernel(kt kernelTable, st *Record, guests []Guest) *KernelCheck {
	recorded := st.Blocked
	since := make(map[Pair]time.Time, len(recorded))
	for _, b := range recorded {
		since[Pair{b.Src, b.Dst}] = b.Since
	}
	st.Blocked = kt.blockedPairs(guests, recorded, st.Guests)
	if st.Blocked == nil {
		st.Blocked = []BlockedPair{}
	}
	for i, b := range st.Blocked {
		st.Blocked[i].Since = since[Pair{b.Src, b.Dst}]
	}
	var problems []string
	switch {
	case len(kt.Present) > 1:
		problems = append(problems, fmt.Sprintf("table %s exists in both the %s and the %s family; apply or heal again to keep one",
			TableName, kt.Present[0].Family(), kt.Present[1].Family()))
	case len(kt.Present) > 0 && !st.Table:
		problems = append(problems, fmt.Sprintf("table %s %s exists but the recorded state needs none", kt.Present[0].Family(), TableName))
	case len(kt.Present) == 0 && st.Table:
		problems = append(problems, fmt.Sprintf("table %s is missing (in both the netdev and the bridge family)", TableName))
	case len(kt.Present) == 1 && st.Marker != "" && kt.Marker != st.Marker:
		problems = append(problems, fmt.Sprintf("the table is not the one last applied (kernel: %q, record: %q)", kt.Marker, st.Marker))
	}
	if k, r := present(st.Blocked, guests), present(recorded, guests); !samePairs(r, k) {
		problems = append(problems, fmt.Sprintf("between the guests on the bridge, the kernel blocks %d pairs, the record %d", len(k), len(r)))
	}
	if len(kt.Present) > 0 {
		mode := ModeDrop
		if kt.Reject {
			mode = ModeReject
		}
		if len(st.Blocked) > 0 && (mode != st.Mode || kt.Cut != (st.Cut && st.Mode != ModeReject)) {
			problems = append(problems, fmt.Sprintf("the kernel's mode is %s (cut %t), the record's %s (cut %t)", mode, kt.Cut, st.Mode, st.Cut))
			st.Mode, st.Cut = mode, kt.Cut
		}
	}
	if len(problems) > 0 {
		return &KernelCheck{Detail: strings.Join(problems, "; ")}
	}
	return &KernelCheck{InEffect: true}
}

// present is the pairs between guests the bridge has now. A guest that left keeps its pairs
// in the kernel and in the record until the next change; neither side can say more about
// it, and no packet can be sent to or from it, so only the pairs of the guests present tell
// whether the kernel holds what was applied.
func present(pairs []BlockedPair, guests []Guest) []BlockedPair {
	here := make(map[string]bool, len(guests))
	for _, g := range guests {
		here[g.Name] = true
	}
	var out []BlockedPair
	for _, p := range pairs {
		if here[p.Src] && here[p.Dst] {
			out = append(out, p)
		}
	}
	return out
}

func samePairs(a, b []BlockedPair) bool {
	if len(a) != len(b) {
		return false
	}
	set := make(map[Pair]bool, len(a))
	for _, p := range a {
		set[Pair{p.Src, p.Dst}] = true
	}
	for _, p := range b {
		if !set[Pair{p.Src, p.Dst}] {
			return false
		}
	}
	return true
}

// portProblems names the guests whose port in the bridge namespace was set down, taken off
// the bridge, isolated or stopped from forwarding outside pontoon: whatever the partition
// says, such a guest reaches no one (or, isolated, no other isolated port). (A port that is
// not there is a guest leaving or coming, which the rules' check covers.)
func portProblems(hs *handles, bridge string, guests []Guest, shaping []Shaping) []string {
	if len(guests) == 0 {
		return nil
	}
	h, err := hs.get("")
	if err != nil {
		return nil // the table could be read from it a moment ago: it is going
	}
	ports, err := h.Ports()
	if err != nil {
		return []string{"the bridge's ports cannot be listed: " + err.Error()}
	}
	byName := make(map[string]kernel.Port, len(ports))
	for _, p := range ports {
		byName[p.Name] = p
	}
	br, hasBridge := byName[bridge]
	var out []string
	for _, g := range guests {
		p, ok := byName[g.Port]
		switch {
		case g.Port == "" || !ok:
		case !p.Up:
			out = append(out, fmt.Sprintf("port %s of guest %s is down (set down outside pontoon, or by a `guest del` that was killed: `pontoon gc` removes such a guest), so the guest reaches no one", g.Port, g.Name))
		case hasBridge && p.Master != br.Index:
			out = append(out, fmt.Sprintf("port %s of guest %s is not on bridge %s (taken off outside pontoon), so the guest reaches no one", g.Port, g.Name, bridge))
		case p.Isolated:
			out = append(out, fmt.Sprintf("port %s of guest %s is isolated (set outside pontoon): the bridge forwards nothing between it and other isolated ports", g.Port, g.Name))
		case p.State >= 0 && p.State != kernel.StateForwarding:
			out = append(out, fmt.Sprintf("port %s of guest %s does not forward (bridge port state %d: the guest's end is down, or the port was changed outside pontoon), so the guest reaches no one", g.Port, g.Name, p.State))
		}
	}
	// A qdisc of another tool on a port shapes or drops what reaches the guest, and one on
	// its ingress sees packets before the partition's rules do. The kernel's default qdisc
	// has no handle; pontoon's trees are under QdiscMajor, on the ports it shapes (a qdisc
	// under that handle elsewhere is not one of pontoon's: shapingProblems reads the others).
	qs, err := h.QdiscList(nil)
	if err != nil {
		return append(out, "the ports' qdiscs cannot be listed: "+err.Error())
	}
	guestOf := map[int]Guest{}
	for _, g := range guests {
		if p, ok := byName[g.Port]; ok {
			guestOf[p.Index] = g
		}
	}
	shaped := map[string]bool{}
	for _, sh := range shaping {
		if sh.Netns == "" {
			shaped[sh.Device] = true
		}
	}
	for _, q := range qs {
		a := q.Attrs()
		g, ok := guestOf[a.LinkIndex]
		if !ok || a.Handle == 0 || shaped[g.Port] && (a.Handle>>16 == QdiscMajor || a.Parent>>16 == QdiscMajor) {
			continue
		}
		out = append(out, fmt.Sprintf("port %s of guest %s has a %s qdisc pontoon did not add (handle %x:): it may shape or drop what the guest gets", g.Port, g.Name, q.Type(), a.Handle>>16))
	}
	return out
}
