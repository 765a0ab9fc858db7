package testenv_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/capture"
	"github.com/pontoon-dev/pontoon/eventlog"
	"github.com/pontoon-dev/pontoon/names"
	"github.com/pontoon-dev/pontoon/partition"
	"github.com/pontoon-dev/pontoon/schedule"
	"github.com/pontoon-dev/pontoon/testenv"
)

// A guest's C resolver reaches the bridge's name server, which answers for the other guest
// until a DNS fault makes it answer NXDOMAIN, and again after Heal.
func TestNameServerAndDNSFault(t *testing.T) {
	t.Parallel()
	env := testenv.New(t, testenv.WithDNSNames(), testenv.WithIPv4Only())
	n1 := env.Guest("n1", "172.18.0.1")
	env.Guest("n2", "172.18.0.2")
	ctx := context.Background()
	out, err := n1.Run(ctx, "getent", "ahostsv4", "n2")
	if err != nil || !strings.HasPrefix(out, "172.18.0.2 ") {
		t.Fatalf("n1 resolves n2 to %q (%v), want 172.18.0.2", out, err)
	}
	env.DNSFault(names.Fault{Kind: names.NXDomain, Names: []string{"n2"}})
	if out, err := n1.Run(ctx, "getent", "ahostsv4", "n2"); err == nil {
		t.Fatalf("with NXDOMAIN for n2, n1 still resolves it: %q", out)
	}
	env.Heal()
	if out, err := n1.Run(ctx, "getent", "ahostsv4", "n2"); err != nil || !strings.HasPrefix(out, "172.18.0.2 ") {
		t.Fatalf("after Heal n1 resolves n2 to %q (%v), want 172.18.0.2", out, err)
	}
}

// A capture of two guests holds the frames of a probe between them on both interfaces.
func TestCaptureHoldsProbes(t *testing.T) {
	t.Parallel()
	env := testenv.New(t, testenv.WithIPv4Only())
	env.Guest("n1", "172.18.0.1")
	env.Guest("n2", "172.18.0.2")
	c := env.Capture(filepath.Join(t.TempDir(), "probe.pcapng"), capture.Options{})
	env.MustReach("n1", "n2")
	res, err := c.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Interfaces) != 2 {
		t.Fatalf("capture has %d interfaces, want 2: %+v", len(res.Interfaces), res)
	}
	for _, i := range res.Interfaces {
		if i.Packets == 0 {
			t.Errorf("no frames captured on %s's interface: %+v", i.Guest, res)
		}
	}
}

// A schedule's step cuts the guest off while it lasts, is in the event log as the
// schedule's, and the bridge is healed when the schedule is stopped.
func TestScheduleStepTakesEffect(t *testing.T) {
	t.Parallel()
	env := testenv.New(t, testenv.WithIPv4Only())
	env.Guest("n1", "172.18.0.1")
	env.Guest("n2", "172.18.0.2")
	r := env.Schedule(schedule.Spec{Steps: []schedule.Step{{Fault: schedule.Fault{Partition: "isolate n1"}, For: time.Minute}}})
	waitFor(t, func() bool { return env.Reachable("n1", "n2") != nil })
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	env.MustReach("n1", "n2")
	events, err := eventlog.Read(env.Target().StateDir)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range events {
		found = found || (e.Source == partition.SourceSchedule && strings.HasPrefix(e.What, "isolate n1") && e.Error == "")
	}
	if !found {
		t.Errorf("no schedule event for isolate n1 in the log: %+v", events)
	}
}
