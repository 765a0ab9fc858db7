package kernel

import (
	"fmt"

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
