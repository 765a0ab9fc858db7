package kernel

import (
	"fmt"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Port is a link of the namespace as a bridge port: the library's link list leaves out the
// bridge-port settings the kernel sends along (IFLA_INFO_SLAVE_DATA), which say whether the
// bridge forwards through the port at all.
type Port struct {
	Name   string
	Index  int
	Up     bool // administratively (IFF_UP)
	OperUp bool // operationally (IF_OPER_UP)
	Master int  // the index of the link it is a port of; 0 when none
	// State is the port's STP state (3: forwarding), -1 when it is no bridge port.
	State int
	// Isolated: the bridge forwards nothing between it and other isolated ports.
	Isolated bool
	// The port's security and forwarding settings. LockedSeen tells a kernel that reports
	// locking (5.18 and later).
	Learning, Locked, LockedSeen                   bool
	Flood, McastFlood, BcastFlood                  bool // on by default
	ProxyARP, ProxyARPWiFi, Hairpin, NeighSuppress bool
	BackupPort                                     int  // the index of the port that takes its traffic when it is down; 0 when none
	XDP                                            bool // an XDP program is attached to the link
}

// StateForwarding is the bridge-port state in which the bridge forwards through the port.
const StateForwarding = 3

// Ports lists the namespace's links with their bridge-port settings, in one dump.
func (n *NS) Ports() ([]Port, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_DUMP)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	// Interrupted when a link comes or goes meanwhile: a guest leaving, its port going with
	// its namespace, later.
	msgs, err := Retry(func() ([][]byte, error) { return n.Execute(req, unix.RTM_NEWLINK) })
	if err != nil {
		return nil, fmt.Errorf("list links in %s: %w", n.path, err)
	}
	ports := make([]Port, 0, len(msgs))
	for _, m := range msgs {
		p, err := ParsePort(m)
		if err != nil {
			return nil, fmt.Errorf("list links in %s: %w", n.path, err)
		}
		ports = append(ports, p)
	}
	return ports, nil
}

// ParsePort reads a link message (RTM_NEWLINK) as a Port.
func ParsePort(m []byte) (Port, error) {
	if len(m) < unix.SizeofIfInfomsg {
		return Port{}, fmt.Errorf("a link message of %d bytes", len(m))
	}
	info := nl.DeserializeIfInfomsg(m)
	p := Port{Index: int(info.Index), Up: info.Flags&unix.IFF_UP != 0, State: -1}
	attrs, err := nl.ParseRouteAttr(m[unix.SizeofIfInfomsg:])
	if err != nil {
		return Port{}, err
	}
	for _, a := range attrs {
		switch a.Attr.Type &^ unix.NLA_F_NESTED {
		case unix.IFLA_IFNAME:
			p.Name = nameOf(a.Value)
		case unix.IFLA_MASTER:
			if len(a.Value) >= 4 {
				p.Master = int(nl.NativeEndian().Uint32(a.Value))
			}
		case unix.IFLA_OPERSTATE:
			p.OperUp = len(a.Value) == 1 && netlink.LinkOperState(a.Value[0]) == netlink.OperUp
		case unix.IFLA_LINKINFO:
			brport, _ := nl.ParseRouteAttr(nestedAttr(a.Value, unix.IFLA_INFO_SLAVE_DATA))
			for _, b := range brport {
				v := b.Value
				on := len(v) >= 1 && v[0] != 0
				switch b.Attr.Type &^ unix.NLA_F_NESTED {
				case unix.IFLA_BRPORT_STATE:
					if len(v) >= 1 {
						p.State = int(v[0])
					}
				case unix.IFLA_BRPORT_ISOLATED:
					p.Isolated = on
				case unix.IFLA_BRPORT_LEARNING:
					p.Learning = on
				case unix.IFLA_BRPORT_LOCKED:
					p.Locked, p.LockedSeen = on, true
				case unix.IFLA_BRPORT_UNICAST_FLOOD:
					p.Flood = on
				case unix.IFLA_BRPORT_MCAST_FLOOD:
					p.McastFlood = on
				case unix.IFLA_BRPORT_BCAST_FLOOD:
					p.BcastFlood = on
				case unix.IFLA_BRPORT_PROXYARP:
					p.ProxyARP = on
				case unix.IFLA_BRPORT_PROXYARP_WIFI:
					p.ProxyARPWiFi = on
				case unix.IFLA_BRPORT_MODE:
					p.Hairpin = on
				case unix.IFLA_BRPORT_NEIGH_SUPPRESS:
					p.NeighSuppress = on
				case unix.IFLA_BRPORT_BACKUP_PORT:
					if len(v) >= 4 {
						p.BackupPort = int(nl.NativeEndian().Uint32(v))
					}
				}
			}
		case unix.IFLA_XDP:
			if v := nestedAttr(a.Value, unix.IFLA_XDP_ATTACHED); len(v) >= 1 {
				p.XDP = v[0] != 0
			}
		}
	}
	return p, nil
}

