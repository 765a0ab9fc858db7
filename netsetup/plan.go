package netsetup

import (
	"fmt"
	"net/netip"
)

// Slots is the number of bridges one gateway can serve: the /19 of uplinks holds 2048 /30s.
const Slots = 2048

// DefaultSubnet is the /16 the chain uses unless the gateway was created with another.
const DefaultSubnet = "172.18.0.0/16"

// Plan is the address plan of a chain, derived from one IPv4 /16 (default 172.18.0.0/16):
//
//	x.y.255.1/30, x.y.255.2/30   host link (host side, gateway side)
//	x.y.192.0/19                 bridge uplinks: slot N uses .4N+1 (gateway) and .4N+2 (bridge)
//	x.y.0.0/24                   every bridge's private guest network, bridge at x.y.0.254
//	x.y.0.1 - x.y.0.253          guest addresses
//
// Subnet6, when set, adds IPv6 addresses to the chain (see DefaultSubnet6); unset means IPv4
// only.
type Plan struct {
	Subnet  netip.Prefix
	Subnet6 netip.Prefix
}

// DefaultPlan returns the plan for 172.18.0.0/16.
func DefaultPlan() Plan {
	p, _ := ParsePlan(DefaultSubnet)
	return p
}

// ParsePlan parses the /16 a plan is derived from.
func ParsePlan(cidr string) (Plan, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return Plan{}, invalidf("subnet %q is not a CIDR prefix; use an IPv4 /16 such as 10.77.0.0/16", cidr)
	}
	if !p.Addr().Is4() {
		return Plan{}, invalidf("subnet %q is not IPv4; use an IPv4 /16 such as 10.77.0.0/16", cidr)
	}
	if p.Bits() != 16 {
		return Plan{}, invalidf("subnet %q is a /%d; the plan needs exactly a /16, such as %s", cidr, p.Bits(), netip.PrefixFrom(p.Addr(), 16).Masked())
	}
	if p.Masked() != p {
		return Plan{}, invalidf("subnet %q has host bits set; use %s", cidr, p.Masked())
	}
	if a := p.Addr().As4(); a[0] == 0 || a[0] == 127 || a[0] >= 224 {
		return Plan{}, invalidf("subnet %q is not usable for a network (zero, loopback or multicast); use a private /16 such as 10.77.0.0/16", cidr)
	}
	return Plan{Subnet: p}, nil
}

// String returns the plan's /16.
func (p Plan) String() string { return p.Subnet.String() }

func (p Plan) addr(c, d byte) netip.Addr {
	a := p.Subnet.Addr().As4()
	return netip.AddrFrom4([4]byte{a[0], a[1], c, d})
}

// HostLink returns the /30 of the host link.
func (p Plan) HostLink() netip.Prefix { return netip.PrefixFrom(p.addr(255, 0), 30) }

// HostAddr returns the host side of the host link (x.y.255.1/30).
func (p Plan) HostAddr() netip.Prefix { return netip.PrefixFrom(p.addr(255, 1), 30) }

// GatewayAddr returns the gateway side of the host link (x.y.255.2/30).
func (p Plan) GatewayAddr() netip.Prefix { return netip.PrefixFrom(p.addr(255, 2), 30) }

// Uplinks returns the /19 that holds every bridge uplink.
func (p Plan) Uplinks() netip.Prefix { return netip.PrefixFrom(p.addr(192, 0), 19) }

func (p Plan) uplink(slot, host int) netip.Prefix {
	off := 4*slot + host
	return netip.PrefixFrom(p.addr(byte(192+off/256), byte(off%256)), 30)
}

// UplinkGateway returns the gateway side of slot's uplink (.4N+1/30).
func (p Plan) UplinkGateway(slot int) netip.Prefix { return p.uplink(slot, 1) }

// UplinkBridge returns the bridge side of slot's uplink (.4N+2/30).
func (p Plan) UplinkBridge(slot int) netip.Prefix { return p.uplink(slot, 2) }

// GuestNet returns the private network each bridge gives its guests (x.y.0.0/24).
func (p Plan) GuestNet() netip.Prefix { return netip.PrefixFrom(p.addr(0, 0), 24) }

// BridgeAddr returns the bridge's own address on its guest network (x.y.0.254/24).
func (p Plan) BridgeAddr() netip.Prefix {
	_, _, bridge, _ := GuestRange(p.GuestNet())
	return netip.PrefixFrom(bridge, p.GuestNet().Bits())
}

// GuestAddr returns the /24 address of a guest IP.
func (p Plan) GuestAddr(ip netip.Addr) netip.Prefix { return netip.PrefixFrom(ip, 24) }

// Ranges returns every range the plan occupies, for collision checks against the host. The
// service and client-alias ranges count as much as the routed ones: an address in them is
// pontoon's to a guest, so a host network there would be out of the guests' reach.
func (p Plan) Ranges() []netip.Prefix {
	return []netip.Prefix{p.GuestNet(), p.Uplinks(), p.HostLink(), p.ServiceNet(), p.ClientNet()}
}

// CheckSlot validates a bridge slot number.
func CheckSlot(slot int) error {
	if slot < 0 || slot >= Slots {
		return fmt.Errorf("slot %d is out of range; slots are 0-%d", slot, Slots-1)
	}
	return nil
}

// ParseGuestIP parses and validates a guest address against the plan: it must lie in
// x.y.0.1 - x.y.0.253.
func (p Plan) ParseGuestIP(s string) (netip.Addr, error) {
	first, last, _, _ := GuestRange(p.GuestNet())
	ip, err := netip.ParseAddr(s)
	if err != nil || !ip.Is4() {
		return netip.Addr{}, invalidf("guest IP %q is not an IPv4 address; use one of %s-%s", s, first, last)
	}
	if !p.GuestNet().Contains(ip) || ip.Less(first) || last.Less(ip) {
		return netip.Addr{}, invalidf("guest IP %s is outside the guest range; use one of %s-%s", ip, first, last)
	}
	return ip, nil
}

// Overlaps reports the first of the plan's ranges that overlaps q.
func (p Plan) Overlaps(q netip.Prefix) (netip.Prefix, bool) {
	for _, r := range p.Ranges() {
		if r.Overlaps(q) {
			return r, true
		}
	}
	return netip.Prefix{}, false
}
