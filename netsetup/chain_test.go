package netsetup_test

import (
	"testing"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
)

func TestGuestsReachEachOtherAndUpstream(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{})
	var guests []*netsetup.Guest
	for _, ip := range []string{"172.18.0.1", "172.18.0.2", "172.18.0.3"} {
		g := mustGuest(t, s.Env, "b1", "g"+ip[len(ip)-1:], ip)
		serve(t, g.Netns, addr(g.IP))
		guests = append(guests, g)
	}
	serve(t, s.Upstream, sandbox.UpstreamAddr.Addr())
	for _, a := range guests {
		for _, b := range guests {
			if a != b {
				mustReach(t, a.Netns, addr(b.IP))
			}
		}
		mustReach(t, a.Netns, sandbox.UpstreamAddr.Addr())
	}
}
