package partition

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/pontoon-dev/pontoon/internal/kernel"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Traffic shaping is placed where no packet can reach a guest without
// passing the partition table first:
//
//   - What is delivered to a guest leaves the bridge on the guest's port, so
//     the guest's incoming rate and netem, and the classes of pair impairments
//     towards it, are an HTB tree on the port's egress in the bridge
//     namespace. Pair classes are chosen by u32 filters on the source address (for IPv6, its
//     link-local one too).
//   - What a guest sends is shaped where it is sent: on the egress of the
//     guest's own eth0 inside its namespace (where container tools shape
//     too). The packets then enter the bridge through the port's ingress and
//     meet the partition table like any other.
//
// Nothing is ever attached to a port's tc ingress. tc ingress runs before the
// netdev ingress hook that holds the partition table, and a packet that tc
// redirects (to an IFB device, to shape it there) comes back flagged to skip
// classification, which skips that hook as well: a shaped guest would cross
// every partition and every loss rule.

// GuestIface is the guest's end of its port inside the guest's namespace,
// where what the guest sends is shaped.
const GuestIface = netsetup.GuestIfName

// shapingKey identifies the device a Shaping configures.
type shapingKey struct{ netns, device string }

func keyOf(sh Shaping) shapingKey { return shapingKey{sh.Netns, sh.Device} }

// handles opens one rtnetlink handle per namespace on demand. The empty
// namespace path means the bridge namespace.
type handles struct {
	bridge string
	m      map[string]*handleEntry
}

type handleEntry struct {
	h   *kernel.NS
	err error
}

func newHandles(bridgeNS string) *handles {
	return &handles{bridge: bridgeNS, m: map[string]*handleEntry{}}
}

func (hs *handles) get(nsPath string) (*kernel.NS, error) {
	if nsPath == "" {
		nsPath = hs.bridge
	}
	e, ok := hs.m[nsPath]
	if !ok {
		e = &handleEntry{}
		e.h, e.err = kernel.OpenNS(nsPath)
		hs.m[nsPath] = e
	}
	return e.h, e.err
}

func (hs *handles) close() {
	for _, e := range hs.m {
		e.h.Close()
	}
}

// applyShaping moves traffic control from have to want, touching only
// devices whose configuration differs.
func applyShaping(bridgeNS string, have, want []Shaping) error {
	if len(have) == 0 && len(want) == 0 {
		return nil
	}
	hs := newHandles(bridgeNS)
	defer hs.close()
	wantBy := map[shapingKey]Shaping{}
	for _, sh := range want {
		wantBy[keyOf(sh)] = sh
	}
	haveBy := map[shapingKey]Shaping{}
	for _, sh := range have {
		haveBy[keyOf(sh)] = sh
		if w, ok := wantBy[keyOf(sh)]; !ok || !reflect.DeepEqual(w, sh) {
			if err := removeShaping(hs, sh); err != nil {
				return err
			}
		}
	}
	for _, sh := range want {
		// The record is not the kernel: a guest added again has a new port, bare, and a
		// tree changed by hand is put back.
		if old, ok := haveBy[keyOf(sh)]; ok && reflect.DeepEqual(old, sh) && shapingDrift(hs, sh) == "" {
			continue
		}
		h, err := hs.get(sh.Netns)
		if err != nil {
			return fmt.Errorf("shape guest %s: %w", sh.Guest, err)
		}
		if err := addShaping(h, sh); err != nil {
			return err
		}
	}
	return nil
}

// removeShaping deletes the tree sh describes. A guest whose namespace or
// device is gone has nothing left to undo.
func removeShaping(hs *handles, sh Shaping) error {
	h, err := hs.get(sh.Netns)
	if err != nil {
		if sh.Netns != "" && nsGone(err) {
			return nil
		}
		return fmt.Errorf("unshape guest %s: %w", sh.Guest, err)
	}
	link, err := h.LinkByName(sh.Device)
	if err != nil {
		return nil
	}
	return delOwnRoot(h, link)
}

// nsGone reports an error from opening a namespace that no longer exists:
// a removed pin or a dead process (ENOENT, ESRCH), or a pin file whose
// namespace was unmounted (setns answers EINVAL for a plain file).
func nsGone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) || errors.Is(err, unix.EINVAL)
}

