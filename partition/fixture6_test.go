package partition

import (
	"fmt"
	"net/netip"
	"testing"
)

// addIPv6 gives the scene's bridge and guests IPv6 addresses, as netsetup does on a
// dual-stack chain (fd70:6f6e::N, usable at once, routes static): the guests' IP6 is set, so
// partitions cover both families. Probes keep going to IPv4 until use6 is set.
func (s *scene) addIPv6(tb testing.TB) {
	tb.Helper()
	run(tb, "sysctl -qw net.ipv6.conf.br0.accept_dad=0\n", "ip", "netns", "exec", s.bridgeNS, "sh")
	run(tb, "addr add fd70:6f6e::254/64 dev br0 nodad\n", "ip", "-n", s.bridgeNS, "-batch", "-")
	for i := range s.guests {
		g := &s.guests[i]
		g.IP6 = netip.MustParseAddr(fmt.Sprintf("fd70:6f6e::%x", g.IP.As4()[3]))
		run(tb, "sysctl -qw net.ipv6.conf.eth0.accept_dad=0 net.ipv6.conf.eth0.accept_ra=0\n", "ip", "netns", "exec", s.nsOf[g.Name], "sh")
		run(tb, fmt.Sprintf("addr add %s/64 dev eth0 nodad\nroute add default via fd70:6f6e::254\n", g.IP6),
			"ip", "-n", s.nsOf[g.Name], "-batch", "-")
	}
}

// addr is where probes and streams go to a guest: its IPv4 address, or its IPv6 one with
// use6.
func (s *scene) addr(g Guest) string {
	if s.use6 {
		return g.IP6.String()
	}
	return g.IP.String()
}

// checkBoth is checkMatrix over IPv4 and then over IPv6. Before the IPv6 probes every
// guest forgets its IPv6 neighbours, so each pair that must pass needs neighbour discovery
// to work under the partition in force.
func checkBoth(t *testing.T, s *scene, tag string, p Partition, mode Mode) {
	t.Helper()
	checkMatrix(t, s, tag, p, mode)
	for _, g := range s.guests {
		run(t, "", "ip", "-n", s.nsOf[g.Name], "-6", "neigh", "flush", "dev", "eth0")
	}
	s.use6 = true
	defer func() { s.use6 = false }()
	checkMatrix(t, s, tag+"-6", p, mode)
}
