// Package floor does the kernel's part of attaching a guest to a pontoon bridge, through
// pontoon's own kernel layer (internal/kernel): the requests of netsetup's attach, in its
// order, and nothing else. It leaves out what pontoon does besides: the records and their
// lock, the checks of the namespace (not the host's, no eth0 yet), the look-up of a free
// port name, and the announcement to the guest's neighbours. make bench times it beside
// pontoon as the floor under an attach on the machine: in process, how its cost grows with
// the ports of the bridge; as a process of its own (bench/cmd/floorhook), the least a
// container hook that is one Go process adds to a start.
package floor

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/pontoon-dev/pontoon/internal/kernel"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Guest is what the attach gives one guest: its port in the bridge namespace, its MAC, its
// addresses (IPv6 ones optional) and the bridge's, which its routes go through.
type Guest struct {
	Port       string
	MAC        net.HardwareAddr
	Addr       netip.Prefix // the guest's IPv4 address with the guest network's length
	Via        netip.Addr   // the bridge's IPv4 address
	LinkLocal6 netip.Addr
	Addr6      netip.Prefix
	Via6       netip.Addr
	PingGroups string // net.ipv4.ping_group_range
	BridgeDev  string // br0
	If         string // eth0
}

// Attach connects the namespace at guestNS to the bridge in the namespace at bridgeNS. On
// failure after the port is made, the port goes again.
func Attach(bridgeNS, guestNS string, g Guest) (err error) {
	brH, err := kernel.OpenNS(bridgeNS)
	if err != nil {
		return err
	}
	defer brH.Close()
	gH, err := kernel.OpenNS(guestNS)
	if err != nil {
		return err
	}
	defer gH.Close()
	br, err := brH.LinkByName(g.BridgeDev)
	if err != nil {
		return err
	}
	v := netlink.NewVeth(netlink.LinkAttrs{Name: g.Port, MasterIndex: br.Attrs().Index})
	v.PeerName, v.PeerNamespace, v.PeerHardwareAddr = g.If, netlink.NsFd(gH.Fd()), g.MAC
	if err := brH.LinkAdd(v); err != nil {
		return fmt.Errorf("create port %s: %w", g.Port, err)
	}
	defer func() {
		if err != nil {
			brH.LinkDel(v)
		}
	}()
	if err := brH.LockPort(v.Attrs().Index); err != nil {
		return err
	}
	fdb := &netlink.Neigh{LinkIndex: v.Attrs().Index, Family: unix.AF_BRIDGE, State: netlink.NUD_NOARP,
		Flags: netlink.NTF_MASTER, HardwareAddr: g.MAC}
	if err := brH.NeighSet(fdb); err != nil {
		return err
	}
	if err := brH.LinkSetUp(v); err != nil {
		return err
	}
	// Loopback is the first link of every namespace, as pontoon takes it.
	if err := gH.LinkSetUp(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: "lo", Index: 1}}); err != nil {
		return err
	}
	if g.Addr6.IsValid() {
		c := "net.ipv6.conf." + g.If + "."
		if err := gH.Sysctls(c+"addr_gen_mode", "1", c+"accept_dad", "0", c+"accept_ra", "0", c+"accept_redirects", "0", c+"disable_ipv6", "0"); err != nil {
			return err
		}
	}
	eth, err := gH.LinkByName(g.If)
	if err != nil {
		return err
	}
	if g.Addr6.IsValid() {
		for _, p := range []netip.Prefix{netip.PrefixFrom(g.LinkLocal6, 64), g.Addr6} {
			if err := gH.AddrAdd(eth, &netlink.Addr{IPNet: ipNet(p), Flags: unix.IFA_F_NODAD}); err != nil {
				return err
			}
		}
	}
	if err := gH.AddrAdd(eth, &netlink.Addr{IPNet: ipNet(g.Addr)}); err != nil {
		return err
	}
	if err := gH.LinkSetUp(eth); err != nil {
		return err
	}
	if err := gH.RouteAdd(&netlink.Route{Gw: g.Via.AsSlice()}); err != nil {
		return err
	}
	if g.Addr6.IsValid() {
		if err := gH.RouteAdd(&netlink.Route{Gw: g.Via6.AsSlice()}); err != nil {
			return err
		}
	}
	if err := gH.Sysctls("net.ipv4.ping_group_range", g.PingGroups); err != nil {
		return err
	}
	if err := gH.WaitOperUp(g.If, linkUpWait); err != nil {
		return err
	}
	return brH.WaitForwarding(g.Port, linkUpWait)
}

// Detach undoes Attach as pontoon detaches a guest: its port set down, if it is still there,
// and left to go with the guest's namespace (which the caller releases).
func Detach(bridgeNS, port string) error {
	brH, err := kernel.OpenNS(bridgeNS)
	if err != nil {
		return err
	}
	defer brH.Close()
	l, err := brH.LinkByName(port)
	var gone netlink.LinkNotFoundError
	if errors.As(err, &gone) {
		return nil // gone with the namespace of a process that has ended
	}
	if err == nil {
		err = brH.LinkSetDown(l)
	}
	if err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("detach port %s in %s: %w", port, bridgeNS, err)
	}
	return nil
}

// linkUpWait bounds the waits for the new links, as pontoon's attach bounds them.
const linkUpWait = 10 * time.Second

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// ParseGuest reads a Guest from the words Args gives (bench/cmd/floorhook's arguments).
func ParseGuest(words []string) (Guest, error) {
	var g Guest
	if len(words) != 10 {
		return g, fmt.Errorf("want 10 words (port mac addr via ll6 addr6 via6 bridge-dev if ping-groups), got %d", len(words))
	}
	var err error
	if g.MAC, err = net.ParseMAC(words[1]); err != nil {
		return g, err
	}
	if g.Addr, err = netip.ParsePrefix(words[2]); err != nil {
		return g, err
	}
	if g.Via, err = netip.ParseAddr(words[3]); err != nil {
		return g, err
	}
	if words[5] != "-" {
		if g.LinkLocal6, err = netip.ParseAddr(words[4]); err != nil {
			return g, err
		}
		if g.Addr6, err = netip.ParsePrefix(words[5]); err != nil {
			return g, err
		}
		if g.Via6, err = netip.ParseAddr(words[6]); err != nil {
			return g, err
		}
	}
	g.Port, g.BridgeDev, g.If, g.PingGroups = words[0], words[7], words[8], words[9]
	return g, nil
}

// Args is g as the words ParseGuest reads.
func (g Guest) Args() []string {
	ll, a6, v6 := "-", "-", "-"
	if g.Addr6.IsValid() {
		ll, a6, v6 = g.LinkLocal6.String(), g.Addr6.String(), g.Via6.String()
	}
	return []string{g.Port, g.MAC.String(), g.Addr.String(), g.Via.String(), ll, a6, v6, g.BridgeDev, g.If, g.PingGroups}
}