func isGone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EINVAL)
}

// isOwnRoot reports whether q is a root qdisc partition added.
func isOwnRoot(q netlink.Qdisc) bool {
	a := q.Attrs()
	return a.Parent == netlink.HANDLE_ROOT && a.Handle>>16 == QdiscMajor
}

// delOwnRoot deletes the root qdisc of link if partition added it.
func delOwnRoot(h *kernel.NS, link netlink.Link) error {
	qs, err := h.QdiscList(link)
	if err != nil {
		if isGone(err) {
			return nil
		}
		return fmt.Errorf("list qdiscs of %q: %w", link.Attrs().Name, err)
	}
	for _, q := range qs {
		if isOwnRoot(q) {
			if err := h.QdiscDel(q); err != nil && !isGone(err) {
				return fmt.Errorf("delete qdisc %x: of %q: %w", QdiscMajor, link.Attrs().Name, err)
			}
		}
	}
	return nil
}

// qdiscErr turns "unknown qdisc kind" into a FeatureError.
func qdiscErr(kind, need string, err error) error {
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) {
		return &FeatureError{Feature: "sch_" + kind, Need: need, Err: unknownQdisc(kind, err)}
	}
	return err
}

// where names the shaped device and whose link it is, for errors.
func where(sh Shaping) string {
	if sh.Netns == "" {
		return fmt.Sprintf("port %q of guest %s", sh.Device, sh.Guest)
	}
	return fmt.Sprintf("%q of guest %s in netns %s", sh.Device, sh.Guest, sh.Netns)
}

func addShaping(h *kernel.NS, sh Shaping) error {
	need := "rate limit of guest " + sh.Guest
	link, err := h.LinkByName(sh.Device)
	if err != nil {
		return fmt.Errorf("shape guest %s: find %s: %w", sh.Guest, where(sh), err)
	}
	if err := delOwnRoot(h, link); err != nil {
		return err
	}
	idx := link.Attrs().Index
	root := netlink.NewHtb(netlink.QdiscAttrs{LinkIndex: idx, Parent: netlink.HANDLE_ROOT, Handle: netlink.MakeHandle(QdiscMajor, 0)})
	root.Defcls = classDefault
	if err := h.QdiscAdd(root); err != nil {
		if errors.Is(err, unix.EEXIST) {
			// Only a root qdisc someone else added refuses an exclusive add;
			// pontoon does not replace what it does not own.
			return fmt.Errorf("shape guest %s: %s already has a root qdisc that pontoon did not add; remove it (tc qdisc del dev %s root) to let pontoon shape this guest: %w",
				sh.Guest, where(sh), sh.Device, err)
		}
		return fmt.Errorf("add htb qdisc to %s: %w", where(sh), qdiscErr("htb", need, err))
	}
	// The classes and netems as status reads them back (wantClasses): the top class first,
	// then one for each of sh.Classes.
	want := wantClasses(idx, sh)
	if err := h.ClassAdd(want[0].class); err != nil {
		return fmt.Errorf("add htb class %x:%x to %s: %w", QdiscMajor, classTop, where(sh), err)
	}
	for i, c := range sh.Classes {
		w := want[i+1]
		if err := h.ClassAdd(w.class); err != nil {
			return fmt.Errorf("add htb class %x:%x to %s: %w", QdiscMajor, c.Minor, where(sh), err)
		}
		if w.netem != nil {
			if err := h.QdiscAdd(w.netem); err != nil {
				if errors.Is(err, unix.EINVAL) && mixesDuplicate(sh) {
					return duplicateMixError(sh, err)
				}
				return fmt.Errorf("add netem under class %x:%x of %s: %w", QdiscMajor, c.Minor, where(sh), qdiscErr("netem", "netem settings of guest "+sh.Guest, err))
			}
		}
		if !c.Src.IsValid() {
			continue
		}
		f := &netlink.U32{
			FilterAttrs: netlink.FilterAttrs{LinkIndex: idx, Parent: netlink.MakeHandle(QdiscMajor, 0), Priority: 1, Protocol: netlinkProtoIP},
			ClassId:     ClassID(c.Minor),
			Sel:         &netlink.TcU32Sel{Flags: netlink.TC_U32_TERMINAL, Keys: srcKeys4(c.Src)},
		}
		if err := h.FilterAdd(f); err != nil {
			return fmt.Errorf("add u32 filter ip src %s -> class %x:%x on %s: %w", c.Src, QdiscMajor, c.Minor, where(sh), err)
		}
		if err := addFilter6(h, idx, c, where(sh)); err != nil {
			return err
		}
	}
	return nil
}

