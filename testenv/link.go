package testenv

import (
	"fmt"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// linkWait bounds the wait for a new guest's link to come up.
const linkWait = 10 * time.Second

// waitLinkUp waits until link name in the network namespace at nsPath is operationally up.
//
// A veth's carrier, and with it the bridge port's forwarding state, is switched on by the
// kernel's link-watch work, which runs at most once a second when links change often (as when
// tests build many chains at once). Until then the guest's first packets are dropped, so a
// guest is handed out only once both ends of its link are up.
func waitLinkUp(nsPath, name string) error {
	n, err := netns.GetFromPath(nsPath)
	if err != nil {
		return fmt.Errorf("open %s: %w", nsPath, err)
	}
	defer n.Close()
	h, err := netlink.NewHandleAt(n, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", nsPath, err)
	}
	defer h.Close()
	deadline := time.Now().Add(linkWait)
	for {
		l, err := h.LinkByName(name)
		if err != nil {
			return fmt.Errorf("link %s in %s: %w", name, nsPath, err)
		}
		if l.Attrs().OperState == netlink.OperUp {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("link %s in %s is still %s after %s", name, nsPath, l.Attrs().OperState, linkWait)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
