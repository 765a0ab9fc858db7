package main

import (
	"net/netip"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/probe"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
)

// The floor make bench times beside pontoon's attach must be a working attach: two guests
// it attaches reach each other over IPv4 and IPv6, and not once one is detached.
func TestFloorAttachConnects(t *testing.T) {
	s := sandbox.ForTest(t, sandbox.TmpfsDir(t))
	env := s.Env
	if _, err := netsetup.GatewayUp(env, netsetup.GatewayOptions{}); err != nil {
		t.Fatal(err)
	}
	step, err := growFloor(2)
	if err != nil {
		t.Fatal(err)
	}
	if err := step.prepare(env); err != nil { // the bridge, and guest 1 attached
		t.Fatal(err)
	}
	if err := step.run(env); err != nil { // guest 2
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := step.cleanup(env); err != nil {
			t.Errorf("detach the floor's guests: %v", err)
		}
	})
	plan, err := netsetup.CurrentPlan(env)
	if err != nil {
		t.Fatal(err)
	}
	one, two := floorPins(env, 1).Net, floorPins(env, 2).Net
	ip2 := netip.MustParseAddr("172.18.0.2")
	addrs := []netip.Addr{ip2}
	if plan.IPv6() {
		addrs = append(addrs, plan.GuestIP6(ip2))
	}
	for _, a := range addrs {
		srv, err := probe.Serve(two, a, 7000)
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		if err := probe.TCP(one, a, 7000, 2*time.Second); err != nil {
			t.Errorf("guest 1 to guest 2 at %s through the floor's attach: %v", a, err)
		}
	}
	if err := step.prepare(env); err != nil { // detaches guest 2
		t.Fatal(err)
	}
	if err := probe.TCP(one, ip2, 7000, 300*time.Millisecond); err == nil {
		t.Errorf("guest 1 still reaches %s after the floor detached it", ip2)
	}
}
