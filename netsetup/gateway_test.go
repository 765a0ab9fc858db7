package netsetup_test

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestGatewayUpTwice(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	if already, err := netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{}); err != nil || already {
		t.Fatalf("first up: already=%v, %v", already, err)
	}
	before := snapshot(t, s)
	if already, err := netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{Plan: netsetup.DefaultPlan()}); err != nil || !already {
		t.Fatalf("second up, same plan: already=%v, %v; want already=true", already, err)
	}
	moved, _ := netsetup.ParsePlan("10.77.0.0/16")
	_, err := netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{Plan: moved})
	wantErr(t, "up with another plan", withAdvice(err), "172.18.0.0/16", "10.77.0.0/16", "gateway down")
	unchanged(t, s, before, "repeated up", "chain")
	st, err := netsetup.Status(s.Env)
	if err != nil || !st.Up || st.Gateway.Plan.String() != "172.18.0.0/16" || len(st.Bridges) != 0 {
		t.Errorf("Status = %+v, %v", st, err)
	}
}

// A plan that collides with a route or address of the host, IPv4 or IPv6, is refused before
// anything is created, naming the culprit and the --subnet or --subnet6 fix, and the fix works.
// TestGatewayCollisionPolicyRoute: a route into the plan in a table of its own, which a
// policy rule sends traffic through (VPNs and Docker's swarm do so), is a collision too.
func TestGatewayCollisionPolicyRoute(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	h := handleAt(t, s.Host)
	d := &netlink.Bridge{LinkAttrs: netlink.NewLinkAttrs()}
	d.Name = "vpn0"
	if err := h.LinkAdd(d); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(d); err != nil {
		t.Fatal(err)
	}
	dst := netip.MustParsePrefix("172.18.1.0/24")
	r := &netlink.Route{LinkIndex: d.Attrs().Index, Dst: &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(24, 32)}, Table: 100}
	if err := h.RouteAdd(r); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, s)
	_, err := netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{})
	wantErr(t, "up beside a policy table's route", err, "route 172.18.1.0/24 dev vpn0 table 100", "the plan uses 172.18.1.0/24", "--subnet")
	unchanged(t, s, before, "refused up", "host")
}

