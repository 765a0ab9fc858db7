package cni_test

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/pontoon-dev/pontoon/cni"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/probe"
	"golang.org/x/sys/unix"
)

// TestDualStackGuests attaches two containers to a dual-stack gateway: they reach each other
// over IPv6 at the addresses the result lists, and CHECK reports the IPv6 address and the
// IPv6 default route when they are removed.
func TestDualStackGuests(t *testing.T) {
	r := newRig(t)
	l := r.list(nil)
	a, b := rtConf("six-a", r.netns("a")), rtConf("six-b", r.netns("b"))
	resA, err := r.add(l, a)
	if err != nil {
		t.Fatalf("ADD a: %v", err)
	}
	resB, err := r.add(l, b)
	if err != nil {
		t.Fatalf("ADD b: %v", err)
	}
	plan := r.plan()
	six := func(name string, ips int) netip.Prefix {
		res := resA
		if name == "b" {
			res = resB
		}
		if len(res.IPs) != ips {
			t.Fatalf("result of %s lists %d addresses %v; want %d", name, len(res.IPs), res.IPs, ips)
		}
		p := netip.MustParsePrefix(res.IPs[1].Address.String())
		if !p.Addr().Is6() || !plan.GuestNet6().Contains(p.Addr()) || p.Bits() != 64 {
			t.Fatalf("IPv6 address of %s in the result: %s; want one in %s", name, p, plan.GuestNet6())
		}
		return p
	}
	a6, b6 := six("a", 2), six("b", 2)
	if err := probe.Ping(a.NetNS, b6.Addr(), 5*time.Second); err != nil {
		t.Fatalf("a cannot reach b over IPv6: %v", err)
	}
	if err := probe.Ping(b.NetNS, a6.Addr(), 5*time.Second); err != nil {
		t.Fatalf("b cannot reach a over IPv6: %v", err)
	}
	if err := r.check(l, a); err != nil {
		t.Fatalf("CHECK of a healthy dual-stack attachment: %v", err)
	}

	ipIn(t, a.NetNS, "-6", "route", "del", "default")
	if err := r.check(l, a); err == nil || !strings.Contains(err.Error(), "default route via "+plan.BridgeAddr6().Addr().String()) {
		t.Fatalf("CHECK after the IPv6 default route was removed: %v; want drift naming it", err)
	}
	ipIn(t, b.NetNS, "addr", "del", b6.String(), "dev", "eth0")
	err = r.check(l, b)
	if err == nil || !strings.Contains(err.Error(), "lacks its address "+b6.String()) {
		t.Fatalf("CHECK after the IPv6 address was removed: %v; want drift naming it", err)
	}
	if strings.Contains(err.Error(), resB.IPs[0].Address.String()) {
		t.Fatalf("CHECK names the IPv4 address, which is intact: %v", err)
	}
	if err := r.del(l, a); err != nil {
		t.Fatalf("DEL a: %v", err)
	}
	if err := r.del(l, b); err != nil {
		t.Fatalf("DEL b: %v", err)
	}
}

// TestIPv4OnlyGateway keeps the result and CHECK to IPv4 when the gateway gives no IPv6.
func TestIPv4OnlyGateway(t *testing.T) {
	r := newRig(t)
	if _, err := netsetup.GatewayUp(r.sb.Env, netsetup.GatewayOptions{IPv4Only: true}); err != nil {
		t.Fatal(err)
	}
	l := r.list(nil)
	a := rtConf("four-a", r.netns("a"))
	res, err := r.add(l, a)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	if len(res.IPs) != 1 || res.IPs[0].Address.String() != "172.18.0.1/24" || len(res.Routes) != 1 || res.Routes[0].Dst.String() != "0.0.0.0/0" {
		t.Fatalf("result of an IPv4-only gateway: ips %v routes %v; want 172.18.0.1/24 and the IPv4 default route only", res.IPs, res.Routes)
	}
	if err := r.check(l, a); err != nil {
		t.Fatalf("CHECK on an IPv4-only gateway: %v", err)
	}
	if err := r.del(l, a); err != nil {
		t.Fatalf("DEL: %v", err)
	}
}

