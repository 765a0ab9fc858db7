package testenv_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/partition"
	"github.com/pontoon-dev/pontoon/testenv"
)

// lost builds the expected connectivity from a list of lost one-way pairs "src>dst", written
// out by hand so the tests check partition's results against an independent statement.
func lost(pairs ...string) func(src, dst string) bool {
	return func(src, dst string) bool { return !slices.Contains(pairs, src+">"+dst) }
}

func everything(string, string) bool { return true }

func TestIsolateThenHeal(t *testing.T) {
	t.Parallel()
	env := three(t)
	env.MustMatch(everything)

	p := env.Isolate("n1")
	env.MustMatch(lost("n1>n2", "n1>n3", "n2>n1", "n3>n1"))
	env.MustMatch(func(src, dst string) bool { return !p.Blocks(src, dst) })
	env.MustNotReach("n1", "n2")
	env.MustNotReach("n3", "n1")
	env.MustReach("n2", "n3")
	if rec := env.Status(); rec.Kind != "isolate" || rec.Kernel == nil || !rec.Kernel.InEffect {
		t.Errorf("status after isolate: kind %q, kernel %+v", rec.Kind, rec.Kernel)
	}

	env.Heal()
	env.MustMatch(everything)
	env.MustReach("n1", "n2")
	if s := env.State(); !s.Partition.IsFullmesh() || len(s.Impairments) > 0 {
		t.Errorf("state after heal: %+v", s)
	}
}

func TestPartitionKinds(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	for i, n := range []string{"a", "b", "c", "d"} {
		env.Guest(n, "172.18.0."+string(rune('1'+i)))
	}
	for _, tc := range []struct {
		name  string
		apply func() partition.Partition
		want  func(src, dst string) bool
	}{
		{"disjoint", func() partition.Partition { return env.Disjoint([]string{"a", "b"}, []string{"c", "d"}) },
			lost("a>c", "a>d", "b>c", "b>d", "c>a", "c>b", "d>a", "d>b")},
		{"split with a bridging guest", func() partition.Partition { return env.Split([]string{"a", "b"}, []string{"b", "c"}) },
			// d is in no group: isolated. b talks to both sides, a and c not to each other.
			lost("a>c", "c>a", "a>d", "d>a", "b>d", "d>b", "c>d", "d>c")},
		{"isolate two", func() partition.Partition { return env.Isolate("a", "b") },
			lost("a>b", "b>a", "a>c", "c>a", "a>d", "d>a", "b>c", "c>b", "b>d", "d>b")},
		{"block one way", func() partition.Partition { return env.Block("a", "b") },
			lost("a>b")},
		{"union", func() partition.Partition {
			t1, _ := partition.Block(env.Target().Guests, []string{"c"}, []string{"d"})
			t2, _ := partition.Isolate(env.Target().Guests, "a")
			return env.Partition(t1.Union(t2))
		}, lost("c>d", "a>b", "b>a", "a>c", "c>a", "a>d", "d>a")},
	} {
		p := tc.apply()
		t.Logf("%s: %s", tc.name, p.Description)
		env.MustMatch(tc.want)
	}
	env.Heal()
	env.MustMatch(everything)
}

func TestBlockIsOneWay(t *testing.T) {
	t.Parallel()
	env := three(t)
	env.Block("n1", "n2")
	if err := env.Delivers("n1", "n2"); err == nil {
		t.Error("a datagram from n1 reached n2 through the block")
	}
	if err := env.Delivers("n2", "n1"); err != nil {
		t.Errorf("the reverse direction is blocked too: %v", err)
	}
	// A round trip from n2 needs n1's answer, which is blocked.
	env.MustNotReach("n2", "n1")
	env.MustReach("n1", "n3")
}

func TestRandomPartitionsAreReproducible(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	for i, n := range []string{"a", "b", "c", "d", "e"} {
		env.Guest(n, "172.18.0."+string(rune('1'+i)))
	}
	for _, apply := range []func(int64) partition.Partition{env.RandomHalves, env.RandomNode, env.RandomBridge, env.MajoritiesRing} {
		p := apply(42)
		if again := apply(42); again.Description != p.Description || !slices.Equal(again.Blocked, p.Blocked) {
			t.Errorf("seed 42 gave %q, then %q", p.Description, again.Description)
		}
		if !strings.Contains(p.Description, "seed 42") {
			t.Errorf("description %q does not record the seed", p.Description)
		}
		env.MustMatch(func(src, dst string) bool { return !p.Blocks(src, dst) })
	}
}

func TestRejectModeFailsFastAndDropModeStalls(t *testing.T) {
	t.Parallel()
	env := three(t, testenv.WithMode(partition.ModeReject))
	startHostnameServer(t, env.Lookup("n3"), 8000)
	if err := env.CanConnect("n1", "n3", 8000); err != nil {
		t.Fatal(err)
	}
	env.Isolate("n3")
	err := env.CanConnect("n1", "n3", 8000)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("connect into a rejecting partition: %v, want connection refused", err)
	}
	env.SetMode(partition.ModeDrop)
	err = env.CanConnect("n1", "n3", 8000)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("connect into a dropping partition: %v, want a timeout", err)
	}
	env.Heal()
	if err := env.CanConnect("n1", "n3", 8000); err != nil {
		t.Errorf("after heal: %v", err)
	}
}