func TestGatewayCollision(t *testing.T) {
	t.Parallel()
	moved, _ := netsetup.ParsePlan("10.77.0.0/16")
	moved6 := netsetup.DefaultPlan()
	moved6.Subnet6 = netip.MustParsePrefix("fd70:6f6f::/48")
	for _, c := range []struct {
		name   string
		addr   string // on a Linux bridge, as Docker's user-defined networks or a VPN hold them
		linkUp bool
		want   []string
		fix    netsetup.Plan
		guest  string
	}{
		// An address on an up link brings its route: the route is reported.
		{"route", "172.18.0.1/16", true, []string{"172.18.0.0/16", "route 172.18.0.0/16 dev dock0", "--subnet 10.77.0.0/16"}, moved, "10.77.0.1"},
		// On a down link there is no route, only the address.
		{"address", "172.18.0.1/16", false, []string{"address 172.18.0.1/16 on dock0", "--subnet 10.77.0.0/16"}, moved, "10.77.0.1"},
		{"route6", "fd70:6f6e::1/64", true, []string{"subnet6 fd70:6f6e::/48", "route fd70:6f6e::/64 dev dock0", "--subnet6 fd70:6f6f::/48"}, moved6, "172.18.0.1"},
		{"address6", "fd70:6f6e::1/64", false, []string{"address fd70:6f6e::1/64 on dock0", "--subnet6 fd70:6f6f::/48"}, moved6, "172.18.0.1"},
		// The service and client-alias ranges are the plan's too (172.18.1.0/24, 172.18.2.0/24).
		{"service range", "172.18.1.7/24", true, []string{"route 172.18.1.0/24 dev dock0", "the plan uses 172.18.1.0/24", "--subnet 10.77.0.0/16"}, moved, "10.77.0.1"},
		{"client range", "172.18.2.2/24", true, []string{"route 172.18.2.0/24 dev dock0", "the plan uses 172.18.2.0/24", "--subnet 10.77.0.0/16"}, moved, "10.77.0.1"},
		{"client range6", "fd70:6f6e:0:2::1/64", true, []string{"route fd70:6f6e:0:2::/64 dev dock0", "the plan uses fd70:6f6e:0:2::/64", "--subnet6 fd70:6f6f::/48"}, moved6, "172.18.0.1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t)
			h := handleAt(t, s.Host)
			d := &netlink.Bridge{LinkAttrs: netlink.NewLinkAttrs()}
			d.Name = "dock0"
			if err := h.LinkAdd(d); err != nil {
				t.Fatal(err)
			}
			ipnet, err := netlink.ParseIPNet(c.addr)
			if err != nil {
				t.Fatal(err)
			}
			if err := h.AddrAdd(d, &netlink.Addr{IPNet: ipnet, Flags: unix.IFA_F_NODAD}); err != nil {
				t.Fatal(err)
			}
			if c.linkUp {
				if err := h.LinkSetUp(d); err != nil {
					t.Fatal(err)
				}
			}
			before := snapshot(t, s)
			_, err = netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{})
			wantErr(t, "colliding up", err, c.want...)
			if !errors.Is(err, netsetup.ErrInvalid) {
				t.Errorf("colliding up: %v is no refused value (ErrInvalid: the command line's exit status 2)", err)
			}
			unchanged(t, s, before, "refused up", "host")
			if _, err := netsetup.CurrentPlan(s.Env); !errors.Is(err, netsetup.ErrNoGateway) {
				t.Errorf("CurrentPlan after refusal: %v, want ErrNoGateway", err)
			}
			if ipnet.IP.To4() == nil {
				// IPv4 alone does not collide.
				if _, err := netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{IPv4Only: true}); err != nil {
					t.Fatalf("up with --ipv4-only: %v", err)
				}
				if err := netsetup.GatewayDown(s.Env, false); err != nil {
					t.Fatal(err)
				}
			}
			// The suggested fix works.
			if _, err := netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{Plan: c.fix}); err != nil {
				t.Fatalf("up with the suggested plan: %v", err)
			}
			mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{})
			g := mustGuest(t, s.Env, "b1", "g", c.guest)
			if c.fix.IPv6() && !c.fix.GuestNet6().Contains(g.IP6) {
				t.Errorf("guest IPv6 address %s; want one in %s", g.IP6, c.fix.GuestNet6())
			}
			serveWhoAmI(t, s, 7000)
			mustAnswer(t, g.Netns, sandbox.UpstreamAddr.Addr(), 7000, wanAddr)
		})
	}
}

// An invalid plan built by hand (not through ParsePlan) is refused like a bad --subnet.
func TestGatewayBadPlan(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	before := snapshot(t, s)
	for _, p := range []string{"10.77.0.0/24", "10.77.1.0/16", "127.0.0.0/16"} {
		_, err := netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{Plan: netsetup.Plan{Subnet: netip.MustParsePrefix(p)}})
		wantErr(t, "up with "+p, err, p)
	}
	unchanged(t, s, before, "refused up", "host")
}

