package netsetup_test

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/pontoon-dev/pontoon/netsetup"
)

// TestGatewayUpUnaskedKeepsPlan: a part of the plan that `gateway up` is not asked for
// (--subnet, --subnet6, --ipv4-only not given) is the running gateway's, whatever it is:
// up again without them is "already up" and changes nothing. Only a part asked for that
// differs is refused, with the message and advice of old.
func TestGatewayUpUnaskedKeepsPlan(t *testing.T) {
	t.Parallel()
	moved, _ := netsetup.ParsePlan("10.77.0.0/16")
	moved6 := netip.MustParsePrefix("fd00:77::/48")
	for _, c := range []struct {
		name               string
		first, same, other netsetup.GatewayOptions
		want               []string
	}{
		{"subnet", netsetup.GatewayOptions{Plan: moved}, netsetup.GatewayOptions{Plan: moved},
			netsetup.GatewayOptions{Plan: netsetup.DefaultPlan()}, []string{"it has 10.77.0.0/16, not 172.18.0.0/16", "leave out --subnet, --subnet6 and --ipv4-only"}},
		{"subnet6", netsetup.GatewayOptions{Plan: netsetup.Plan{Subnet6: moved6}}, netsetup.GatewayOptions{Plan: netsetup.Plan{Subnet: netsetup.DefaultPlan().Subnet, Subnet6: moved6}},
			netsetup.GatewayOptions{Plan: netsetup.Plan{Subnet6: netsetup.DefaultPlan6()}}, []string{"it has IPv6 fd00:77::/48, not fd70:6f6e::/48"}},
		{"ipv4-only", netsetup.GatewayOptions{IPv4Only: true}, netsetup.GatewayOptions{IPv4Only: true},
			netsetup.GatewayOptions{Plan: netsetup.Plan{Subnet6: netsetup.DefaultPlan6()}}, []string{"it has IPv6 none (IPv4 only), not fd70:6f6e::/48"}},
		{"dual-stack", netsetup.GatewayOptions{}, netsetup.GatewayOptions{Plan: netsetup.Plan{Subnet6: netsetup.DefaultPlan6()}},
			netsetup.GatewayOptions{IPv4Only: true}, []string{"it has IPv6 fd70:6f6e::/48, not none (IPv4 only)"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t)
			if already, err := netsetup.GatewayUp(s.Env, c.first); err != nil || already {
				t.Fatalf("first up: already %v, %v", already, err)
			}
			plan, err := netsetup.CurrentPlan(s.Env)
			if err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, s)
			for _, opt := range []netsetup.GatewayOptions{{}, {NoFirewall: true}, c.same} {
				if already, err := netsetup.GatewayUp(s.Env, opt); err != nil || !already {
					t.Errorf("up again with %+v: already %v, %v; want already up", opt, already, err)
				}
			}
			_, err = netsetup.GatewayUp(s.Env, c.other)
			if !errors.Is(err, netsetup.ErrGatewayPlan) || !errors.Is(err, netsetup.ErrInvalid) {
				t.Errorf("up asking for another plan (%+v): %v; want ErrGatewayPlan, refused input (ErrInvalid)", c.other, err)
			}
			wantErr(t, "up asking for another plan", withAdvice(err), c.want...)
			unchanged(t, s, before, "up again", "chain")
			if got, err := netsetup.CurrentPlan(s.Env); err != nil || got != plan {
				t.Errorf("plan after up again: %+v, %v; want %+v", got, err, plan)
			}
		})
	}
}
