package testenv_test

import (
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/testenv"
)

// TestServiceStoppedCountsApart: what the partition stops of service connections counts for
// the service they were made to, while their pair stays blocked. Two services sharing member
// n3 count apart, a change that keeps n3 isolated keeps the count, and heal clears it. (Both
// services used to show the same pairs' packets, which no change ever cleared.)
func TestServiceStoppedCountsApart(t *testing.T) {
	t.Parallel()
	env, c := kvEnv(t, testenv.WithIPv4Only())
	env.AddService("kv", []string{"n1", "n2", "n3"})
	solo := env.AddService("solo", []string{"n3"})
	stopped := func(name string) (n uint64) {
		for _, s := range env.Services() {
			if s.Name == name {
				for _, p := range s.Stopped {
					n += p.Total().Packets
				}
			}
		}
		return n
	}
	env.Isolate("n3")
	if got := spread(t, c, solo.Addr(svcPort), 2, 300*time.Millisecond); got["timeout"] != 2 {
		t.Fatalf("connections to solo with n3 isolated: %v; want 2 timeouts", got)
	}
	n := stopped("solo")
	if n == 0 {
		t.Errorf("no stopped packets counted for solo: %+v", env.Services())
	}
	if kv := stopped("kv"); kv != 0 {
		t.Errorf("kv counts %d stopped packets; no connection was made to it", kv)
	}
	env.Isolate("n3", "n2")
	if again := stopped("solo"); again < n {
		t.Errorf("solo's stopped packets went from %d to %d under a change that kept n3 isolated", n, again)
	}
	env.Heal()
	if healed := stopped("solo"); healed != 0 {
		t.Errorf("solo still counts %d stopped packets after heal", healed)
	}
}
