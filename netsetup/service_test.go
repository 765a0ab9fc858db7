package netsetup

import (
	"net/netip"
	"slices"
	"testing"
)

func TestServicePlan(t *testing.T) {
	p := DefaultPlan()
	p.Subnet6 = DefaultPlan6()
	for _, tc := range []struct{ got, want string }{
		{p.ServiceNet().String(), "172.18.1.0/24"},
		{p.ClientNet().String(), "172.18.2.0/24"},
		{p.ServiceIP6(netip.MustParseAddr("172.18.1.42")).String(), "fd70:6f6e:0:1::42"},
		{p.ClientAlias(netip.MustParseAddr("172.18.0.7")).String(), "172.18.2.7"},
		{p.ClientAlias(netip.MustParseAddr("fd70:6f6e::beef")).String(), "fd70:6f6e:0:2::beef"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
	// The plan's ranges, the services' among them, are distinct.
	ranges := append(p.Ranges(), p.Ranges6()...)
	for _, svc := range []netip.Prefix{p.ServiceNet(), p.ClientNet(), p.ServiceNet6(), p.ClientNet6()} {
		if !slices.Contains(ranges, svc) {
			t.Errorf("the plan's ranges %v lack %s", ranges, svc)
		}
	}
	for i, r := range ranges {
		for _, q := range ranges[i+1:] {
			if r.Overlaps(q) {
				t.Errorf("the plan's ranges %s and %s overlap", r, q)
			}
		}
	}
}

func TestParseServicePort(t *testing.T) {
	for in, want := range map[string]string{"7000": "7000/tcp", "7000/tcp": "7000/tcp", "53/udp": "53/udp", "65535": "65535/tcp"} {
		if p, err := ParseServicePort(in); err != nil || p.String() != want {
			t.Errorf("ParseServicePort(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for _, in := range []string{"", "0", "65536", "http", "70/sctp", "7000/", "/udp", "-1", "7000/UDP"} {
		if _, err := ParseServicePort(in); err == nil {
			t.Errorf("ParseServicePort(%q) accepted", in)
		}
	}
}
