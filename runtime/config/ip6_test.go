package config

import (
	"net/netip"
	"strings"
	"testing"
)

// A guest's ip6 and [settings] ipv4_only are read; an ip6 that is no IPv6 address is refused
// with the way to write one.
func TestIP6AndIPv4Only(t *testing.T) {
	p, err := Parse("pontoon.toml", []byte(`
[settings]
ipv4_only = true
[commands.web]
run = ["true"]
network = "guest"
ip = "172.18.0.5"
ip6 = "fd70:6f6e::beef"
[commands.db]
run = ["true"]
network = "guest"
ip = "172.18.0.6"
`))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Settings.IPv4Only {
		t.Error("ipv4_only = true was not read")
	}
	got := map[string]netip.Addr{}
	for _, c := range p.Commands {
		got[c.Name] = c.Guest.IP6
	}
	if want := netip.MustParseAddr("fd70:6f6e::beef"); got["web"] != want {
		t.Errorf("web's ip6 is %s, want %s", got["web"], want)
	}
	if got["db"].IsValid() {
		t.Errorf("db has ip6 %s without one written", got["db"])
	}
	for _, bad := range []string{`"172.18.0.9"`, `"nonsense"`, `6`} {
		_, err := Parse("pontoon.toml", []byte("[commands.web]\nrun = [\"true\"]\nnetwork = \"guest\"\nip = \"172.18.0.5\"\nip6 = "+bad+"\n"))
		if err == nil || !strings.Contains(err.Error(), "commands.web.ip6") || !strings.Contains(err.Error(), "fd70:6f6e::10") {
			t.Errorf("ip6 = %s: got %v, want an error at commands.web.ip6 showing an address to write", bad, err)
		}
	}
}
