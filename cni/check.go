package cni

import (
	"errors"
	"fmt"
	"net"
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
// returned (prevResult): the guest's record, its namespace, eth0's address and MAC, the
// default route, and its port on the bridge.
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
	want := plan.GuestAddr(g.IP).String()
	addrs, err := h.AddrList(l, unix.AF_INET)
	if err != nil {
		add("list the addresses of %s: %v", netsetup.GuestIfName, err)
	}
	has := false
	for _, a := range addrs {
		if a.IPNet.String() == want {
			has = true
		} else if !exp.addrs[a.IPNet.String()] {
			add("%s has an address neither pontoon nor the chain's result gave it: %s", netsetup.GuestIfName, a.IPNet)
		}
	}
	if !has {
		add("%s lacks its address %s", netsetup.GuestIfName, want)
	}
	// In any table: a later plugin of the chain may move it (sbr puts it in a table of its own
	// and routes by source).
	routes, err := h.RouteListFiltered(unix.AF_INET, &netlink.Route{LinkIndex: l.Attrs().Index, Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	if err != nil {
		add("list the routes of %s: %v", netsetup.GuestIfName, err)
	}
	gw := plan.BridgeAddr().Addr().AsSlice()
	def := false
	for _, r := range routes {
		if (r.Dst == nil || r.Dst.String() == "0.0.0.0/0") && net.IP(gw).Equal(r.Gw) {
			def = true
		}
	}
	if !def {
		add("the default route via %s is missing", plan.BridgeAddr().Addr())
	}
	return drift
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
