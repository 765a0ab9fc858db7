package cni

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/pontoon-dev/pontoon/internal/kernel"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// DriftError is CHECK's finding: the attachment differs from what ADD set up.
type DriftError struct {
	What     []string
	Detached bool // the container is not attached at all
}

func (e *DriftError) Error() string {
	return "attachment drifted: " + strings.Join(e.What, "; ")
}

// Check compares the attachment of args with what ADD set up and with the result it
// returned (prevResult): the guest's record, its namespace, eth0's addresses (IPv6 too on a
// dual-stack gateway) and MAC, the default routes, and its port on the bridge.
func Check(env netsetup.Env, args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	if err := checkArgs(args); err != nil {
		return err
	}
	key := Key(conf.Name, args.ContainerID, args.IfName)
	detached := &DriftError{What: []string{fmt.Sprintf("container %s (%s) is not attached to bridge %q", args.ContainerID, args.IfName, conf.Bridge)}, Detached: true}
	plan, err := netsetup.CurrentPlan(env)
	if errors.Is(err, netsetup.ErrNoGateway) {
		return detached
	}
	if err != nil {
		return err
	}
	b, err := netsetup.GetBridge(env, conf.Bridge)
	if errors.Is(err, netsetup.ErrNoBridge) {
		return detached
	}
	if err != nil {
		return err
	}
	var g *netsetup.Guest
	for i := range b.Guests {
		if b.Guests[i].Key == key {
			g = &b.Guests[i]
		}
	}
	if g == nil {
		return detached
	}
	// The specification requires prevResult and lets later plugins of the chain change what
	// pontoon set up (tuning sets another MAC): it says what to expect.
	if conf.PrevResult == nil {
		return configErr("prevResult", "missing; CHECK compares the attachment with the result of its ADD, which the runtime passes as prevResult")
	}
	var drift []string
	add := func(format string, a ...any) { drift = append(drift, fmt.Sprintf(format, a...)) }
	if g.Phase != netsetup.PhaseReady {
		add("guest %q is %s, not ready", g.Name, g.Phase)
	}
	if !sameFile(g.Netns, args.Netns) {
		add("guest %q is attached to namespace %s, not %s", g.Name, g.Netns, args.Netns)
	}
	prev, err := current.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return configErr("prevResult", "%v", err)
	}
	want := plan.GuestAddr(g.IP)
	exp := expected{mac: netsetup.GuestMAC(g.IP).String(), addrs: map[string]bool{}}
	found := false
	for _, ipc := range prev.IPs {
		exp.addrs[ipc.Address.String()] = true
		if ipc.Address.String() == want.String() {
			found = true
		}
	}
	if !found {
		add("prevResult does not list %s, the address of guest %q", want, g.Name)
	}
	// The IPv6 address is not required of prevResult: an ADD of an earlier pontoon-cni
	// listed only the IPv4 one, and its pods must not turn into drift on an upgrade.
	for _, itf := range prev.Interfaces {
		if itf.Name == args.IfName && itf.Mac != "" && sameFile(itf.Sandbox, args.Netns) {
			exp.mac = itf.Mac
		}
	}
	drift = append(drift, checkGuestSide(args.Netns, g, plan, exp)...)
	drift = append(drift, checkPort(env.BridgeNetns(conf.Bridge), g)...)
	if len(drift) > 0 {
		return &DriftError{What: drift}
	}
	return nil
}

