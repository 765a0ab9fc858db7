package config

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// DefaultBridgeNet is the private network of a run's bridge when no other
// address plan is given: guests take 172.18.0.1-172.18.0.253 and the bridge
// itself holds 172.18.0.254. Every run has its own bridge namespace, so runs
// never share these addresses.
var DefaultBridgeNet = netip.MustParsePrefix("172.18.0.0/24")

// GuestRange returns the first and last address a guest may take on the
// bridge network n: every host address except the last usable one, which
// belongs to the bridge (see BridgeAddr). For 172.18.0.0/24 that is
// 172.18.0.1-172.18.0.253. n must be an IPv4 prefix of at most /30, so that
// at least one guest fits beside the bridge.
func GuestRange(n netip.Prefix) (first, last netip.Addr, err error) {
	base, size, err := bridgeNetBounds(n)
	if err != nil {
		return netip.Addr{}, netip.Addr{}, err
	}
	return addr4(base + 1), addr4(base + uint32(size-3)), nil
}

// BridgeAddr returns the bridge's own address on the bridge network n: the
// last usable host address (172.18.0.254 in 172.18.0.0/24). Guests never take
// it. n follows the same rules as in GuestRange.
func BridgeAddr(n netip.Prefix) (netip.Addr, error) {
	base, size, err := bridgeNetBounds(n)
	if err != nil {
		return netip.Addr{}, err
	}
	return addr4(base + uint32(size-2)), nil
}

// bridgeNetBounds returns n's network address as an integer and the number
// of addresses in n.
func bridgeNetBounds(n netip.Prefix) (base uint32, size uint64, err error) {
	if !n.IsValid() || !n.Addr().Is4() {
		return 0, 0, fmt.Errorf("bridge network %v: want an IPv4 prefix such as %v", n, DefaultBridgeNet)
	}
	if n.Bits() > 30 {
		return 0, 0, fmt.Errorf("bridge network %v: too small for a guest and the bridge; use a prefix of /30 or shorter", n)
	}
	a := n.Masked().Addr().As4()
	return binary.BigEndian.Uint32(a[:]), uint64(1) << (32 - n.Bits()), nil
}

func addr4(u uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], u)
	return netip.AddrFrom4(b)
}