// TestStaticIPv6 asks for IPv6 addresses through the ips capability and CNI_ARGS: one of the
// guest /64 of the guest's own choosing, a derived one alone (which brings its IPv4 twin),
// and ones that are taken, outside the plan or on an IPv4-only gateway, which are refused by
// name before anything is created.
func TestStaticIPv6(t *testing.T) {
	r := newRig(t)
	l := r.list(map[string]any{"capabilities": map[string]bool{"ips": true}})
	plan := netsetup.DefaultPlan() // the gateway the first ADD brings up
	plan.Subnet6 = netsetup.DefaultPlan6()
	b16 := plan.GuestNet6().Addr().As16()
	b16[13], b16[15] = 1, 3
	own := netip.AddrFrom16(b16) // P::1:3, no guest's derived address
	a := rtConf("static6-a", r.netns("a"))
	a.CapabilityArgs = map[string]any{"ips": []string{"172.18.0.9/24", netip.PrefixFrom(own, 64).String()}}
	res, err := r.add(l, a)
	if err != nil || len(res.IPs) != 2 || res.IPs[0].Address.String() != "172.18.0.9/24" || res.IPs[1].Address.IP.String() != own.String() {
		t.Fatalf("ADD with a static pair: %v %v; want 172.18.0.9/24 and %s/64", res, err, own)
	}
	derived := plan.GuestIP6(netip.MustParseAddr("172.18.0.12"))
	b := rtConf("static6-b", r.netns("b"))
	b.Args = [][2]string{{"IgnoreUnknown", "1"}, {"IP", derived.String()}}
	if res, err = r.add(l, b); err != nil || len(res.IPs) != 2 || res.IPs[0].Address.String() != "172.18.0.12/24" || res.IPs[1].Address.IP.String() != derived.String() {
		t.Fatalf("ADD with CNI_ARGS IP=%s alone: %v %v; want 172.18.0.12/24 and %s", derived, res, err, derived)
	}
	if err := probe.Ping(b.NetNS, own, 5*time.Second); err != nil {
		t.Fatalf("b cannot reach a at its own IPv6 address: %v", err)
	}
	if err := r.check(l, a); err != nil {
		t.Fatalf("CHECK of a static IPv6 attachment: %v", err)
	}

	c := rtConf("static6-c", r.netns("c"))
	for _, tc := range []struct{ ip, field, msg string }{
		{netip.PrefixFrom(own, 64).String(), `config field "runtimeConfig.ips"`, "static6-a"}, // taken: named where asked for
		{"fd00:18::9/64", `config field "runtimeConfig.ips"`, "outside the guest network"},
		{netip.PrefixFrom(own, 48).String(), `config field "runtimeConfig.ips"`, "/64"},
		{plan.BridgeAddr6().String(), `config field "runtimeConfig.ips"`, "reserved"},
	} {
		c.CapabilityArgs = map[string]any{"ips": []string{tc.ip}}
		_, err := r.add(l, c)
		if err == nil || !strings.Contains(err.Error(), tc.field) || !strings.Contains(err.Error(), tc.msg) || strings.Contains(err.Error(), "\n") {
			t.Errorf("ADD with ips %s: %v; want one line naming %s and %q", tc.ip, err, tc.field, tc.msg)
		}
		if got := links(t, c.NetNS); len(got) != 1 {
			t.Fatalf("a refused ADD changed the namespace: %v", got)
		}
	}
	if _, ok := r.guests("pods")[cni.Key("pontoon-test", "static6-c", "eth0")]; ok {
		t.Fatal("a refused ADD left a guest")
	}
}

// TestStaticIPv6OnIPv4OnlyGateway: an IPv6 address asked for on an IPv4-only gateway is
// refused by name, and nothing is created.
func TestStaticIPv6OnIPv4OnlyGateway(t *testing.T) {
	r := newRig(t)
	if _, err := netsetup.GatewayUp(r.sb.Env, netsetup.GatewayOptions{IPv4Only: true}); err != nil {
		t.Fatal(err)
	}
	l := r.list(map[string]any{"capabilities": map[string]bool{"ips": true}})
	a := rtConf("static6", r.netns("a"))
	a.CapabilityArgs = map[string]any{"ips": []string{"172.18.0.9/24", "fd70:6f6e::9/64"}}
	_, err := r.add(l, a)
	if err == nil || !strings.Contains(err.Error(), `config field "runtimeConfig.ips"`) || !strings.Contains(err.Error(), "IPv4 only") {
		t.Fatalf("ADD with an IPv6 entry on an IPv4-only gateway: %v; want an error naming runtimeConfig.ips", err)
	}
	if got := links(t, a.NetNS); len(got) != 1 {
		t.Fatalf("a refused ADD changed the namespace: %v", got)
	}
}

