package netsetup

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParsePort(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Port
	}{
		{"8080:web:80", Port{8080, "web", 80, "tcp"}},
		{"8080:web:80/tcp", Port{8080, "web", 80, "tcp"}},
		{"5353:dns:53/udp", Port{5353, "dns", 53, "udp"}},
		{"1:172.18.0.7:65535", Port{1, "172.18.0.7", 65535, "tcp"}},
		{"65535:a.b_c-d:1/udp", Port{65535, "a.b_c-d", 1, "udp"}},
	} {
		got, err := ParsePort(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParsePort(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
		if err == nil {
			// The canonical form parses back to the same forward.
			again, err := ParsePort(got.String())
			if err != nil || again != got {
				t.Errorf("ParsePort(%q.String() = %q) = %+v, %v", c.in, got.String(), again, err)
			}
		}
	}
}

func TestParsePortErrors(t *testing.T) {
	const form = "HOSTPORT:GUEST:GUESTPORT"
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"", []string{`""`, form}},
		{"8080", []string{`"8080"`, form}},
		{"8080:web", []string{form}},
		{"8080:web:80:90", []string{form}},
		{"8080::80", []string{form}},
		{"8080:web:80/sctp", []string{`"sctp"`, "tcp or udp"}},
		{"8080:web:80/", []string{`""`, "tcp or udp"}},
		{"8080:web:80/TCP", []string{`"TCP"`}},
		{"0:web:80", []string{"host port 0", "1-65535"}},
		{"65536:web:80", []string{"host port 65536", "1-65535"}},
		{"x:web:80", []string{"host port", `"x"`}},
		{"-1:web:80", []string{"host port"}},
		{"8080:web:0", []string{"guest port 0", "1-65535"}},
		{"8080:web:99999", []string{"guest port", "1-65535"}},
		{"8080:web: 80", []string{"guest port"}},
		{"8080:-web:80", []string{`"-web"`, "letters, digits"}},
		{"8080:we/b:80", []string{"tcp or udp"}},
		{"8080:we b:80", []string{`"we b"`}},
	} {
		_, err := ParsePort(c.in)
		if err == nil {
			t.Errorf("ParsePort(%q) succeeded, want an error", c.in)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("ParsePort(%q) = %q, want it to mention %q", c.in, err, w)
			}
		}
	}
}

func TestCheckName(t *testing.T) {
	ok := []string{"a", "web", "Web-1", "b.2_x", "0", strings.Repeat("a", 63)}
	for _, n := range ok {
		if err := checkName("bridge", n); err != nil {
			t.Errorf("checkName(%q): %v", n, err)
		}
	}
	bad := []string{"", "-a", ".a", "_a", "a/b", "../x", "a b", "a\x00", "ä", "a:b", strings.Repeat("a", 64)}
	for _, n := range bad {
		err := checkName("bridge", n)
		if err == nil {
			t.Errorf("checkName(%q) succeeded, want an error", n)
			continue
		}
		// The message names the field, the value and what is allowed.
		for _, w := range []string{"bridge name", "1-63 letters"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("checkName(%q) = %q, want it to mention %q", n, err, w)
			}
		}
	}
	if err := checkHostname(strings.Repeat("h", 64)); err == nil {
		t.Error("checkHostname accepted 64 characters")
	}
}

func TestCheckPortsUnique(t *testing.T) {
	if err := checkPortsUnique([]Port{{8080, "a", 80, "tcp"}, {8080, "a", 80, "udp"}, {8081, "b", 80, "tcp"}}); err != nil {
		t.Errorf("distinct ports refused: %v", err)
	}
	err := checkPortsUnique([]Port{{8080, "a", 80, "tcp"}, {8080, "b", 81, "tcp"}})
	if err == nil || !strings.Contains(err.Error(), "8080/tcp") {
		t.Errorf("duplicate host port: got %v, want an error naming 8080/tcp", err)
	}
}

func TestPortConflict(t *testing.T) {
	bridges := []*BridgeState{
		{Name: "one", Ports: []Port{{8080, "web", 80, "tcp"}}},
		{Name: "two", Ports: []Port{{5353, "dns", 53, "udp"}}},
	}
	for _, c := range []struct {
		self  string
		p     Port
		other string
	}{
		{"three", Port{8080, "x", 1, "tcp"}, "one"},
		{"three", Port{5353, "x", 1, "udp"}, "two"},
		{"three", Port{8080, "x", 1, "udp"}, ""}, // same number, other protocol
		{"three", Port{5353, "x", 1, "tcp"}, ""},
		{"one", Port{8080, "x", 1, "tcp"}, ""}, // a bridge does not conflict with itself
	} {
		other, clash := portConflict(bridges, c.self, c.p)
		if other != c.other || clash != (c.other != "") {
			t.Errorf("portConflict(%s, %s) = %q, %v; want %q", c.self, c.p, other, clash, c.other)
		}
	}
}

func TestGuestPortName(t *testing.T) {
	for ip, want := range map[string]string{"172.18.0.1": "g1", "172.18.0.253": "g253", "10.77.0.42": "g42"} {
		if got := (Guest{IP: netip.MustParseAddr(ip)}).PortName(); got != want {
			t.Errorf("PortName(%s) = %s, want %s", ip, got, want)
		}
	}
}
