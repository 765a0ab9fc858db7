package netsetup

import (
	"net"
	"net/netip"
	"strconv"
)

// DefaultSubnet6 is the IPv6 /48 the chain uses unless the gateway was created with another
// (or IPv4 only). Like 172.18.0.0/16, every run may use the same prefix: runs are isolated.
const DefaultSubnet6 = "fd70:6f6e::/48"

// The IPv6 plan, derived from one unique local /48 P (default fd70:6f6e::/48), mirrors the
// IPv4 one:
//
//	P:ffff::1/64, P:ffff::2/64         host link (host side, gateway side)
//	P:8000+N::1/64, P:8000+N::2/64      uplink of slot N (gateway side, bridge side)
//	P::/64                              every bridge's private guest network, bridge at P::254
//	P::1 - P::253                       guest addresses derived from x.y.0.1 - x.y.0.253
//
// A guest's derived address spells its IPv4 address's last number in decimal digits
// (172.18.0.42 is P::42), so the two read alike.
const (
	hostLinkNet6  = 0xffff
	uplinkBase6   = 0x8000
	bridgeHostID6 = 254
)

// ParsePlan6 parses the IPv6 /48 a plan's IPv6 addresses are derived from.
func ParsePlan6(cidr string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is6() || p.Addr().Is4In6() {
		return netip.Prefix{}, invalidf("subnet6 %q is not an IPv6 prefix; use a unique local /48 such as %s", cidr, DefaultSubnet6)
	}
	if p.Bits() != 48 {
		return netip.Prefix{}, invalidf("subnet6 %q is a /%d; the plan needs exactly a /48, such as %s", cidr, p.Bits(), netip.PrefixFrom(p.Addr(), 48).Masked())
	}
	if p.Masked() != p {
		return netip.Prefix{}, invalidf("subnet6 %q has host bits set; use %s", cidr, p.Masked())
	}
	if p.Addr().As16()[0]&0xfe != 0xfc { // fc00::/7; Is6 holds already
		return netip.Prefix{}, invalidf("subnet6 %q is not a unique local prefix (fc00::/7); pontoon's networks are private, use one such as %s", cidr, DefaultSubnet6)
	}
	return p, nil
}

// DefaultPlan6 returns the default IPv6 /48.
func DefaultPlan6() netip.Prefix { return netip.MustParsePrefix(DefaultSubnet6) }

// IPv6 reports whether the plan gives guests IPv6 addresses (false: IPv4 only).
func (p Plan) IPv6() bool { return p.Subnet6.IsValid() }

// addr6 is P:net::host.
func (p Plan) addr6(net, host uint16) netip.Addr {
	a := p.Subnet6.Addr().As16()
	a[6], a[7] = byte(net>>8), byte(net)
	a[14], a[15] = byte(host>>8), byte(host)
	return netip.AddrFrom16(a)
}

// GuestNet6 returns the IPv6 /64 each bridge gives its guests (P::/64).
func (p Plan) GuestNet6() netip.Prefix { return netip.PrefixFrom(p.addr6(0, 0), 64) }

// BridgeAddr6 returns the bridge's own IPv6 address on its guest network (P::254/64).
func (p Plan) BridgeAddr6() netip.Prefix {
	return netip.PrefixFrom(p.addr6(0, hostID6(bridgeHostID6)), 64)
}

// GuestIP6 returns the IPv6 address derived from a guest's IPv4 address.
func (p Plan) GuestIP6(ip netip.Addr) netip.Addr { return p.addr6(0, hostID6(ip.As4()[3])) }

// hostID6 writes n's decimal digits as hex digits: 42 becomes 0x42.
func hostID6(n byte) uint16 {
	v, _ := strconv.ParseUint(strconv.Itoa(int(n)), 16, 16)
	return uint16(v)
}

// HostAddr6 returns the host side of the host link (P:ffff::1/64).
func (p Plan) HostAddr6() netip.Prefix { return netip.PrefixFrom(p.addr6(hostLinkNet6, 1), 64) }

