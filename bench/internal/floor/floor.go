// Package floor does the kernel's part of attaching a guest to a pontoon bridge, the same
// requests in the same order as pontoon's attach, and nothing else: no records, no lock, no
// checks of the namespace, no announcement, no name server. make bench times it beside
// pontoon as the floor no attach can go below on the machine: in process, how its cost grows
// with the ports of the bridge; as a process of its own (bench/cmd/floorhook), the least a
// container hook that is one Go process can add to a start.
package floor

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Guest is what the attach gives one guest: its port in the bridge namespace, its MAC, its
// addresses (IPv6 ones optional) and the bridge's, its routes go through.
type Guest struct {
	Port          string
	MAC           net.HardwareAddr
	Addr          netip.Prefix // the guest's IPv4 address with the guest network's length
	Via           netip.Addr   // the bridge's IPv4 address
	LinkLocal6    netip.Addr
	Addr6         netip.Prefix
	Via6          netip.Addr
	PingGroups    string // net.ipv4.ping_group_range
	BridgeDev, If string // br0, eth0
}

// Attach connects the namespace at guestNS to the bridge in the namespace at bridgeNS.
func Attach(bridgeNS, guestNS string, g Guest) error {
	brH, brFd, err := open(bridgeNS)
	if err != nil {
		return err
	}
	defer closeHandle(brH, brFd)
	gH, gFd, err := open(guestNS)
	if err != nil {
		return err
	}
	defer closeHandle(gH, gFd)
	br, err := brH.LinkByName(g.BridgeDev)
	if err != nil {
		return err
	}
	v := netlink.NewVeth(netlink.LinkAttrs{Name: g.Port, MasterIndex: br.Attrs().Index})
	v.PeerName, v.PeerNamespace, v.PeerHardwareAddr = g.If, netlink.NsFd(gFd), g.MAC
	if err := brH.LinkAdd(v); err != nil {
		return fmt.Errorf("create port %s: %w", g.Port, err)
	}
	port := v // LinkAdd has looked its index up
	if err := lockPort(brFd, port.Attrs().Index); err != nil {
		return err
	}
	fdb := &netlink.Neigh{LinkIndex: port.Attrs().Index, Family: unix.AF_BRIDGE, State: netlink.NUD_NOARP,
		Flags: netlink.NTF_MASTER, HardwareAddr: g.MAC}
	if err := brH.NeighSet(fdb); err != nil {
		return err
	}
	if err := brH.LinkSetUp(port); err != nil {
		return err
	}
	// Loopback is the first link of every namespace.
	if err := gH.LinkSetUp(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 1}}); err != nil {
		return err
	}
	eth, err := gH.LinkByName(g.If)
	if err != nil {
		return err
	}
	if g.Addr6.IsValid() {
		c := "net/ipv6/conf/" + g.If + "/"
		if err := sysctls(guestNS, c+"addr_gen_mode", "1", c+"accept_dad", "0", c+"accept_ra", "0", c+"accept_redirects", "0", c+"disable_ipv6", "0"); err != nil {
			return err
		}
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
		if err := gH.RouteAdd(&netlink.Route{Gw: g.Via6.AsSlice(), LinkIndex: eth.Attrs().Index}); err != nil {
			return err
		}
	}
	if err := sysctls(guestNS, "net/ipv4/ping_group_range", g.PingGroups); err != nil {
		return err
	}
	if err := waitUp(gH, g.If); err != nil {
		return err
	}
	return waitUp(brH, g.Port) // pontoon waits for the port to forward: one look, as here
}

// Detach removes a port made by Attach.
func Detach(bridgeNS, port string) error {
	brH, brFd, err := open(bridgeNS)
	if err != nil {
		return err
	}
	defer closeHandle(brH, brFd)
	l, err := brH.LinkByName(port)
	if err != nil {
		return err
	}
	return brH.LinkDel(l)
}

