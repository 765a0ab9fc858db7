package cni_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/pontoon-dev/pontoon/cni"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"github.com/pontoon-dev/pontoon/netsetup/probe"
)

// TestAddCheckDelGC drives every command through libcni as a runtime would: ADD's result,
// CHECK on a healthy and on a tampered attachment, DEL twice and after the namespace is
// gone, GC with a valid list, STATUS and VERSION.
func TestAddCheckDelGC(t *testing.T) {
	r := newRig(t)
	l := r.list(nil)
	a, b := rtConf("aaaa1111bbbb2222cccc", r.netns("a")), rtConf("dddd3333eeee4444ffff", r.netns("b"))
	if err := r.status(l); err != nil {
		t.Fatalf("STATUS before the gateway exists, with createBridge: %v", err)
	}
	resA, err := r.add(l, a)
	if err != nil {
		t.Fatalf("ADD a: %v", err)
	}
	resB, err := r.add(l, b)
	if err != nil {
		t.Fatalf("ADD b: %v", err)
	}
	plan := r.plan()
	gw := plan.BridgeAddr().Addr().String()
	gw6 := plan.BridgeAddr6().Addr().String()
	for _, c := range []struct {
		rt   *libcni.RuntimeConf
		res  *current.Result
		want string
	}{{a, resA, "172.18.0.1/24"}, {b, resB, "172.18.0.2/24"}} {
		r, res := c.res, c
		if len(r.Interfaces) != 2 || r.Interfaces[0].Name != "eth0" || r.Interfaces[0].Sandbox != res.rt.NetNS {
			t.Fatalf("result interfaces %+v: want eth0 in %s first, then the port", r.Interfaces, res.rt.NetNS)
		}
		ip := netip.MustParsePrefix(res.want).Addr()
		if r.Interfaces[0].Mac != netsetup.GuestMAC(ip).String() {
			t.Errorf("eth0 MAC %s, want %s", r.Interfaces[0].Mac, netsetup.GuestMAC(ip))
		}
		if r.Interfaces[1].Name != fmt.Sprintf("g%d", ip.As4()[3]) || r.Interfaces[1].Mac == "" {
			t.Errorf("port interface %+v", r.Interfaces[1])
		}
		want6 := netip.PrefixFrom(plan.GuestIP6(ip), 64).String()
		if len(r.IPs) != 2 || r.IPs[0].Address.String() != res.want || r.IPs[0].Gateway.String() != gw || *r.IPs[0].Interface != 0 ||
			r.IPs[1].Address.String() != want6 || r.IPs[1].Gateway.String() != gw6 || *r.IPs[1].Interface != 0 {
			t.Errorf("result IPs %v: want %s via %s and %s via %s, both on interface 0", r.IPs, res.want, gw, want6, gw6)
		}
		if len(r.Routes) != 2 || r.Routes[0].Dst.String() != "0.0.0.0/0" || r.Routes[0].GW.String() != gw ||
			r.Routes[1].Dst.String() != "::/0" || r.Routes[1].GW.String() != gw6 {
			t.Errorf("result routes %v: want default via %s and ::/0 via %s", r.Routes, gw, gw6)
		}
		// The bridge the ADD created has its name server, on the guests' gateway.
		if !slices.Equal(r.DNS.Nameservers, []string{gw}) {
			t.Errorf("result DNS %+v: want the bridge's name server %s", r.DNS, gw)
		}
	}
	gs := r.guests("pods")
	ga := gs[cni.Key("pontoon-test", a.ContainerID, "eth0")]
	if ga.Name != "aaaa1111bbbb-eth0" || ga.Phase != netsetup.PhaseReady {
		t.Fatalf("guest of a: %+v; want aaaa1111bbbb-eth0, ready", ga)
	}
	if err := probe.Ping(a.NetNS, netip.MustParseAddr("172.18.0.2"), 5*time.Second); err != nil {
		t.Fatalf("a cannot reach b: %v", err)
	}
	if err := r.check(l, a); err != nil {
		t.Fatalf("CHECK of a healthy attachment: %v", err)
	}

	// Drift: the address removed by hand.
	if out, err := exec.Command("nsenter", "--net="+a.NetNS, "ip", "addr", "del", "172.18.0.1/24", "dev", "eth0").CombinedOutput(); err != nil {
		t.Fatalf("ip addr del: %v %s", err, out)
	}
	if err := r.check(l, a); err == nil || !strings.Contains(err.Error(), "lacks its address 172.18.0.1/24") {
		t.Fatalf("CHECK after the address was removed: %v; want a drift report naming it", err)
	}

	if err := r.del(l, a); err != nil {
		t.Fatalf("DEL a: %v", err)
	}
	if _, ok := r.guests("pods")[cni.Key("pontoon-test", a.ContainerID, "eth0")]; ok {
		t.Fatal("a is still a guest after DEL")
	}
	if got := links(t, a.NetNS); slices.Contains(got, "eth0") {
		t.Fatalf("a's namespace still has eth0 after DEL: %v", got)
	}
	if got := links(t, r.sb.Env.BridgeNetns("pods")); slices.Contains(got, "g1") {
		t.Fatalf("a's port is still on the bridge: %v", got)
	}
	if err := r.del(l, a); err != nil {
		t.Fatalf("second DEL a: %v", err)
	}
	var te *types.Error
	if err := r.check(l, a); !asTypesError(err, &te) || te.Code != types.ErrUnknownContainer {
		t.Fatalf("CHECK of a detached container: %v; want code %d", err, types.ErrUnknownContainer)
	}

	// Drift on the bridge's side: b's port set down.
	portB := resB.Interfaces[1].Name
	if out, err := exec.Command("nsenter", "--net="+r.sb.Env.BridgeNetns("pods"), "ip", "link", "set", portB, "down").CombinedOutput(); err != nil {
		t.Fatalf("ip link set down: %v %s", err, out)
	}
	if err := r.check(l, b); err == nil || !strings.Contains(err.Error(), "port "+portB+" is down") {
		t.Fatalf("CHECK after b's port went down: %v; want a drift report naming it", err)
	}
	if out, err := exec.Command("nsenter", "--net="+r.sb.Env.BridgeNetns("pods"), "ip", "link", "set", portB, "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set up: %v %s", err, out)
	}

	// GC: c is attached behind libcni's back (its own cache), so only the plugin's GC knows
	// to remove it; b is valid and stays.
	other := libcni.NewCNIConfigWithCacheDir([]string{r.bin}, filepath.Join(r.sb.Dir, "other-cache"), nil)
	c := rtConf("cccc5555", r.netns("c"))
	if err := r.inHost(func() error { _, err := other.AddNetworkList(context.Background(), l, c); return err }); err != nil {
		t.Fatalf("ADD c: %v", err)
	}
	if err := r.gc(l, b); err != nil {
		t.Fatalf("GC: %v", err)
	}
	gs = r.guests("pods")
	if _, ok := gs[cni.Key("pontoon-test", c.ContainerID, "eth0")]; ok {
		t.Fatal("GC left c, which is not in the valid list")
	}
	if _, ok := gs[cni.Key("pontoon-test", b.ContainerID, "eth0")]; !ok {
		t.Fatal("GC removed b, which is in the valid list")
	}

	// The runtime removes b's namespace without a DEL: once the namespace has ended (its
	// port with it), the next ADD frees b's address.
	bPort := r.guests("pods")[cni.Key("pontoon-test", b.ContainerID, "eth0")].PortName()
	if err := ns.Remove(b.NetNS); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); slices.Contains(links(t, r.sb.Env.BridgeNetns("pods")), bPort); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("10s after b's namespace was removed its port %s is still on the bridge", bPort)
		}
	}
	d := rtConf("dddd7777", r.netns("d"))
	if _, err := r.add(l, d); err != nil {
		t.Fatalf("ADD d: %v", err)
	}
	if _, ok := r.guests("pods")[cni.Key("pontoon-test", b.ContainerID, "eth0")]; ok {
		t.Fatal("b, whose namespace is gone, is still attached after the next ADD")
	}
	// A pod whose pin is removed while its pause process still holds the namespace lives
	// on: the next ADD leaves it attached.
	e := rtConf("eeee8888", r.netns("e"))
	if _, err := r.add(l, e); err != nil {
		t.Fatalf("ADD e: %v", err)
	}
	holder := exec.Command("nsenter", "--net="+e.NetNS, "sleep", "60")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	id, _ := ns.ID(e.NetNS)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", holder.Process.Pid)); l == fmt.Sprintf("net:[%d]", id) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the holder did not enter e's namespace within 10s")
		}
	}
	if err := ns.Remove(e.NetNS); err != nil {
		t.Fatal(err)
	}
	f := rtConf("ffff9999", r.netns("f"))
	if _, err := r.add(l, f); err != nil {
		t.Fatalf("ADD f: %v", err)
	}
	if _, ok := r.guests("pods")[cni.Key("pontoon-test", e.ContainerID, "eth0")]; !ok {
		t.Fatal("e, whose namespace a process still holds, was detached by the next ADD")
	}
	holder.Process.Kill()
	holder.Wait()
	for _, rt := range []*libcni.RuntimeConf{e, f} {
		if err := r.del(l, rt); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.del(l, d); err != nil {
		t.Fatal(err)
	}
	// DEL after the runtime removed the namespace.
	if err := r.del(l, b); err != nil {
		t.Fatalf("DEL after the namespace is gone: %v", err)
	}
	if len(r.guests("pods")) != 0 {
		t.Fatalf("guests left: %v", r.guests("pods"))
	}
	r.destroyBridge("pods")
	if err := r.del(l, b); err != nil {
		t.Fatalf("DEL after the bridge is gone: %v", err)
	}

	info, err := r.cni.GetVersionInfo(context.Background(), "pontoon-cni")
	if err != nil || !slices.Contains(info.SupportedVersions(), "1.1.0") {
		t.Fatalf("VERSION: %v %v; want 1.1.0 among them", info, err)
	}
}

