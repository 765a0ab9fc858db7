package netsetup_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/netsetup"
)

// TestUserLinkGatewayMoved: when the user has moved their plan, the host's root linking the
// same space again keeps the link (the same veth and /30, so nothing the user has open
// through it breaks) and points the space's table at the user's new gateway.
func TestUserLinkGatewayMoved(t *testing.T) {
	needRoot(t)
	s := newSandbox(t)
	space := userSpace(t, 5061)
	req := netsetup.UserLinkRequest{User: "a", UID: 5061, SpacePID: space.Process.Pid, Gateway: netip.MustParseAddr("172.18.255.2")}
	l, _, err := netsetup.UserLinkUp(s.Env, req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netsetup.UserLinkDown(s.Env, 5061) })
	index := func() string {
		f := strings.SplitN(inNetns(t, s.Host, "ip", "-o", "link", "show", l.HostIf()), ":", 2)
		return f[0]
	}
	before := index()
	req.Gateway = netip.MustParseAddr("10.77.255.2")
	l2, already, err := netsetup.UserLinkUp(s.Env, req)
	if err != nil || !already || l2.Link != l.Link || l2.Gateway != req.Gateway {
		t.Fatalf("up after the user moved their gateway: %+v, already %v, %v; want the link %s kept, to %s", l2, already, err, l.Link, req.Gateway)
	}
	if got := index(); got != before {
		t.Errorf("the host's end %s was made again (index %s, was %s)", l.HostIf(), got, before)
	}
	table := inNetns(t, fmt.Sprintf("/proc/%d/ns/net", space.Process.Pid), "nft", "list", "table", "ip", "pontoon-users")
	if !strings.Contains(table, "dnat to 10.77.255.2") || strings.Contains(table, "172.18.255.2") {
		t.Errorf("the space's table after the second up:\n%s", table)
	}
	if links, err := netsetup.UserLinks(s.Env); err != nil || len(links) != 1 || links[0].Gateway != req.Gateway {
		t.Errorf("records after the second up: %+v, %v; want the gateway %s", links, err, req.Gateway)
	}
}