func open(path string) (*netlink.Handle, netns.NsHandle, error) {
	fd, err := netns.GetFromPath(path)
	if err != nil {
		return nil, 0, err
	}
	h, err := netlink.NewHandleAt(fd, unix.NETLINK_ROUTE)
	if err != nil {
		fd.Close()
		return nil, 0, err
	}
	return h, fd, nil
}

func closeHandle(h *netlink.Handle, fd netns.NsHandle) {
	h.Close()
	fd.Close()
}

// lockPort turns learning off and locks the port, as pontoon's port security does, on a
// socket of its own as pontoon's does.
func lockPort(nsFd netns.NsHandle, index int) error {
	s, err := nl.GetNetlinkSocketAt(nsFd, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer s.Close()
	req := nl.NewNetlinkRequest(unix.RTM_SETLINK, unix.NLM_F_ACK)
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: s}}
	msg := nl.NewIfInfomsg(unix.AF_BRIDGE)
	msg.Index = int32(index)
	req.AddData(msg)
	flags := nl.NewRtAttr(unix.IFLA_PROTINFO|unix.NLA_F_NESTED, nil)
	flags.AddRtAttr(nl.IFLA_BRPORT_LEARNING, []byte{0})
	flags.AddRtAttr(nl.IFLA_BRPORT_LOCKED, []byte{1})
	req.AddData(flags)
	_, err = req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// sysctls writes path/value pairs (paths under /proc/sys) in the namespace at nsPath, each
// directory looked up once, as pontoon does.
func sysctls(nsPath string, kv ...string) error {
	return ns.Visit(nsPath, func() error {
		dirs := map[string]int{}
		defer func() {
			for _, d := range dirs {
				unix.Close(d)
			}
		}()
		for i := 0; i+1 < len(kv); i += 2 {
			dir, base := filepath.Split(kv[i])
			d, ok := dirs[dir]
			if !ok {
				var err error
				if d, err = unix.Open("/proc/sys/"+dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
					return fmt.Errorf("open /proc/sys/%s: %w", dir, err)
				}
				dirs[dir] = d
			}
			fd, err := unix.Openat(d, base, unix.O_WRONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("open %s: %w", kv[i], err)
			}
			_, err = unix.Write(fd, []byte(kv[i+1]))
			unix.Close(fd)
			if err != nil {
				return fmt.Errorf("write %s: %w", kv[i], err)
			}
		}
		return nil
	})
}

// waitUp waits for the kernel to activate the link's queue, as pontoon's attach does before
// it returns: until then the guest cannot send.
func waitUp(h *netlink.Handle, name string) error {
	deadline := time.Now().Add(10 * time.Second)
	for pause := 100 * time.Microsecond; ; pause = min(2*pause, 5*time.Millisecond) {
		l, err := h.LinkByName(name)
		if err != nil {
			return err
		}
		if l.Attrs().OperState == netlink.OperUp {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New(name + " did not come up")
		}
		time.Sleep(pause)
	}
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// ParseGuest reads a Guest from the words Args gives (bench/cmd/floorhook's arguments).
func ParseGuest(words []string) (Guest, error) {
	var g Guest
	if len(words) != 9 {
		return g, fmt.Errorf("want 9 words (port mac addr via ll6 addr6 via6 bridge-dev if), got %d", len(words))
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
	g.Port, g.BridgeDev, g.If = words[0], words[7], words[8]
	g.PingGroups = os.Getenv("FLOOR_PING_GROUPS")
	if g.PingGroups == "" {
		g.PingGroups = "0 2147483647"
	}
	return g, nil
}

// Args is g as the words ParseGuest reads.
func (g Guest) Args() []string {
	ll, a6, v6 := "-", "-", "-"
	if g.Addr6.IsValid() {
		ll, a6, v6 = g.LinkLocal6.String(), g.Addr6.String(), g.Via6.String()
	}
	return []string{g.Port, g.MAC.String(), g.Addr.String(), g.Via.String(), ll, a6, v6, g.BridgeDev, g.If}
}
