package netsetup

import (
	"fmt"
	"time"

	"github.com/pontoon-dev/pontoon/internal/kernel"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Waiting for a new guest's links: the kernel brings bridge ports and veth queues into
// service asynchronously, and a guest must be usable when AddGuest returns.

// waitForwarding returns once the bridge forwards through port. The kernel enables a bridge
// port only after it has processed the port's carrier change, asynchronously and later still
// when the routing netlink lock is busy: until then the bridge drops what it should flood to
// the new guest (an ARP request for it), so a guest just attached would miss its first
// packets.
func waitForwarding(brH *handle, port string) error {
	deadline := time.Now().Add(linkUpWait)
	for {
		req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
		req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
		req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(port)))
		msgs, err := brH.Execute(req, unix.RTM_NEWLINK)
		if err != nil {
			return fmt.Errorf("read state of bridge port %s: %w", port, err)
		}
		// The port's own queue, which carries the bridge's frames to the guest, is activated
		// by the same asynchronous work as its operational state.
		if len(msgs) == 1 {
			if p, err := kernel.ParsePort(msgs[0]); err == nil && p.State == kernel.StateForwarding && p.OperUp {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bridge port %s did not start forwarding within %s", port, linkUpWait)
		}
		time.Sleep(time.Millisecond)
	}
}

// linkUpWait bounds how long a new link may take to come up.
const linkUpWait = 10 * time.Second

func waitOperUp(h *handle, name string) error {
	deadline := time.Now().Add(linkUpWait)
	for pause := 100 * time.Microsecond; ; pause = min(2*pause, 5*time.Millisecond) {
		l, err := h.freshLink(name)
		if err != nil {
			return err
		}
		if l.Attrs().OperState == netlink.OperUp {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("link %s is still %s after %s", name, l.Attrs().OperState, linkUpWait)
		}
		time.Sleep(pause)
	}
}
