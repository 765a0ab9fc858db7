package netsetup_test

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/netsetup"
)

// TestUserLinkAllocation: user links take /30s that neither a host route nor another user
// has, a second up of the same space changes nothing, a full block is refused without a
// change, and down removes one user's link and rules and, with the last, the host table.
// Stand-in spaces are plain processes in network namespaces of the test's own.
func TestUserLinkAllocation(t *testing.T) {
	needRoot(t)
	s := newSandbox(t)
	gw := netip.MustParseAddr("172.18.255.2")
	// A firewall that drops forwarded traffic (as Docker's FORWARD policy does).
	inNetns(t, s.Host, "nft", "add table ip filter; add chain ip filter FORWARD { type filter hook forward priority 0; policy drop; }")
	// The host routes the block's first /30 already.
	inNetns(t, s.Host, "ip", "route", "add", "10.199.0.0/30", "dev", "lo")
	spaceA := startIn(t, newNetns(t, "a.net"))
	spaceB := startIn(t, newNetns(t, "b.net"))
	spaceC := startIn(t, newNetns(t, "c.net"))
	block := netip.MustParsePrefix("10.199.0.0/28")

	a, already, err := netsetup.UserLinkUp(s.Env, netsetup.UserLinkRequest{User: "a", UID: 5001, SpacePID: spaceA.Process.Pid, Gateway: gw, Block: block})
	if err != nil || already || a.Link != netip.MustParsePrefix("10.199.0.4/30") {
		t.Fatalf("first link: %+v, already %v, %v; want 10.199.0.4/30", a, already, err)
	}
	if _, already, err := netsetup.UserLinkUp(s.Env, netsetup.UserLinkRequest{User: "a", UID: 5001, SpacePID: spaceA.Process.Pid, Gateway: gw, Block: block}); err != nil || !already {
		t.Errorf("second up of the same space: already %v, %v", already, err)
	}
	b, _, err := netsetup.UserLinkUp(s.Env, netsetup.UserLinkRequest{User: "b", UID: 5002, SpacePID: spaceB.Process.Pid, Gateway: gw, Block: block})
	if err != nil || b.Link != netip.MustParsePrefix("10.199.0.8/30") {
		t.Fatalf("second user's link: %+v, %v; want 10.199.0.8/30", b, err)
	}
	if got := inNetns(t, "/proc/"+strconv.Itoa(spaceA.Process.Pid)+"/ns/net", "ip", "-br", "addr", "show", netsetup.UserLinkName); !strings.Contains(got, "10.199.0.6/30") {
		t.Errorf("space a's end: %q", got)
	}
	ruleset := inNetns(t, s.Host, "nft", "list", "table", "ip", "pontoon-users")
	forward := inNetns(t, s.Host, "nft", "list", "chain", "ip", "filter", "FORWARD")
	for _, want := range []string{`iifname "pu5001" accept`, `oifname "pu5002" ct state related,established accept`} {
		if !strings.Contains(forward, want) {
			t.Errorf("the drop chain lacks %s:\n%s", want, forward)
		}
	}
	for _, want := range []string{"10.199.0.4/30", "10.199.0.8/30"} {
		if !strings.Contains(ruleset, want) {
			t.Errorf("host table lacks %s:\n%s", want, ruleset)
		}
	}

	// 10.199.0.12/30 is the last of the block: take it by a host address, and the block is full.
	inNetns(t, s.Host, "ip", "addr", "add", "10.199.0.13/30", "dev", "lo")
	before := snapshot(t, s)
	_, _, err = netsetup.UserLinkUp(s.Env, netsetup.UserLinkRequest{User: "c", UID: 5003, SpacePID: spaceC.Process.Pid, Gateway: gw, Block: block})
	wantErr(t, "full block", err, "no free /30", "--link")
	unchanged(t, s, before, "a refused link", "the host")
	// A link that fails halfway (the space has an interface of the link's name) is rolled back.
	cNet := "/proc/" + strconv.Itoa(spaceC.Process.Pid) + "/ns/net"
	inNetns(t, cNet, "ip", "link", "add", netsetup.UserLinkName, "type", "veth", "peer", "name", "other")
	_, _, err = netsetup.UserLinkUp(s.Env, netsetup.UserLinkRequest{User: "c", UID: 5003, SpacePID: spaceC.Process.Pid, Gateway: gw, Block: netip.MustParsePrefix("10.198.0.0/30")})
	wantErr(t, "name clash in the space", err, "user c", "ip link add pu5003")
	unchanged(t, s, before, "a link failed halfway", "the host")

	// A space that ends leaves its link to gc, which removes that one only.
	if users, err := netsetup.GCUserLinks(s.Env); err != nil || len(users) != 0 {
		t.Errorf("gc with every space alive: %v, %v", users, err)
	}
	spaceA.Process.Kill()
	spaceA.Wait()
	if users, err := netsetup.GCUserLinks(s.Env); err != nil || !slices.Equal(users, []string{"a"}) {
		t.Errorf("gc after space a ended removed %v, %v; want a", users, err)
	}
	if err := netsetup.UserLinkDown(s.Env, 5001); err != nil {
		t.Fatal(err)
	}
	if got := linkNames(t, s.Host); strings.Contains(strings.Join(got, " "), "pu5001") || !strings.Contains(strings.Join(got, " "), "pu5002") {
		t.Errorf("host links after a's down: %v", got)
	}
	if err := netsetup.UserLinkDown(s.Env, 5002); err != nil {
		t.Fatal(err)
	}
	if err := netsetup.UserLinkDown(s.Env, 5002); err != nil {
		t.Errorf("second down: %v", err)
	}
	if got := inNetns(t, s.Host, "nft", "list", "tables"); strings.Contains(got, "pontoon-users") {
		t.Errorf("host table left after the last down: %s", got)
	}
	if forward := inNetns(t, s.Host, "nft", "list", "chain", "ip", "filter", "FORWARD"); strings.Contains(forward, "pu50") {
		t.Errorf("exceptions left in the drop chain:\n%s", forward)
	}
	if links, err := netsetup.UserLinks(s.Env); err != nil || len(links) != 0 {
		t.Errorf("records after down: %v, %v", links, err)
	}
}
