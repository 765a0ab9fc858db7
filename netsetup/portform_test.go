package netsetup

import (
	"net/netip"
	"strings"
	"testing"
)

// TestParseGuestPort: the form a guest declares its own forwards in (pontoon.toml, the
// pontoon.ports annotation) is the bridge form without the guest, with the same grammar and
// messages that quote the forward and say how to write it.
func TestParseGuestPort(t *testing.T) {
	for in, want := range map[string]Port{
		"8080:80":     {HostPort: 8080, GuestPort: 80, Proto: TCP},
		"8080:80/tcp": {HostPort: 8080, GuestPort: 80, Proto: TCP},
		"5353:53/udp": {HostPort: 5353, GuestPort: 53, Proto: UDP},
		"1:65535":     {HostPort: 1, GuestPort: 65535, Proto: TCP},
	} {
		got, err := ParseGuestPort(in)
		if err != nil || got != want {
			t.Errorf("ParseGuestPort(%q) = %+v, %v; want %+v", in, got, err, want)
			continue
		}
		if again, err := ParseGuestPort(got.String()); err != nil || again != got {
			t.Errorf("ParseGuestPort(%q.String() = %q) = %+v, %v", in, got.String(), again, err)
		}
	}
	for in, want := range map[string]string{
		"8080":            `port "8080" has no guest port; write "8080:8080" (HOSTPORT:GUESTPORT[/tcp|/udp])`,
		"53/udp":          `port "53/udp" has no guest port; write "53:53/udp"`,
		"x":               `port "x" is not HOSTPORT:GUESTPORT[/tcp|/udp]; write e.g. "8080:80"`,
		"":                `port "" is not HOSTPORT:GUESTPORT[/tcp|/udp]`,
		"8080:web:80":     `port "8080:web:80": only HOSTPORT:GUESTPORT[/tcp|/udp] is supported`,
		"a:80":            `port "a:80": host port "a" is not a number; write HOSTPORT:GUESTPORT[/tcp|/udp], e.g. "8080:80"`,
		"80:":             `port "80:": guest port "" is not a number`,
		"70000:80":        `port "70000:80": host port 70000 is out of range; use 1-65535`,
		"80:0":            `port "80:0": guest port 0 is out of range; use 1-65535`,
		"53:53/UDP":       `port "53:53/UDP": protocol "UDP" is not tcp or udp; write "53:53/udp"`,
		"53:53/sctp":      `protocol "sctp" is not tcp or udp; write /tcp or /udp`,
		"99999999999:80":  `host port 99999999999 is out of range`,
		"80:80 81":        `guest port "80 81" is not a number`,
		"-1:80":           `host port "-1" is not a number`,
		"8080:80/tcp/udp": `protocol "tcp/udp" is not tcp or udp`,
	} {
		_, err := ParseGuestPort(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseGuestPort(%q) = %v; want an error containing %q", in, err, want)
		}
	}
}

func TestPortString(t *testing.T) {
	for _, c := range []struct {
		p    Port
		want string
	}{
		{Port{HostPort: 8080, GuestPort: 80, Proto: UDP}, "8080:80/udp"},
		{Port{HostPort: 8080, Guest: "web", GuestPort: 80, Proto: TCP}, "8080:web:80/tcp"},
	} {
		if got := c.p.String(); got != c.want {
			t.Errorf("%+v.String() = %q, want %q", c.p, got, c.want)
		}
	}
}

func TestGuestRange(t *testing.T) {
	for _, c := range []struct {
		net, first, last, bridge, err string
	}{
		{net: "172.18.0.0/24", first: "172.18.0.1", last: "172.18.0.253", bridge: "172.18.0.254"},
		{net: "10.1.2.0/28", first: "10.1.2.1", last: "10.1.2.13", bridge: "10.1.2.14"},
		{net: "192.168.5.8/30", first: "192.168.5.9", last: "192.168.5.9", bridge: "192.168.5.10"},
		{net: "10.0.0.0/31", err: "too small"},
		{net: "fd00::/64", err: "want an IPv4 prefix"},
	} {
		first, last, bridge, err := GuestRange(netip.MustParsePrefix(c.net))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("GuestRange(%s) err = %v, want %q", c.net, err, c.err)
			}
			continue
		}
		if err != nil || first.String() != c.first || last.String() != c.last || bridge.String() != c.bridge {
			t.Errorf("GuestRange(%s) = %v-%v bridge %v, %v; want %s-%s bridge %s", c.net, first, last, bridge, err, c.first, c.last, c.bridge)
		}
	}
	// The plan's guest addresses follow the same rule.
	p := DefaultPlan()
	if got := p.BridgeAddr().String(); got != "172.18.0.254/24" {
		t.Errorf("BridgeAddr = %s", got)
	}
	for ip, ok := range map[string]bool{"172.18.0.1": true, "172.18.0.253": true, "172.18.0.254": false, "172.18.0.0": false} {
		if _, err := p.ParseGuestIP(ip); (err == nil) != ok {
			t.Errorf("ParseGuestIP(%s) = %v, want ok=%v", ip, err, ok)
		}
	}
}
