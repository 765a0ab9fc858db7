package partition

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Traffic shaping: a port's egress carries what is delivered to its guest,
// so the guest's download and pair limits are an HTB tree on the port. What
// the guest sends enters the bridge on the port's ingress, where no qdisc can
// queue; it is redirected (u32 match-all + mirred) into an IFB device whose
// egress carries the same HTB tree. Pair classes are chosen by skb->priority,
// which the nftables filter chain sets (see compile.go).

// applyShaping moves the bridge's traffic control from have to want,
// touching only devices whose configuration differs.
func applyShaping(nsPath string, have, want []Shaping) error {
	if len(have) == 0 && len(want) == 0 {
		return nil
	}
	h, done, err := rtHandle(nsPath)
	if err != nil {
		return err
	}
	defer done()
	wantBy := map[string]Shaping{}
	for _, sh := range want {
		wantBy[sh.Device] = sh
	}
	haveBy := map[string]Shaping{}
	for _, sh := range have {
		haveBy[sh.Device] = sh
		if w, ok := wantBy[sh.Device]; !ok || !reflect.DeepEqual(w, sh) {
			if err := removeShaping(h, sh); err != nil {
				return err
			}
		}
	}
	for _, sh := range want {
		if old, ok := haveBy[sh.Device]; ok && reflect.DeepEqual(old, sh) {
			continue
		}
		if err := addShaping(h, sh); err != nil {
			return err
		}
	}
	return nil
}

func removeShaping(h *netlink.Handle, sh Shaping) error {
	if sh.Redirect != "" {
		if port, err := h.LinkByName(sh.Redirect); err == nil {
			if err := delIngress(h, port); err != nil {
				return err
			}
		}
		if ifb, err := h.LinkByName(sh.Device); err == nil {
			if err := h.LinkDel(ifb); err != nil && !isGone(err) {
				return fmt.Errorf("delete IFB %q: %w", sh.Device, err)
			}
		}
		return nil
	}
	link, err := h.LinkByName(sh.Device)
	if err != nil {
		return nil // port gone: nothing left to undo
	}
	return delOwnRoot(h, link)
}

func isGone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EINVAL)
}

// delOwnRoot deletes the root qdisc of link if partition added it.
func delOwnRoot(h *netlink.Handle, link netlink.Link) error {
	qs, err := h.QdiscList(link)
	if err != nil {
		return fmt.Errorf("list qdiscs of %q: %w", link.Attrs().Name, err)
	}
	for _, q := range qs {
		a := q.Attrs()
		if a.Parent == netlink.HANDLE_ROOT && a.Handle>>16 == QdiscMajor {
			if err := h.QdiscDel(q); err != nil && !isGone(err) {
				return fmt.Errorf("delete qdisc %x: of %q: %w", QdiscMajor, link.Attrs().Name, err)
			}
		}
	}
	return nil
}

func delIngress(h *netlink.Handle, port netlink.Link) error {
	q := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: port.Attrs().Index, Parent: netlink.HANDLE_INGRESS, Handle: netlink.MakeHandle(0xffff, 0)}}
	if err := h.QdiscDel(q); err != nil && !isGone(err) {
		return fmt.Errorf("delete ingress qdisc of %q: %w", port.Attrs().Name, err)
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

func addShaping(h *netlink.Handle, sh Shaping) error {
	need := "rate limit of guest " + sh.Guest
	var link netlink.Link
	var err error
	if sh.Redirect != "" {
		if link, err = ensureIFB(h, sh.Device); err != nil {
			return &FeatureError{Feature: "ifb", Need: need, Err: err}
		}
	} else if link, err = h.LinkByName(sh.Device); err != nil {
		return fmt.Errorf("shape guest %s: port %q: %w", sh.Guest, sh.Device, err)
	}
	if err := delOwnRoot(h, link); err != nil {
		return err
	}
	idx := link.Attrs().Index
	root := netlink.NewHtb(netlink.QdiscAttrs{LinkIndex: idx, Parent: netlink.HANDLE_ROOT, Handle: netlink.MakeHandle(QdiscMajor, 0)})
	root.Defcls = classDefault
	if err := h.QdiscAdd(root); err != nil {
		return fmt.Errorf("add htb qdisc to %q: %w", sh.Device, qdiscErr("htb", need, err))
	}
	rate := func(r Rate) uint64 {
		if r == 0 {
			r = MaxRate
		}
		return uint64(r)
	}
	top := netlink.NewHtbClass(netlink.ClassAttrs{LinkIndex: idx, Parent: netlink.MakeHandle(QdiscMajor, 0), Handle: netlink.MakeHandle(QdiscMajor, classTop)},
		netlink.HtbClassAttrs{Rate: rate(sh.Rate), Ceil: rate(sh.Rate)})
	if err := h.ClassAdd(top); err != nil {
		return fmt.Errorf("add htb class %x:%x to %q: %w", QdiscMajor, classTop, sh.Device, err)
	}
	for _, c := range sh.Classes {
		cl := netlink.NewHtbClass(netlink.ClassAttrs{LinkIndex: idx, Parent: netlink.MakeHandle(QdiscMajor, classTop), Handle: netlink.MakeHandle(QdiscMajor, c.Minor)},
			netlink.HtbClassAttrs{Rate: rate(c.Rate), Ceil: rate(c.Rate)})
		if err := h.ClassAdd(cl); err != nil {
			return fmt.Errorf("add htb class %x:%x to %q: %w", QdiscMajor, c.Minor, sh.Device, err)
		}
		if c.Netem == nil {
			continue
		}
		ne := netlink.NewNetem(netlink.QdiscAttrs{LinkIndex: idx, Parent: netlink.MakeHandle(QdiscMajor, c.Minor), Handle: netlink.MakeHandle(0x7000+c.Minor, 0)}, netemAttrs(c.Netem))
		if err := h.QdiscAdd(ne); err != nil {
			return fmt.Errorf("add netem under class %x:%x of %q: %w", QdiscMajor, c.Minor, sh.Device, qdiscErr("netem", "netem settings of guest "+sh.Guest, err))
		}
	}
	if sh.Redirect == "" {
		return nil
	}
	port, err := h.LinkByName(sh.Redirect)
	if err != nil {
		return fmt.Errorf("shape guest %s: port %q: %w", sh.Guest, sh.Redirect, err)
	}
	if err := delIngress(h, port); err != nil {
		return err
	}
	ing := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: port.Attrs().Index, Parent: netlink.HANDLE_INGRESS, Handle: netlink.MakeHandle(0xffff, 0)}}
	if err := h.QdiscAdd(ing); err != nil {
		return fmt.Errorf("add ingress qdisc to %q: %w", sh.Redirect, err)
	}
	redirect := &netlink.U32{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: port.Attrs().Index, Parent: netlink.MakeHandle(0xffff, 0), Priority: 1, Protocol: unix.ETH_P_ALL},
		Sel:         &netlink.TcU32Sel{Flags: nl.TC_U32_TERMINAL, Keys: []netlink.TcU32Key{{Mask: 0, Val: 0}}},
		Actions:     []netlink.Action{netlink.NewMirredAction(idx)},
	}
	if err := h.FilterAdd(redirect); err != nil {
		return fmt.Errorf("redirect ingress of %q to %q: %w", sh.Redirect, sh.Device, err)
	}
	return nil
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

