package names

import (
	"net/netip"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup"
)

func TestParseFault(t *testing.T) {
	for _, c := range []struct {
		words []string
		want  string // Fault.String of the result; "" for an error
	}{
		{[]string{"nxdomain"}, "nxdomain for every name"},
		{[]string{"SERVFAIL"}, "servfail for every name"},
		{[]string{"drop"}, "drop for every name"},
		{[]string{"wrong", "10.9.9.9"}, "wrong 10.9.9.9 for every name"},
		{[]string{"delay", "1.5s"}, "delay 1.5s for every name"},
		{[]string{"wrong"}, ""},
		{[]string{"wrong", "::1"}, ""},
		{[]string{"delay", "0s"}, ""},
		{[]string{"delay", "soon"}, ""},
		{[]string{"nxdomain", "db"}, ""},
		{[]string{"slow"}, ""},
		{nil, ""},
	} {
		f, err := ParseFault(c.words)
		switch {
		case c.want == "" && err == nil:
			t.Errorf("ParseFault(%q) = %s; want an error", c.words, f)
		case c.want != "" && (err != nil || f.String() != c.want):
			t.Errorf("ParseFault(%q) = %s, %v; want %s", c.words, f, err, c.want)
		}
	}
}

func TestMatchNewestFirst(t *testing.T) {
	now := time.Now()
	faults := []Fault{
		{ID: 1, Kind: NXDomain, Names: []string{"db"}},
		{ID: 2, Kind: ServFail, From: []string{"n1"}},
		{ID: 3, Kind: Drop, Names: []string{"db"}, From: []string{"n2"}, Expires: now.Add(-time.Second)},
	}
	for _, c := range []struct {
		name, from string
		want       int
	}{
		{"db", "n3", 1},
		{"db", "n1", 2}, // newer
		{"db", "n2", 1}, // 3 has expired
		{"web", "n1", 2},
		{"web", "n3", 0},
	} {
		got := 0
		if f := match(faults, c.name, c.from, now); f != nil {
			got = f.ID
		}
		if got != c.want {
			t.Errorf("match(%s from %s) = fault %d; want %d", c.name, c.from, got, c.want)
		}
	}
}

func TestLookupOnlyAttachedGuests(t *testing.T) {
	b := &netsetup.BridgeState{Guests: []netsetup.Guest{
		{Name: "n1", Hostname: "alpha", Aliases: []string{"db"}, IP: netip.MustParseAddr("172.18.0.1"), Phase: netsetup.PhaseReady},
		{Name: "n2", IP: netip.MustParseAddr("172.18.0.2"), Phase: netsetup.PhaseCreating},
	}}
	for name, want := range map[string]string{"n1": "172.18.0.1", "ALPHA": "172.18.0.1", "db": "172.18.0.1", "n2": "", "n3": ""} {
		ip, _, ok := lookup(b, normalize(name))
		if got := ip.String(); (want == "" && ok) || (want != "" && got != want) {
			t.Errorf("lookup(%s) = %v, %v; want %q", name, ip, ok, want)
		}
	}
}
