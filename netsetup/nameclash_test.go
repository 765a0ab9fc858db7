package netsetup

import (
	"strings"
	"testing"
)

// TestNameClash: a guest is refused when any name it would be served under (name, hostname,
// alias) is already one of another guest's, whatever the case, since the name server answers
// one address per name. Reproduces `guest add b DB` beside "db" and `--hostname db`, which
// made db's name and web's own hostname resolve to db.
func TestNameClash(t *testing.T) {
	b := &BridgeState{Guests: []Guest{
		{Name: "db", Hostname: "db"},
		{Name: "web1", Hostname: "frontend", Aliases: []string{"www"}},
	}}
	tests := []struct {
		g    Guest
		want string // "" for no clash
	}{
		{Guest{Name: "cache", Hostname: "cache"}, ""},
		{Guest{Name: "db", Hostname: "db"}, ""}, // the same guest (a replacement) is not a clash
		{Guest{Name: "DB", Hostname: "DB"}, `name "DB" is already the name of guest "db"`},
		{Guest{Name: "web2", Hostname: "db"}, `hostname "db" is already the name of guest "db"`},
		{Guest{Name: "web2", Hostname: "FRONTEND"}, `hostname "FRONTEND" is already the hostname of guest "web1"`},
		{Guest{Name: "frontend", Hostname: "frontend"}, `name "frontend" is already the hostname of guest "web1"`},
		{Guest{Name: "www", Hostname: "www"}, `name "www" is already an alias of guest "web1"`},
		{Guest{Name: "api", Hostname: "api", Aliases: []string{"Www"}}, `alias "Www" is already an alias of guest "web1"`},
		{Guest{Name: "api", Hostname: "api", Aliases: []string{"db"}}, `alias "db" is already the name of guest "db"`},
	}
	for _, tt := range tests {
		got := nameClash(b, tt.g)
		if tt.want == "" && got != "" || tt.want != "" && !strings.HasPrefix(got, tt.want) {
			t.Errorf("%+v: %q; want %q", tt.g, got, tt.want)
		}
	}
}

// TestGuestNameNotAnAddress: partition specs take a guest by name or address, so a guest
// named like another's address would be picked in its place.
func TestGuestNameNotAnAddress(t *testing.T) {
	for _, name := range []string{"172.18.0.2", "10.1.2.3", "fd00::1"} {
		if err := checkNewGuestName(name); err == nil || !strings.Contains(err.Error(), "is an IP address") {
			t.Errorf("guest name %q: %v; want it refused as an address", name, err)
		}
	}
	for _, name := range []string{"n1", "node-1.2", "1node", "172.18.0"} {
		if err := checkNewGuestName(name); err != nil {
			t.Errorf("guest name %q: %v", name, err)
		}
	}
	if err := CheckAliases("alias", []string{"10.0.0.1"}); err == nil {
		t.Error("alias 10.0.0.1 accepted")
	}
}