// --dry-run prints every change as an ip/nft/sysctl command and makes none.
func TestDryRun(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	var out bytes.Buffer
	dry := s.Env
	dry.DryRun = &out
	before := snapshot(t, s)
	if _, err := netsetup.GatewayUp(dry, netsetup.GatewayOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		"ip netns add pontoon-gw\n",
		"ip link add pontoon0 type veth peer name uplink netns pontoon-gw\n",
		"ip addr add 172.18.255.1/30 dev pontoon0",
		"ip -n pontoon-gw route add default via 172.18.255.1\n",
		"ip netns exec pontoon-gw sysctl -w net.ipv4.ip_forward=1\n",
		"\nsysctl -w net.ipv4.ip_forward=1\n",
		"ip netns exec pontoon-gw nft -f - <<'EOF'\n",
		"\nnft -f - <<'EOF'\n",
		"masquerade",
	} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("dry-run gateway up does not print %q:\n%s", w, out.String())
		}
	}
	unchanged(t, s, before, "dry-run gateway up", "host")
	if _, err := netsetup.CreateBridge(dry, "b1", netsetup.BridgeOptions{}); !errors.Is(err, netsetup.ErrNoGateway) {
		t.Errorf("dry-run bridge create without a gateway: %v, want ErrNoGateway", err)
	}

	// With a real gateway and bridge, dry runs of bridge create and gateway down.
	if _, err := netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{}); err != nil {
		t.Fatal(err)
	}
	mustBridge(t, s.Env, "real", netsetup.BridgeOptions{})
	g := mustGuest(t, s.Env, "real", "g", "172.18.0.1")
	before = snapshot(t, s)
	out.Reset()
	if _, err := netsetup.CreateBridge(dry, "b1", netsetup.BridgeOptions{Ports: mustPorts(t, "8080:web:80")}); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		"ip netns add pontoon-br-b1\n",
		"ip -n pontoon-gw link add s1 type veth peer name uplink netns pontoon-br-b1\n",
		"ip -n pontoon-gw addr add 172.18.192.5/30 dev s1",
		"ip -n pontoon-br-b1 addr add 172.18.192.6/30 dev uplink",
		"ip -n pontoon-br-b1 link add br0 type bridge",
		"ip netns exec pontoon-br-b1 sysctl -w net.ipv4.ip_forward=1",
		"ip netns exec pontoon-br-b1 nft -f - <<'EOF'\n",
		// The forward, in the gateway's table, and the host's forward chains.
		"ip netns exec pontoon-gw nft -f - <<'EOF'\ntable ip pontoon\n",
		`ip daddr 172.18.255.2 tcp dport 8080 dnat to 172.18.192.6:8080;`,
		"# for every forward chain with policy drop",
	} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("dry-run bridge create does not print %q:\n%s", w, out.String())
		}
	}
	out.Reset()
	if err := netsetup.GatewayDown(dry, true); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"ip netns del pontoon-g-g@real\n", "ip -n pontoon-gw link del s0\n", "ip netns del pontoon-br-real\n", "ip link del pontoon0\n", "ip netns del pontoon-gw\n"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("dry-run gateway down does not print %q:\n%s", w, out.String())
		}
	}
	unchanged(t, s, before, "dry runs", "chain")
	serve(t, s.Upstream, sandbox.UpstreamAddr.Addr())
	mustReach(t, g.Netns, sandbox.UpstreamAddr.Addr())
}

// gateway down refuses while bridges exist unless forced, and then removes everything,
// restoring the host's forwarding setting.
func TestGatewayDown(t *testing.T) {
	t.Parallel()
	for _, fwd := range []string{"0", "1"} {
		t.Run("ip_forward="+fwd, func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t)
			inNetns(t, s.Host, "sysctl", "-qw", "net.ipv4.ip_forward="+fwd)
			pristine := snapshot(t, s)
			up(t, s)
			if got := ipForward(t, s.Host); got != "1" {
				t.Errorf("host ip_forward after up = %s, want 1", got)
			}
			mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{Ports: mustPorts(t, "8080:g:80")})
			mustBridge(t, s.Env, "b2", netsetup.BridgeOptions{})
			g := mustGuest(t, s.Env, "b1", "g", "172.18.0.1")
			before := snapshot(t, s)
			err := netsetup.GatewayDown(s.Env, false)
			wantErr(t, "down with bridges", withAdvice(err), "b1", "b2", "--force")
			unchanged(t, s, before, "refused down", "chain")
			serve(t, s.Upstream, sandbox.UpstreamAddr.Addr())
			mustReach(t, g.Netns, sandbox.UpstreamAddr.Addr())

			if err := netsetup.GatewayDown(s.Env, true); err != nil {
				t.Fatal(err)
			}
			if after := snapshot(t, s); after != pristine {
				t.Errorf("down did not restore the host:\nbefore up\n%s\nafter down\n%s", pristine, after)
			}
			if left := files(t, s.Env.NetnsDir); len(left) > 0 {
				t.Errorf("pinned namespaces left: %v", left)
			}
			if _, err := os.Stat(g.Netns); err == nil {
				t.Errorf("guest namespace %s left", g.Netns)
			}
			// Nor its empty skeleton of state: a host compared before and after finds nothing.
			if _, err := os.Stat(s.Env.StateDir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("state directory left after down (%v): %v", err, files(t, s.Env.StateDir))
			}
			// Down again: nothing there, still success, and still no trace.
			if err := netsetup.GatewayDown(s.Env, false); err != nil {
				t.Errorf("second down: %v", err)
			}
			if _, err := os.Stat(s.Env.StateDir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("state directory left after a second down (%v)", err)
			}
			// Anything else in it keeps it, and the next up works in it.
			foreign := filepath.Join(s.Env.StateDir, "notes.txt")
			up(t, s)
			if err := os.WriteFile(foreign, []byte("mine"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := netsetup.GatewayDown(s.Env, false); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(foreign); err != nil {
				t.Errorf("a file of someone else's in the state directory: %v", err)
			}
		})
	}
}