// nestedAttr is the value of the attribute typ among the attributes b holds; nil when absent.
func nestedAttr(b []byte, typ uint16) []byte {
	attrs, err := nl.ParseRouteAttr(b)
	if err != nil {
		return nil
	}
	for _, a := range attrs {
		if a.Attr.Type&^unix.NLA_F_NESTED == typ {
			return a.Value
		}
	}
	return nil
}

func nameOf(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// LockPort turns learning off and locking on for the bridge port with the given index, in
// one request (the netlink library sets one port flag a request and has no call for
// locking).
func (n *NS) LockPort(index int) error {
	req := nl.NewNetlinkRequest(unix.RTM_SETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_BRIDGE)
	msg.Index = int32(index)
	req.AddData(msg)
	flags := nl.NewRtAttr(unix.IFLA_PROTINFO|unix.NLA_F_NESTED, nil)
	flags.AddRtAttr(nl.IFLA_BRPORT_LEARNING, []byte{0})
	flags.AddRtAttr(nl.IFLA_BRPORT_LOCKED, []byte{1})
	req.AddData(flags)
	_, err := n.Execute(req, 0)
	return err
}

// Waiting for a new guest's links: the kernel brings bridge ports and veth queues into
// service asynchronously, and a guest must be usable when its attach returns.

// WaitForwarding returns once the bridge forwards through port, or fails after within. The
// kernel enables a bridge port only after it has processed the port's carrier change,
// asynchronously and later still when the routing netlink lock is busy: until then the bridge
// drops what it should flood to the new guest (an ARP request for it), so a guest just
// attached would miss its first packets.
func (n *NS) WaitForwarding(port string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
		req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
		req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(port)))
		msgs, err := n.Execute(req, unix.RTM_NEWLINK)
		if err != nil {
			return fmt.Errorf("read state of bridge port %s: %w", port, err)
		}
		// The port's own queue, which carries the bridge's frames to the guest, is activated
		// by the same asynchronous work as its operational state.
		if len(msgs) == 1 {
			if p, err := ParsePort(msgs[0]); err == nil && p.State == StateForwarding && p.OperUp {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bridge port %s did not start forwarding within %s", port, within)
		}
		time.Sleep(time.Millisecond)
	}
}

// WaitOperUp returns once the link is operationally up (the kernel's link-watch work has
// activated its queue, which it defers while links change often), or fails after within.
func (n *NS) WaitOperUp(name string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for pause := 100 * time.Microsecond; ; pause = min(2*pause, 5*time.Millisecond) {
		l, err := n.LinkByName(name)
		if err != nil {
			return fmt.Errorf("find link %s: %w", name, err)
		}
		if l.Attrs().OperState == netlink.OperUp {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("link %s is still %s after %s", name, l.Attrs().OperState, within)
		}
		time.Sleep(pause)
	}
}
