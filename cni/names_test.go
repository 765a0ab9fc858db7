package cni_test

import (
	"testing"

	"github.com/pontoon-dev/pontoon/names"
	"github.com/pontoon-dev/pontoon/netsetup"
)

// TestResultNamesTheNameServer: on a bridge whose name server runs, ADD's result gives the
// pod that server, which knows every guest of the bridge by name; without one, the
// resolvers every guest uses.
func TestResultNamesTheNameServer(t *testing.T) {
	r := newRig(t)
	l := r.list(map[string]any{"createBridge": false})
	if _, err := netsetup.GatewayUp(r.sb.Env, netsetup.GatewayOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := netsetup.CreateBridge(r.sb.Env, "pods", netsetup.BridgeOptions{}); err != nil {
		t.Fatal(err)
	}
	plain, err := r.add(l, rtConf("plain", r.netns("a")))
	if err != nil {
		t.Fatal(err)
	}
	if err := names.Start(r.sb.Env, "pods", pontoonBinary(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { names.Stop(r.sb.Env, "pods") })
	served, err := r.add(l, rtConf("served", r.netns("b")))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := netsetup.CurrentPlan(r.sb.Env)
	if err != nil {
		t.Fatal(err)
	}
	want := plan.BridgeAddr().Addr().String()
	if got := served.DNS.Nameservers; len(got) != 1 || got[0] != want {
		t.Errorf("DNS of a pod on a bridge with a name server: %v; want [%s]", got, want)
	}
	if got := plain.DNS.Nameservers; len(got) == 0 || got[0] == want {
		t.Errorf("DNS of a pod on a bridge without a name server: %v; want the guests' resolvers", got)
	}
}