// duplicateMixError says which settings put netems side by side on sh's device.
func duplicateMixError(sh Shaping, err error) error {
	var netems []string
	for _, c := range sh.Classes {
		if c.Netem == nil {
			continue
		}
		what := "guest " + sh.Guest + "'s own settings"
		if c.From != "" {
			what = "the pair " + c.From + "->" + sh.Guest
		}
		if c.Netem.Duplicate > 0 {
			what += " (duplicating)"
		}
		netems = append(netems, what)
	}
	return fmt.Errorf("shape guest %s: %w: %s would carry %d netems (%s); a guest's duplicate also goes into each pair towards it that has settings of its own. "+
		"Give duplicate to a guest or pair with no other netem setting (delay, jitter, corrupt, reorder, duplicate) and no shaped pair on the same guest, or use a kernel without this check: %w",
		sh.Guest, ErrNetemDuplicateMix, where(sh), len(netems), strings.Join(netems, ", "), err)
}

// mixesDuplicate reports whether sh puts a duplicating netem beside another netem on its
// device, which kernels since 2025 refuse with EINVAL (ErrNetemDuplicateMix).
func mixesDuplicate(sh Shaping) bool {
	netems, dup := 0, false
	for _, c := range sh.Classes {
		if c.Netem != nil {
			netems++
			dup = dup || c.Netem.Duplicate > 0
		}
	}
	return dup && netems > 1
}

func netemAttrs(n *Netem) netlink.NetemQdiscAttrs {
	a := netlink.NetemQdiscAttrs{
		Latency:     uint32(n.Delay.Microseconds()),
		Jitter:      uint32(n.Jitter.Microseconds()),
		Duplicate:   float32(n.Duplicate),
		CorruptProb: float32(n.Corrupt),
		ReorderProb: float32(n.Reorder),
	}
	if n.Reorder > 0 {
		// netem reorders only when gap is at least 1.
		a.Gap = 1
	}
	return a
}

// clearShaping removes every qdisc partition may have left, whatever the
// recorded state says: every root qdisc with handle QdiscMajor in the bridge
// namespace, and the one on the guest-side device of every guest namespace
// named by guests or recorded. Guest namespaces that are gone are skipped.
func clearShaping(bridgeNS string, guests []Guest, recorded []Shaping) error {
	hs := newHandles(bridgeNS)
	defer hs.close()
	h, err := hs.get("")
	if err != nil {
		return err
	}
	var errs []error
	qs, err := h.QdiscList(nil)
	if err != nil {
		return fmt.Errorf("list qdiscs: %w", err)
	}
	for _, q := range qs {
		if isOwnRoot(q) {
			if err := h.QdiscDel(q); err != nil && !isGone(err) {
				errs = append(errs, fmt.Errorf("delete qdisc %x: on link %d: %w", QdiscMajor, q.Attrs().LinkIndex, err))
			}
		}
	}
	seen := map[shapingKey]bool{}
	var inGuests []Shaping
	for _, g := range guests {
		if g.NetnsPath != "" {
			inGuests = append(inGuests, Shaping{Netns: g.NetnsPath, Device: GuestIface, Guest: g.Name})
		}
	}
	for _, sh := range recorded {
		if sh.Netns != "" {
			inGuests = append(inGuests, sh)
		}
	}
	for _, sh := range inGuests {
		if seen[keyOf(sh)] {
			continue
		}
		seen[keyOf(sh)] = true
		errs = append(errs, removeShaping(hs, sh))
	}
	return errors.Join(errs...)
}

// Whether the kernel has netem does not change while a process runs once it
// has said yes (a module, once loaded, stays); a no is asked again, since a
// module may be installed meanwhile.
var netemOK struct {
	sync.Mutex
	yes bool
}

