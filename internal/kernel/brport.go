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
}

// StateForwarding is the bridge-port state in which the bridge forwards through the port.
const StateForwarding = 3

// Ports lists the namespace's links with their bridge-port settings, in one dump.
func (n *NS) Ports() ([]Port, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_DUMP)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	msgs, err := n.Execute(req, unix.RTM_NEWLINK)
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
			data := nestedAttr(a.Value, unix.IFLA_INFO_SLAVE_DATA)
			if v := nestedAttr(data, unix.IFLA_BRPORT_STATE); len(v) >= 1 {
				p.State = int(v[0])
			}
			if v := nestedAttr(data, unix.IFLA_BRPORT_ISOLATED); len(v) >= 1 {
				p.Isolated = v[0] != 0
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