func ensureIFB(h *netlink.Handle, name string) (netlink.Link, error) {
	if l, err := h.LinkByName(name); err == nil {
		return l, h.LinkSetUp(l)
	}
	la := netlink.NewLinkAttrs()
	la.Name = name
	if err := h.LinkAdd(&netlink.Ifb{LinkAttrs: la}); err != nil {
		return nil, fmt.Errorf("create IFB %q: %w", name, err)
	}
	l, err := h.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("find IFB %q: %w", name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return nil, fmt.Errorf("set IFB %q up: %w", name, err)
	}
	return l, nil
}

// clearShaping removes every qdisc and IFB partition may have left in the
// bridge namespace, whatever the recorded state says: every root qdisc with
// handle QdiscMajor, the ingress qdisc of every port that feeds an IFB of
// ours, and those IFBs.
func clearShaping(nsPath string, ports []string) error {
	h, done, err := rtHandle(nsPath)
	if err != nil {
		return err
	}
	defer done()
	links, err := listLinks(h)
	if err != nil {
		return err
	}
	byName := map[string]netlink.Link{}
	for _, l := range links {
		byName[l.Attrs().Name] = l
	}
	var errs []error
	for _, p := range ports {
		if _, ours := byName[IFBName(p)]; ours {
			if port, ok := byName[p]; ok {
				errs = append(errs, delIngress(h, port))
			}
		}
	}
	qs, err := h.QdiscList(nil)
	if err != nil {
		return fmt.Errorf("list qdiscs: %w", err)
	}
	for _, q := range qs {
		a := q.Attrs()
		if a.Parent == netlink.HANDLE_ROOT && a.Handle>>16 == QdiscMajor {
			if err := h.QdiscDel(q); err != nil && !isGone(err) {
				errs = append(errs, fmt.Errorf("delete qdisc %x: on link %d: %w", QdiscMajor, a.LinkIndex, err))
			}
		}
	}
	for _, l := range links {
		if _, ok := l.(*netlink.Ifb); ok && strings.HasPrefix(l.Attrs().Name, IFBPrefix) {
			if err := h.LinkDel(l); err != nil && !isGone(err) {
				errs = append(errs, fmt.Errorf("delete IFB %q: %w", l.Attrs().Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// probeNetem checks, without touching any existing device, whether the kernel
// can create a netem qdisc: it adds one to a throwaway IFB device.
func probeNetem(nsPath, need string) error {
	h, done, err := rtHandle(nsPath)
	if err != nil {
		return err
	}
	defer done()
	name := fmt.Sprintf("%sprobe%d", IFBPrefix, os.Getpid()%100000)
	la := netlink.NewLinkAttrs()
	la.Name = name
	if err := h.LinkAdd(&netlink.Ifb{LinkAttrs: la}); err != nil {
		return &FeatureError{Feature: "ifb", Need: need, Err: err}
	}
	defer func() {
		if l, err := h.LinkByName(name); err == nil {
			_ = h.LinkDel(l)
		}
	}()
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find probe device %q: %w", name, err)
	}
	ne := netlink.NewNetem(netlink.QdiscAttrs{LinkIndex: l.Attrs().Index, Parent: netlink.HANDLE_ROOT, Handle: netlink.MakeHandle(1, 0)}, netlink.NetemQdiscAttrs{Latency: 1000})
	if err := h.QdiscAdd(ne); err != nil {
		return &FeatureError{Feature: "sch_netem", Need: need, Err: unknownQdisc("netem", err)}
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
