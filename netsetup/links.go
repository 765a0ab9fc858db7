package netsetup

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// addVeth creates a veth pair whose first end lives in h's namespace and whose peer is
// created straight inside peerH's namespace, so no interface ever appears where it does not
// belong.
func addVeth(h *handle, name, peer string, peerH *handle) error {
	v := netlink.NewVeth(netlink.LinkAttrs{Name: name})
	v.PeerName = peer
	v.PeerNamespace = netlink.NsFd(peerH.fd())
	if err := h.LinkAdd(v); err != nil {
		return fmt.Errorf("create veth %s/%s: %w", name, peer, err)
	}
	return nil
}

// existing looks a link up; ok is false when there is no such link.
func existing(h *handle, name string) (l netlink.Link, ok bool, err error) {
	l, err = h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("find link %s: %w", name, err)
	}
	return l, true, nil
}

// delLink removes a link; one that is already gone is not an error.
func delLink(h *handle, name string) error {
	if h == nil {
		return nil
	}
	h.forget(name)
	l, ok, err := existing(h, name)
	if !ok {
		return err
	}
	if err := h.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

// delPorts removes the links named, at once (kernel.NS.DelLinks); those already gone are
// passed over.
func delPorts(h *handle, names []string) error {
	var idx []int
	for _, name := range names {
		h.forget(name)
		if l, ok, err := existing(h, name); err != nil {
			return err
		} else if ok {
			idx = append(idx, l.Attrs().Index)
		}
	}
	return h.DelLinks(idx)
}

// portGoing reports whether the port named goes by itself: its other end's namespace is
// being removed, or it is gone already.
func portGoing(h *handle, name string) bool {
	l, ok, err := existing(h, name)
	return err == nil && (!ok || h.PeerGoing(l))
}

// setDown sets a link down; one that is already gone is not an error.
func setDown(h *handle, name string) error {
	l, ok, err := existing(h, name)
	if !ok {
		return err
	}
	if err := h.LinkSetDown(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("set %s down: %w", name, err)
	}
	return nil
}

func linkUp(h *handle, name string) error {
	l, err := h.linkByName(name)
	if err != nil {
		return err
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// addrUp gives a link an address and brings it up.
func addrUp(h *handle, name string, p netip.Prefix) error {
	l, err := h.linkByName(name)
	if err != nil {
		return err
	}
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(p)}); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add address %s to %s: %w", p, name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

func defaultRoute(h *handle, via netip.Addr) error {
	r := &netlink.Route{Gw: via.AsSlice()}
	if err := h.RouteAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add default route via %s: %w", via, err)
	}
	return nil
}