func sameFile(a, b string) bool {
	var sa, sb unix.Stat_t
	return unix.Stat(a, &sa) == nil && unix.Stat(b, &sb) == nil && sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

// expected is what CHECK expects of the container's interface beyond pontoon's own setup:
// the MAC and addresses the chain's result lists.
type expected struct {
	mac   string
	addrs map[string]bool
}

func checkGuestSide(nsPath string, g *netsetup.Guest, plan netsetup.Plan, exp expected) (drift []string) {
	add := func(format string, a ...any) { drift = append(drift, fmt.Sprintf(format, a...)) }
	if _, err := os.Stat(nsPath); err != nil {
		add("namespace %s is gone", nsPath)
		return drift
	}
	h, err := kernel.OpenNS(nsPath)
	if err != nil {
		add("%v", err)
		return drift
	}
	defer h.Close()
	l, err := h.LinkByName(netsetup.GuestIfName)
	if err != nil {
		add("%s is missing in %s", netsetup.GuestIfName, nsPath)
		return drift
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		add("%s is down", netsetup.GuestIfName)
	}
	if !strings.EqualFold(l.Attrs().HardwareAddr.String(), exp.mac) {
		add("%s has MAC %s, not %s", netsetup.GuestIfName, l.Attrs().HardwareAddr, exp.mac)
	}
	drift = append(drift, checkFamily(h, l, unix.AF_INET, plan.GuestAddr(g.IP), plan.BridgeAddr().Addr(), exp)...)
	if g.IP6.IsValid() {
		drift = append(drift, checkFamily(h, l, unix.AF_INET6, guestAddr6(plan, g), plan.BridgeAddr6().Addr(), exp)...)
	}
	return drift
}

// guestAddr6 is the guest's IPv6 address with the length of its network.
func guestAddr6(plan netsetup.Plan, g *netsetup.Guest) netip.Prefix {
	return netip.PrefixFrom(g.IP6, plan.GuestNet6().Bits())
}

// checkFamily checks eth0's addresses of one family and its default route of that family.
func checkFamily(h *kernel.NS, l netlink.Link, family int, want netip.Prefix, gw netip.Addr, exp expected) (drift []string) {
	add := func(format string, a ...any) { drift = append(drift, fmt.Sprintf(format, a...)) }
	addrs, err := h.AddrList(l, family)
	if err != nil {
		add("list the addresses of %s: %v", netsetup.GuestIfName, err)
	}
	has := false
	for _, a := range addrs {
		switch {
		case a.IPNet.String() == want.String():
			has = true
		case a.IP.IsLinkLocalUnicast():
			// The kernel's own, not given by anyone's result.
		case !exp.addrs[a.IPNet.String()]:
			add("%s has an address neither pontoon nor the chain's result gave it: %s", netsetup.GuestIfName, a.IPNet)
		}
	}
	if !has {
		add("%s lacks its address %s", netsetup.GuestIfName, want)
	}
	// In any table: a later plugin of the chain may move it (sbr puts it in a table of its own
	// and routes by source).
	routes, err := h.RouteListFiltered(family, &netlink.Route{LinkIndex: l.Attrs().Index, Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	if err != nil {
		add("list the routes of %s: %v", netsetup.GuestIfName, err)
	}
	def := false
	for _, r := range routes {
		if (r.Dst == nil || r.Dst.IP.IsUnspecified() && isZeroMask(r.Dst.Mask)) && net.IP(gw.AsSlice()).Equal(r.Gw) {
			def = true
		}
	}
	if !def {
		add("the default route via %s is missing", gw)
	}
	return drift
}

func isZeroMask(m net.IPMask) bool {
	ones, _ := m.Size()
	return ones == 0
}

func checkPort(brNetns string, g *netsetup.Guest) (drift []string) {
	h, err := kernel.OpenNS(brNetns)
	if err != nil {
		return []string{fmt.Sprintf("bridge namespace: %v", err)}
	}
	defer h.Close()
	port, err := h.LinkByName(g.PortName())
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return []string{fmt.Sprintf("port %s of guest %q is missing from the bridge", g.PortName(), g.Name)}
	}
	if err != nil {
		return []string{fmt.Sprintf("read port %s: %v", g.PortName(), err)}
	}
	br, err := h.LinkByName(netsetup.BridgeDev)
	if err != nil {
		return []string{fmt.Sprintf("read bridge %s: %v", netsetup.BridgeDev, err)}
	}
	if port.Attrs().MasterIndex != br.Attrs().Index {
		drift = append(drift, fmt.Sprintf("port %s is not on %s", g.PortName(), netsetup.BridgeDev))
	}
	if port.Attrs().Flags&net.FlagUp == 0 {
		drift = append(drift, fmt.Sprintf("port %s is down", g.PortName()))
	}
	return drift
}