// openEcho opens a TCP connection from guest a to b's echo server and completes one round trip.
func openEcho(t *testing.T, env *testenv.Env, a, b string) net.Conn {
	t.Helper()
	env.MustReach(a, b) // starts the echo server in b
	c, err := env.Lookup(a).DialContext(context.Background(), "tcp", env.Lookup(b).Addr(testenv.EchoPort))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := c.Read(buf); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCutBreaksOpenConnections(t *testing.T) {
	t.Parallel()
	env := three(t)
	stalled := openEcho(t, env, "n1", "n2")
	env.Isolate("n2")
	// Without cut an open connection just stalls: a read waits for its deadline.
	stalled.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	var ne net.Error
	if _, err := stalled.Read(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("read on a connection across a partition without cut: %v, want a timeout", err)
	}
	env.Heal()

	env.SetCut(true)
	c := openEcho(t, env, "n1", "n3")
	env.Isolate("n3")
	// The reader is idle, so only an active close reaches it; the deadline only bounds the
	// test if the cut does not happen.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := c.Read(make([]byte, 1))
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Errorf("read on a cut connection: %v, want it closed by the cut", err)
	}
	if rec := env.Status(); !rec.Cut || rec.ClosedConnections == 0 {
		t.Errorf("status: cut %v, closed %d (%s)", rec.Cut, rec.ClosedConnections, rec.CutError)
	}
}

func TestImpairments(t *testing.T) {
	t.Parallel()
	env := three(t)
	env.Isolate("n3")
	// Every packet lost is as certain as a partition, so it can be asserted.
	if err := env.Loss(100, "n1"); err != nil {
		t.Fatal(err)
	}
	env.MustNotReach("n1", "n2")
	env.MustNotReach("n3", "n2") // the partition stays
	if err := env.Loss(0, "n1"); err != nil {
		t.Fatal(err)
	}
	env.MustReach("n1", "n2")

	if err := env.Impair(partition.Impairment{Src: "n2", Dst: "n1", Loss: 100}); err != nil {
		t.Fatal(err)
	}
	if err := env.Delivers("n2", "n1"); err == nil {
		t.Error("a datagram from n2 reached n1 despite 100% loss on n2->n1")
	}
	if err := env.Delivers("n1", "n2"); err != nil {
		t.Errorf("loss on n2->n1 hit n1->n2 too: %v", err)
	}
	if err := env.Rate("1mbit", "n1", "n2"); err != nil {
		skipIfMissing(t, err)
		t.Fatal(err)
	}
	// The loss on n2->n1 still holds for the rate-limited n2, and n1->n2 flows. (A round trip
	// between them needs n2->n1, so it must stay lost.)
	if err := env.Delivers("n1", "n2"); err != nil {
		t.Errorf("n1->n2 under rate limits: %v", err)
	}
	if err := env.Delivers("n2", "n1"); err == nil {
		t.Error("a datagram from the rate-limited n2 reached n1 despite 100% loss on n2->n1")
	}
	env.MustNotReach("n1", "n2")
	if s := env.State(); len(s.Impairments) != 3 {
		t.Errorf("impairments after Rate: %+v", s.Impairments)
	}
	if rec := env.Status(); len(rec.Impairments) != 3 {
		t.Errorf("recorded impairments: %+v", rec.Impairments)
	}
	if err := env.Loss(150, "n1"); err == nil || !strings.Contains(err.Error(), "150") {
		t.Errorf("loss 150%%: %v, want an error naming the value", err)
	}
	if err := env.ClearImpairments(); err != nil {
		t.Fatal(err)
	}
	env.MustReach("n2", "n1")
	env.MustNotReach("n1", "n3")
	if s := env.State(); len(s.Impairments) != 0 || s.Partition.Kind != "isolate" {
		t.Errorf("state after clearing impairments: %+v", s)
	}
}

func TestDelayReportsMissingNetem(t *testing.T) {
	t.Parallel()
	env := three(t)
	err := env.Delay(20*time.Millisecond, "n1")
	netem := !errors.Is(err, partition.ErrNetemUnavailable)
	if netem && err != nil {
		t.Fatal(err)
	}
	if !netem && len(env.State().Impairments) != 0 {
		t.Errorf("a failed Delay changed the state: %+v", env.State())
	}
	env.MustReach("n1", "n2")

	var sub *testing.T
	reached := false
	t.Run("RequireNetem", func(t *testing.T) {
		sub = t
		testenv.New(t).RequireNetem()
		reached = true
	})
	if netem != reached || sub.Skipped() == netem {
		t.Errorf("netem available: %v; RequireNetem let the test continue: %v, skipped it: %v", netem, reached, sub.Skipped())
	}
}

// skipIfMissing skips the test when err says the kernel lacks a feature.
func skipIfMissing(t *testing.T, err error) {
	t.Helper()
	var fe *partition.FeatureError
	if errors.As(err, &fe) {
		t.Skip(err)
	}
}

// A rate limit must not open a hole in the partition: the partition applies to every packet
// of the guest, shaped or not.
func TestRateKeepsPartition(t *testing.T) {
	t.Parallel()
	env := three(t)
	p := env.Isolate("n1")
	if err := env.Rate("1mbit", "n1"); err != nil {
		skipIfMissing(t, err)
		t.Fatal(err)
	}
	env.MustMatch(func(src, dst string) bool { return !p.Blocks(src, dst) })
	if err := env.Loss(100, "n2"); err != nil {
		t.Fatal(err)
	}
	env.MustNotReach("n2", "n3")
}