// CheckNetem reports whether the running kernel can emulate delay, jitter,
// duplication, corruption and reordering. It returns nil when it can add a
// netem qdisc, a *FeatureError matching ErrNetemUnavailable when the kernel
// lacks netem, and another error when the check itself could not run (e.g.
// without the privileges to create a network namespace). The check adds the
// qdisc to the loopback device of a scratch network namespace that it removes
// again, so it changes nothing that exists.
func CheckNetem() error {
	return checkNetem("")
}

func checkNetem(need string) error {
	netemOK.Lock()
	defer netemOK.Unlock()
	if netemOK.yes {
		return nil
	}
	err := probeNetem()
	var fe *FeatureError
	if errors.As(err, &fe) {
		return &FeatureError{Feature: fe.Feature, Need: need, Err: fe.Err}
	}
	if err == nil {
		netemOK.yes = true
	}
	return err
}

func probeNetem() (err error) {
	dir, err := os.MkdirTemp("", "pontoon-netem-check-")
	if err != nil {
		return fmt.Errorf("check for netem: %w", err)
	}
	defer os.RemoveAll(dir)
	path := dir + "/net"
	if err := ns.New(ns.Spec{Net: path}); err != nil {
		return fmt.Errorf("check for netem: %w", err)
	}
	defer func() {
		if rerr := ns.Remove(path); rerr != nil && err == nil {
			err = fmt.Errorf("check for netem: %w", rerr)
		}
	}()
	h, err := kernel.OpenNS(path)
	if err != nil {
		return fmt.Errorf("check for netem: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("check for netem: find lo in a scratch netns: %w", err)
	}
	ne := netlink.NewNetem(netlink.QdiscAttrs{LinkIndex: lo.Attrs().Index, Parent: netlink.HANDLE_ROOT, Handle: netlink.MakeHandle(1, 0)}, netlink.NetemQdiscAttrs{Latency: 1000})
	if err := h.QdiscAdd(ne); err != nil {
		return fmt.Errorf("check for netem: add a netem qdisc to lo in a scratch netns: %w", qdiscErr("netem", "", err))
	}
	return nil
}

// unknownQdisc explains the kernel's bare ENOENT for a qdisc kind it lacks.
func unknownQdisc(kind string, err error) error {
	if errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("the kernel does not know qdisc kind %q: %w", kind, err)
	}
	return err
}

// shapingProblems says, for each recorded shaping the kernel no longer holds as recorded,
// what differs (a guest's namespace that is gone counts as its shaping gone). The shaping of
// a guest that left the bridge (one not in guests, when guests are known) went with its port
// and namespace, as its rules did: the next change drops it from the record.
func shapingProblems(hs *handles, recorded []Shaping, guests []Guest) []string {
	var problems []string
	for _, sh := range recorded {
		if len(guests) > 0 && !slices.ContainsFunc(guests, func(g Guest) bool { return g.Name == sh.Guest }) {
			continue
		}
		if d := shapingDrift(hs, sh); d != "" {
			problems = append(problems, "the shaping of "+where(sh)+" "+d)
		}
	}
	return problems
}

// srcKeys4 match a packet from src: the source address is at offset 12 of the IPv4 header.
func srcKeys4(src netip.Addr) []netlink.TcU32Key {
	a := src.As4()
	return []netlink.TcU32Key{{Mask: 0xffffffff, Val: binary.BigEndian.Uint32(a[:]), Off: 12}}
}

// srcKeys6 match a packet from src: the source address is at offset 8 of the IPv6 header.
func srcKeys6(src netip.Addr) []netlink.TcU32Key {
	a := src.As16()
	var keys []netlink.TcU32Key
	for i := 0; i < 4; i++ {
		keys = append(keys, netlink.TcU32Key{Mask: 0xffffffff, Val: binary.BigEndian.Uint32(a[4*i:]), Off: int32(8 + 4*i)})
	}
	return keys
}

// The filters' protocols, as netlink hands them in and back.
const (
	netlinkProtoIP   = unix.ETH_P_IP
	netlinkProtoIPv6 = unix.ETH_P_IPV6
)