// TestStatusReportsMissingNetwork checks STATUS without createBridge: unavailable (code 50)
// while the gateway or the bridge is missing, fine once both exist.
func TestStatusReportsMissingNetwork(t *testing.T) {
	r := newRig(t)
	l := r.list(map[string]any{"createBridge": false})
	wantCode := func(what string, code uint) {
		t.Helper()
		err := r.status(l)
		var te *types.Error
		if !asTypesError(err, &te) || te.Code != code {
			t.Fatalf("STATUS %s: %v; want code %d", what, err, code)
		}
	}
	wantCode("without a gateway", types.ErrPluginNotAvailable)
	if _, err := netsetup.GatewayUp(r.sb.Env, netsetup.GatewayOptions{}); err != nil {
		t.Fatal(err)
	}
	wantCode("without the bridge", types.ErrPluginNotAvailable)
	if _, err := r.add(l, rtConf("x1", r.netns("x"))); err == nil || !strings.Contains(err.Error(), `config field "bridge"`) {
		t.Fatalf("ADD without the bridge and without createBridge: %v; want an error naming bridge", err)
	}
	if _, err := netsetup.CreateBridge(r.sb.Env, "pods", netsetup.BridgeOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := r.status(l); err != nil {
		t.Fatalf("STATUS with gateway and bridge: %v", err)
	}
}

func asTypesError(err error, te **types.Error) bool {
	if err == nil {
		return false
	}
	e, ok := err.(*types.Error)
	if ok {
		*te = e
	}
	return ok
}

// TestStaticAddresses asks for addresses through the ips capability and CNI_ARGS, and for
// ones that are taken or outside the plan.
func TestStaticAddresses(t *testing.T) {
	r := newRig(t)
	l := r.list(map[string]any{"capabilities": map[string]bool{"ips": true}})
	early := rtConf("static-early", r.netns("early"))
	early.CapabilityArgs = map[string]any{"ips": []string{"172.18.1.5/24"}}
	if _, err := r.add(l, early); err == nil || !strings.Contains(err.Error(), `config field "runtimeConfig.ips"`) {
		t.Fatalf("ADD of an address outside the guest range: %v; want an error naming runtimeConfig.ips", err)
	}
	if _, err := os.Stat(r.sb.Env.GatewayNetns()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused ADD brought the gateway up: %v", err)
	}
	a := rtConf("static-a", r.netns("a"))
	a.CapabilityArgs = map[string]any{"ips": []string{"172.18.0.77/24"}}
	res, err := r.add(l, a)
	if err != nil || res.IPs[0].Address.String() != "172.18.0.77/24" {
		t.Fatalf("ADD with ips capability: %v %v; want 172.18.0.77/24", res, err)
	}
	b := rtConf("static-b", r.netns("b"))
	b.Args = [][2]string{{"IgnoreUnknown", "1"}, {"IP", "172.18.0.78"}}
	if res, err = r.add(l, b); err != nil || res.IPs[0].Address.String() != "172.18.0.78/24" {
		t.Fatalf("ADD with CNI_ARGS IP: %v %v; want 172.18.0.78/24", res, err)
	}
	c := rtConf("static-c", r.netns("c"))
	// A taken address is refused naming where it was asked for: a key of the configuration
	// (code 7), or CNI_ARGS (code 4, as any bad address there).
	for _, taken := range []struct {
		what   string
		l      *libcni.NetworkConfigList
		caps   map[string]any
		args   [][2]string
		code   uint
		field  string
		holder string
	}{
		{"ips capability", l, map[string]any{"ips": []string{"172.18.0.77/24"}}, nil, types.ErrInvalidNetworkConfig, `config field "runtimeConfig.ips"`, "static-a"},
		{"args.cni.ips", r.list(map[string]any{"args": map[string]any{"cni": map[string]any{"ips": []string{"172.18.0.77"}}}}), nil, nil,
			types.ErrInvalidNetworkConfig, `config field "args.cni.ips"`, "static-a"},
		{"CNI_ARGS IP", l, nil, [][2]string{{"IgnoreUnknown", "1"}, {"IP", "172.18.0.78"}}, types.ErrInvalidEnvironmentVariables, `environment variable "CNI_ARGS IP"`, "static-b"},
		{"CNI_ARGS IP of IPv6", l, nil, [][2]string{{"IP", r.plan().GuestIP6(netip.MustParseAddr("172.18.0.77")).String()}},
			types.ErrInvalidEnvironmentVariables, `environment variable "CNI_ARGS IP"`, "static-a"},
		{"ips capability and CNI_ARGS IP alike", l, map[string]any{"ips": []string{"172.18.0.78/24"}}, [][2]string{{"IP", "172.18.0.78"}},
			types.ErrInvalidNetworkConfig, `config field "runtimeConfig.ips"`, "static-b"}, // the first to ask names it
	} {
		c.CapabilityArgs, c.Args = taken.caps, taken.args
		_, err := r.add(taken.l, c)
		var te *types.Error
		if !errors.As(err, &te) || te.Code != taken.code || !strings.Contains(te.Msg, taken.field) || !strings.Contains(te.Msg, "is used by guest") || !strings.Contains(te.Msg, taken.holder) {
			t.Fatalf("ADD of an address taken by %s, asked for by %s: %v; want code %d naming %s and the holder", taken.holder, taken.what, err, taken.code, taken.field)
		}
		if _, ok := r.guests("pods")[cni.Key("pontoon-test", "static-c", "eth0")]; ok {
			t.Fatalf("the ADD refused for a taken address (%s) left a guest", taken.what)
		}
	}
	c.Args = nil
	c.CapabilityArgs = map[string]any{"ips": []string{"10.9.9.9/24"}}
	if _, err := r.add(l, c); err == nil || !strings.Contains(err.Error(), `config field "runtimeConfig.ips"`) {
		t.Fatalf("ADD of an address outside the plan: %v; want an error naming runtimeConfig.ips", err)
	}
	if _, ok := r.guests("pods")[cni.Key("pontoon-test", "static-c", "eth0")]; ok {
		t.Fatal("a refused ADD left a guest")
	}
	if got := links(t, c.NetNS); slices.Contains(got, "eth0") {
		t.Fatalf("a refused ADD left eth0: %v", got)
	}
}

// TestConcurrentAdds starts many ADDs at once on a bridge none of them finds: one creates
// it, and every container gets its own address.
func TestConcurrentAdds(t *testing.T) {
	r := newRig(t)
	l := r.list(nil)
	const n = 12
	rts := make([]*libcni.RuntimeConf, n)
	for i := range rts {
		rts[i] = rtConf(fmt.Sprintf("conc%02d", i), r.netns(fmt.Sprintf("n%d", i)))
	}
	results := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range rts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := r.add(l, rts[i])
			errs[i] = err
			if err == nil {
				results[i] = res.IPs[0].Address.String()
			}
		}()
	}
	wg.Wait()
	seen := map[string]string{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("ADD %d: %v", i, err)
		}
		if o, dup := seen[results[i]]; dup {
			t.Fatalf("%s and %s both got %s", o, rts[i].ContainerID, results[i])
		}
		seen[results[i]] = rts[i].ContainerID
	}
	gs := r.guests("pods")
	if len(gs) != n {
		t.Fatalf("bridge has %d guests, want %d", len(gs), n)
	}
	for _, rt := range rts {
		g := gs[cni.Key("pontoon-test", rt.ContainerID, "eth0")]
		if g.Phase != netsetup.PhaseReady || g.IP.String()+"/24" != results[slices.Index(rts, rt)] {
			t.Fatalf("guest of %s: %+v", rt.ContainerID, g)
		}
	}
	if err := probe.Ping(rts[0].NetNS, gs[cni.Key("pontoon-test", rts[n-1].ContainerID, "eth0")].IP, 5*time.Second); err != nil {
		t.Fatalf("first cannot reach last: %v", err)
	}
}

// TestOlderCNIVersions attaches with configurations of older CNI versions, as runtimes that
// speak only those send them: the result comes back in that version's shape.
func TestOlderCNIVersions(t *testing.T) {
	r := newRig(t)
	for i, v := range []string{"0.3.1", "0.4.0", "1.0.0"} {
		l := r.listV(v, nil)
		rt := rtConf(fmt.Sprintf("old%d", i), r.netns(fmt.Sprintf("old%d", i)))
		res, err := r.add(l, rt)
		if err != nil {
			t.Fatalf("ADD with cniVersion %s: %v", v, err)
		}
		if len(res.IPs) != 2 || !strings.HasPrefix(res.IPs[0].Address.String(), "172.18.0.") || res.IPs[1].Address.IP.To4() != nil {
			t.Fatalf("cniVersion %s: result %v", v, res)
		}
		if err := r.del(l, rt); err != nil {
			t.Fatalf("DEL with cniVersion %s: %v", v, err)
		}
	}
}