// GatewayAddr6 returns the gateway side of the host link (P:ffff::2/64).
func (p Plan) GatewayAddr6() netip.Prefix { return netip.PrefixFrom(p.addr6(hostLinkNet6, 2), 64) }

// Uplinks6 returns the /53 that holds every bridge uplink's /64 (one per slot, 2^11), and not
// the host link's: as 172.18.192.0/19 holds the IPv4 uplinks.
func (p Plan) Uplinks6() netip.Prefix { return netip.PrefixFrom(p.addr6(uplinkBase6, 0), 53) }

// UplinkGateway6 returns the gateway side of slot's uplink (P:8000+N::1/64).
func (p Plan) UplinkGateway6(slot int) netip.Prefix {
	return netip.PrefixFrom(p.addr6(uplinkBase6+uint16(slot), 1), 64)
}

// UplinkBridge6 returns the bridge side of slot's uplink (P:8000+N::2/64).
func (p Plan) UplinkBridge6(slot int) netip.Prefix {
	return netip.PrefixFrom(p.addr6(uplinkBase6+uint16(slot), 2), 64)
}

// Ranges6 returns every IPv6 range the plan occupies, for collision checks against the host.
func (p Plan) Ranges6() []netip.Prefix {
	if !p.IPv6() {
		return nil
	}
	return []netip.Prefix{p.GuestNet6(), p.Uplinks6(), netip.PrefixFrom(p.addr6(hostLinkNet6, 0), 64), p.ServiceNet6(), p.ClientNet6()}
}

// ParseGuestIP6 parses and validates a guest's own IPv6 address against the plan: it must lie
// in the guest /64 and be none of the addresses the plan reserves (the bridge's, the derived
// address of any other IPv4 address, the subnet-router anycast address).
func (p Plan) ParseGuestIP6(s string, ip4 netip.Addr) (netip.Addr, error) {
	if !p.IPv6() {
		return netip.Addr{}, invalidf("guest IPv6 address %q given, but the gateway is IPv4 only; drop ip6, or bring the gateway up without --ipv4-only", s)
	}
	example := p.GuestIP6(p.GuestNet().Addr().Next()) // ip4 may be unknown yet
	if ip4.Is4() {
		example = p.GuestIP6(ip4)
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || !ip.Is6() || ip.Is4In6() || ip.Zone() != "" {
		return netip.Addr{}, invalidf("guest IPv6 address %q is not an IPv6 address; use one in %s, e.g. %s", s, p.GuestNet6(), example)
	}
	if !p.GuestNet6().Contains(ip) {
		return netip.Addr{}, invalidf("guest IPv6 address %s is outside the guest network %s; use one in it, e.g. %s", ip, p.GuestNet6(), example)
	}
	if ip == p.GuestNet6().Addr() || ip == p.BridgeAddr6().Addr() {
		return netip.Addr{}, invalidf("guest IPv6 address %s is reserved (subnet-router anycast or the bridge's); use another, e.g. %s", ip, example)
	}
	if o, derived := p.derivedOwner(ip); derived && o != ip4 {
		return netip.Addr{}, invalidf("guest IPv6 address %s is the one derived for %s; use it only with that IPv4 address, or another, e.g. %s", ip, o, example)
	}
	return ip, nil
}

// derivedOwner returns the guest IPv4 address whose derived IPv6 address ip is.
func (p Plan) derivedOwner(ip netip.Addr) (netip.Addr, bool) {
	first, last, _, _ := GuestRange(p.GuestNet())
	for a := first; !last.Less(a); a = a.Next() {
		if p.GuestIP6(a) == ip {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// LinkLocal6 returns the link-local address an interface with the given MAC gets by EUI-64
// (RFC 4291): pontoon gives a guest's eth0 exactly this one, so port security knows it.
func LinkLocal6(mac net.HardwareAddr) netip.Addr {
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	copy(a[8:], []byte{mac[0] ^ 0x02, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]})
	return netip.AddrFrom16(a)
}

// plan6Text names an IPv6 plan, or its absence.
func plan6Text(p netip.Prefix) string {
	if !p.IsValid() {
		return "none (IPv4 only)"
	}
	return p.String()
}
