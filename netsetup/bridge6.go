package netsetup

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// bridgeIPv6Step gives the bridge device its IPv6 address, when the plan has IPv6. IPv6 is
// turned on for the bridge device alone: the guests' ports and the uplink stay without it.
// The address is there at once (no duplicate address detection: nothing else on the guest
// network may hold it, port security sees to that), and the bridge learns nothing from
// router advertisements.
func bridgeIPv6Step(plan Plan, brH **handle, brName string) step {
	if !plan.IPv6() {
		return step{}
	}
	dev := BridgeDev
	return step{
		show: fmt.Sprintf("ip netns exec %s sysctl -w net.ipv6.conf.%s.disable_ipv6=0 net.ipv6.conf.%s.accept_dad=0 net.ipv6.conf.%s.accept_ra=0 && ip -n %s addr add %s dev %s nodad",
			brName, dev, dev, dev, brName, plan.BridgeAddr6(), dev),
		do: func() error {
			h := *brH
			if err := enableIPv6(h, dev); err != nil {
				return err
			}
			return addAddr6(h, dev, plan.BridgeAddr6())
		},
	}
}

// enableIPv6 turns IPv6 on for one link, without duplicate address detection or router
// advertisements: pontoon's addresses are its own and its routes static. IPv6 is switched
// off and on again once DAD is off: a link that was up with IPv6 already has its link-local
// address tentative for a second, and until DAD ends the kernel solicits its neighbours
// from the unspecified address, which they take for DAD and do not answer.
func enableIPv6(h *handle, dev string) error {
	c := "net.ipv6.conf." + dev + "."
	if err := h.Sysctls(c+"accept_dad", "0", c+"accept_ra", "0", c+"disable_ipv6", "1", c+"disable_ipv6", "0"); err != nil {
		return fmt.Errorf("enable IPv6 on %s: %w", dev, err)
	}
	return nil
}

// addAddr6 adds an IPv6 address usable at once (nodad).
func addAddr6(h *handle, dev string, p netip.Prefix) error {
	l, err := h.linkByName(dev)
	if err != nil {
		return err
	}
	a := &netlink.Addr{IPNet: ipNet(p), Flags: unix.IFA_F_NODAD}
	if err := h.AddrAdd(l, a); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add address %s to %s: %w", p, dev, err)
	}
	return nil
}
