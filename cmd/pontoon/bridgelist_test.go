package main

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/netsetup"
)

// TestBridgeListManyGuests reproduces `pontoon bridge list` with a bridge of 200 guests,
// which wrote every guest (name=IP) on the bridge's line: the list keeps one short line per
// bridge, with the guest count and the address ranges, and `bridge show` (and `list -v`)
// has a line for every guest.
func TestBridgeListManyGuests(t *testing.T) {
	big := &netsetup.BridgeState{Name: "big", Slot: 7, Phase: netsetup.PhaseReady}
	for i := 1; i <= 201; i++ {
		if i == 150 {
			continue // a gap splits the range
		}
		big.Guests = append(big.Guests, netsetup.Guest{Name: fmt.Sprintf("node-%03d", i), IP: netip.MustParseAddr(fmt.Sprintf("172.18.0.%d", i)), Phase: netsetup.PhaseReady})
	}
	for i := 0; i < 5; i++ {
		p, err := netsetup.ParsePort(fmt.Sprintf("%d:web:80", 8080+i))
		if err != nil {
			t.Fatal(err)
		}
		big.Ports = append(big.Ports, p)
	}
	small := &netsetup.BridgeState{Name: "small", Slot: 8, Phase: netsetup.PhaseReady,
		Guests: []netsetup.Guest{{Name: "a", IP: netip.MustParseAddr("172.18.0.9")}, {Name: "b", IP: netip.MustParseAddr("172.18.0.3")}}}
	var out bytes.Buffer
	if err := printBridges(&out, []*netsetup.BridgeState{big, small}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("bridge list wrote %d lines for 2 bridges:\n%s", len(lines), out.String())
	}
	for _, l := range lines {
		if len(l) > 120 {
			t.Errorf("line of %d characters: %q", len(l), l)
		}
	}
	for _, want := range []string{" 200 ", "172.18.0.1-149,172.18.0.151-201", "+3 more"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("line of the 200-guest bridge %q lacks %q", lines[1], want)
		}
	}
	if !strings.Contains(lines[2], "172.18.0.3,172.18.0.9") {
		t.Errorf("line of the 2-guest bridge %q lacks its addresses in order", lines[2])
	}

	out.Reset()
	if err := showBridge(&out, netsetup.Env{}, big); err != nil {
		t.Fatal(err)
	}
	for _, g := range big.Guests {
		if !strings.Contains(out.String(), "\n"+g.Name+" ") {
			t.Fatalf("bridge show lacks guest %s:\n%s", g.Name, out.String())
		}
	}
}

func TestAddressRanges(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{nil, "-"},
		{[]string{"172.18.0.5"}, "172.18.0.5"},
		{[]string{"172.18.0.2", "172.18.0.1", "172.18.0.3"}, "172.18.0.1-3"},
		{[]string{"10.0.0.255", "10.0.1.0", "10.0.1.1"}, "10.0.0.255,10.0.1.0-1"},
		{[]string{"172.18.0.1", "172.18.0.3", "172.18.0.5", "172.18.0.7", "172.18.0.9", "172.18.0.11"}, "172.18.0.1,172.18.0.3,172.18.0.5,172.18.0.7,+2 more"},
	}
	for _, tt := range tests {
		if got := addressRanges(tt.in); got != tt.want {
			t.Errorf("addressRanges(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
