package netsetup

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// GuestRange returns, for a bridge's guest network n, the first and last address a guest may
// take and the bridge's own address: the bridge holds the last usable host address and guests
// every other one. For a plan's GuestNet, x.y.0.0/24, that is x.y.0.1-x.y.0.253 with the
// bridge at x.y.0.254. n must be an IPv4 prefix of at most /30, so that a guest fits beside
// the bridge.
func GuestRange(n netip.Prefix) (first, last, bridge netip.Addr, err error) {
	if !n.IsValid() || !n.Addr().Is4() {
		return netip.Addr{}, netip.Addr{}, netip.Addr{}, fmt.Errorf("bridge network %v: want an IPv4 prefix such as %v", n, DefaultPlan().GuestNet())
	}
	if n.Bits() > 30 {
		return netip.Addr{}, netip.Addr{}, netip.Addr{}, fmt.Errorf("bridge network %v: too small for a guest and the bridge; use a prefix of /30 or shorter", n)
	}
	a := n.Masked().Addr().As4()
	base, size := binary.BigEndian.Uint32(a[:]), uint32(uint64(1)<<(32-n.Bits())-1) // size: offset of the broadcast address
	return addr4(base + 1), addr4(base + size - 2), addr4(base + size - 1), nil
}

func addr4(u uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], u)
	return netip.AddrFrom4(b)
}