// TestStatusReportsFullBridge fills the bridge's 253 guest addresses: STATUS then says the
// plugin is not available, and says so no more once an address is free again.
func TestStatusReportsFullBridge(t *testing.T) {
	r := newRig(t)
	l := r.podsBridge()
	first, last, _, err := netsetup.GuestRange(netsetup.DefaultPlan().GuestNet())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for ip := first; ip != last; ip = ip.Next() {
		if _, err := netsetup.AddGuest(r.sb.Env, "pods", fmt.Sprintf("fill%d", n), netsetup.GuestOptions{IP: ip.String()}); err != nil {
			t.Fatalf("attach guest %d: %v", n, err)
		}
		n++
	}
	if err := r.status(l); err != nil {
		t.Fatalf("STATUS with %d of 253 addresses in use: %v", n, err)
	}
	if _, err := netsetup.AddGuest(r.sb.Env, "pods", "last", netsetup.GuestOptions{IP: last.String()}); err != nil {
		t.Fatal(err)
	}
	err = r.status(l)
	var te *types.Error
	if !asTypesError(err, &te) || te.Code != types.ErrPluginNotAvailable || !strings.Contains(te.Msg, "no free address") {
		t.Fatalf("STATUS on a full bridge: %v; want code %d saying no address is free", err, types.ErrPluginNotAvailable)
	}
	if _, err := r.add(l, rtConf("one-too-many", r.netns("x"))); err == nil || !strings.Contains(err.Error(), "no free address") {
		t.Fatalf("ADD on a full bridge: %v; want it refused for want of an address", err)
	}
	if err := netsetup.DelGuest(r.sb.Env, "pods", "fill7"); err != nil {
		t.Fatal(err)
	}
	if err := r.status(l); err != nil {
		t.Fatalf("STATUS once an address is free again: %v", err)
	}
}

// podsBridge brings an IPv4-only gateway up and makes bridge pods, and returns a network list
// that attaches to it without creating anything.
func (r *rig) podsBridge() *libcni.NetworkConfigList {
	r.t.Helper()
	if _, err := netsetup.GatewayUp(r.sb.Env, netsetup.GatewayOptions{IPv4Only: true}); err != nil {
		r.t.Fatal(err)
	}
	if _, err := netsetup.CreateBridge(r.sb.Env, "pods", netsetup.BridgeOptions{}); err != nil {
		r.t.Fatal(err)
	}
	return r.list(map[string]any{"createBridge": false})
}

// plan is the plan of the sandbox's gateway, IPv6 prefix included.
func (r *rig) plan() netsetup.Plan {
	r.t.Helper()
	p, err := netsetup.CurrentPlan(r.sb.Env)
	if err != nil {
		r.t.Fatal(err)
	}
	return p
}

// TestStatusReportsBrokenGateway removes the gateway's namespace behind pontoon's back:
// STATUS then says the plugin is not available and why, and ADD is refused, where both
// succeeded and the new pod's default route led nowhere.
func TestStatusReportsBrokenGateway(t *testing.T) {
	r := newRig(t)
	l := r.podsBridge()
	if err := r.status(l); err != nil {
		t.Fatalf("STATUS with the gateway up: %v", err)
	}
	gw := r.sb.Env.GatewayNetns()
	if err := unix.Unmount(gw, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(gw); err != nil {
		t.Fatal(err)
	}
	err := r.status(l)
	var te *types.Error
	if !asTypesError(err, &te) || te.Code != types.ErrPluginNotAvailable || !strings.Contains(te.Msg, "gateway is broken") || !strings.Contains(te.Details, "is gone") {
		t.Fatalf("STATUS with the gateway's namespace gone: %v; want code %d saying the gateway is broken", err, types.ErrPluginNotAvailable)
	}
	a := r.netns("a")
	if _, err := r.add(l, rtConf("behind-broken", a)); err == nil || !strings.Contains(err.Error(), "the gateway is broken") {
		t.Fatalf("ADD behind a broken gateway: %v; want it refused", err)
	}
	if got := links(t, a); len(got) != 1 {
		t.Fatalf("a refused ADD changed the namespace: %v", got)
	}
}
