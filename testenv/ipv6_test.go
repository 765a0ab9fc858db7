package testenv_test

import (
	"testing"

	"github.com/pontoon-dev/pontoon/testenv"
)

// TestIPv6ProbesAndPartitions: guests have IPv6 addresses, probes and deliveries take them,
// and a partition holds on both families (MustMatch checks each guest's two addresses).
// WithIPv4Only gives guests none.
func TestIPv6ProbesAndPartitions(t *testing.T) {
	t.Parallel()
	env := three(t)
	n1, n2 := env.Lookup("n1"), env.Lookup("n2")
	if !n2.IP6().IsValid() || env.Lookup(n2.IP6().String()) != n2 {
		t.Fatalf("guest n2 has IPv6 address %v, not found by it", n2.IP6())
	}
	env.MustReach("n1", n2.IP6().String())
	if err := env.Delivers("n3", n1.IP6().String()); err != nil {
		t.Error(err)
	}
	p := env.Isolate("n1")
	env.MustMatch(func(src, dst string) bool { return !p.Blocks(src, dst) })
	if r := env.Probe("n1", n2.IP6().String()); !r.None() {
		t.Errorf("isolated n1 probing n2 over IPv6: %v, want all lost", r)
	}
	env.Heal()
	env.MustReach("n1", n2.IP6().String())

	v4 := testenv.New(t, testenv.WithIPv4Only())
	if g := v4.Guest("a", "172.18.0.1"); g.IP6().IsValid() {
		t.Errorf("guest of an IPv4-only Env has IPv6 address %s", g.IP6())
	}
	if v4.Plan().IPv6() {
		t.Errorf("IPv4-only Env's plan has IPv6 prefix %s", v4.Plan().Subnet6)
	}
}
