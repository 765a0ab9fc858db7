package advice

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/partition"
)

func TestFor(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("create bridge b1: %w", netsetup.ErrNoGateway), "`pontoon gateway up`"},
		{fmt.Errorf("bridge %q: %w", "b9", netsetup.ErrNoBridge), "`pontoon bridge list`"},
		{fmt.Errorf("%w: %q (slot 3)", netsetup.ErrBridgeExists, "b1"), "`pontoon bridge destroy NAME`"},
		{fmt.Errorf("apply: %w", &partition.FeatureError{Feature: "sch_netem", Need: "delay on a"}), "Debian's stock kernel does"},
		{&partition.FeatureError{Feature: "nft_reject_bridge", Need: "reject mode"}, "Debian's stock kernel does"},
		{&partition.FeatureError{Feature: "nft_reject_netdev", Need: "reject mode"}, "uses a bridge table by itself"},
		{&partition.FeatureError{Feature: "sch_cake"}, "use a kernel built with it"},
	}
	for _, tt := range tests {
		if got := For(tt.err); !strings.Contains(got, tt.want) {
			t.Errorf("For(%v) = %q, want it to mention %s", tt.err, got, tt.want)
		}
	}
	// Debian's stock kernel has no netdev reject, and of an unknown feature nothing is known.
	for _, f := range []string{"nft_reject_netdev", "sch_cake"} {
		if got := For(&partition.FeatureError{Feature: f}); strings.Contains(got, "stock kernel does") {
			t.Errorf("For(a FeatureError for %s) = %q, which claims Debian's stock kernel has it", f, got)
		}
	}
	// A plan is refused for --subnet, --subnet6 or --ipv4-only: the advice fits each of
	// them, and never tells to drop a flag that may not have been given.
	got := For(fmt.Errorf("gateway up: %w: it has IPv6 fd00:77::/48, not none (IPv4 only)", netsetup.ErrGatewayPlan))
	for _, want := range []string{"--subnet,", "--subnet6", "--ipv4-only", "`pontoon gateway down`"} {
		if !strings.Contains(got, want) {
			t.Errorf("For(another plan) = %q, want it to mention %s", got, want)
		}
	}
	if strings.Contains(got, "drop --subnet") {
		t.Errorf("For(another plan) = %q: tells to drop --subnet, which --ipv4-only alone did not give", got)
	}
	if got := For(errors.New("something else")); got != "" {
		t.Errorf("For(an error with no advice) = %q", got)
	}
}

// TestForInSpace: in a user's space the user brings the gateway up themselves, without
// root; elsewhere the gateway is root's.
func TestForInSpace(t *testing.T) {
	defer func(old func() bool) { inSpace = old }(inSpace)
	err := fmt.Errorf("create bridge b1: %w", netsetup.ErrNoGateway)
	inSpace = func() bool { return false }
	if got := For(err); !strings.Contains(got, "`pontoon gateway up` (as root)") {
		t.Errorf("For(no gateway) on the host = %q; want it to say as root", got)
	}
	inSpace = func() bool { return true }
	if got := For(err); !strings.Contains(got, "`pontoon gateway up` first (as yourself") || strings.Contains(got, "as root") {
		t.Errorf("For(no gateway) in a space = %q; want gateway up as oneself, no root", got)
	}
	if got := For(fmt.Errorf("x: %w", netsetup.ErrGatewayPlan)); !strings.Contains(got, "leave out --subnet") {
		t.Errorf("For(another plan) in a space = %q", got)
	}
}
