package config

import (
	"net/netip"

	"github.com/pontoon-dev/pontoon/netsetup"
)

// DefaultBridgeNet returns the private network of a run's bridge when no other
// address plan is given: the default plan's guest network, where guests take
// 172.18.0.1-172.18.0.253 and the bridge itself holds 172.18.0.254. Every run
// has its own bridge namespace, so runs never share these addresses.
func DefaultBridgeNet() netip.Prefix { return netsetup.DefaultPlan().GuestNet() }

// GuestRange returns the first and last address a guest may take on the
// bridge network n, by netsetup's rule (netsetup.GuestRange): every host
// address except the last usable one, which belongs to the bridge (see
// BridgeAddr). For 172.18.0.0/24 that is 172.18.0.1-172.18.0.253. n must be
// an IPv4 prefix of at most /30, so that at least one guest fits beside the
// bridge.
func GuestRange(n netip.Prefix) (first, last netip.Addr, err error) {
	first, last, _, err = netsetup.GuestRange(n)
	return first, last, err
}

// BridgeAddr returns the bridge's own address on the bridge network n: the
// last usable host address (172.18.0.254 in 172.18.0.0/24). Guests never take
// it. n follows the same rules as in GuestRange.
func BridgeAddr(n netip.Prefix) (netip.Addr, error) {
	_, _, bridge, err := netsetup.GuestRange(n)
	return bridge, err
}
