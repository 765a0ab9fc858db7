package testenv_test

// Behaviour checks of the netem impairments: each test applies one setting and asserts an
// effect that the setting causes and the unimpaired network never shows (a round trip that
// cannot be shorter than the delay, a datagram that arrives twice, ...). The time bounds are
// consequences of the configured delays with wide margins, not measurements of performance.
//
// They need a kernel with netem and skip, saying so, on one without (RequireNetem). They use
// nothing but the kernel and this test binary (no ip, tc or other tools), so that the
// stock-kernel VM lane (vmtest/run.sh) can run them: -test.run '^TestNetem'.

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup/probe"
	"github.com/pontoon-dev/pontoon/partition"
	"github.com/pontoon-dev/pontoon/testenv"
)

const (
	rttPort    = 7401 // UDP echo servers of these tests
	streamPort = 7402 // UDP receivers of stream
	netemDelay = 100 * time.Millisecond
	// unimpaired bounds a round trip between guests when nothing delays it. A guest-to-guest
	// round trip over two veths and a bridge takes well under a millisecond; the bound only has
	// to lie clearly below the delays under test. The smallest of several samples is compared,
	// so a single stall of a loaded machine does not count.
	unimpaired = 50 * time.Millisecond
)

// netemEnv returns an Env with guests n1, n2, n3 that run UDP echo servers on rttPort. It
// skips the test when the kernel has no netem.
func netemEnv(t *testing.T) *testenv.Env {
	t.Helper()
	env := three(t)
	env.RequireNetem()
	for _, g := range env.Guests() {
		var pc net.PacketConn
		if err := g.Do(func() (err error) {
			pc, err = net.ListenPacket("udp4", g.Addr(rttPort))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		go func() {
			buf := make([]byte, 2048)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo(buf[:n], from)
			}
		}()
	}
	return env
}

func mustImpair(t *testing.T, env *testenv.Env, ims ...partition.Impairment) {
	t.Helper()
	if err := env.Impair(ims...); err != nil {
		t.Fatal(err)
	}
}

// udpRTTs measures n UDP round trips, one after another, from guest a to b's echo server.
func udpRTTs(t *testing.T, env *testenv.Env, a, b string, n int) []time.Duration {
	t.Helper()
	from, to := env.Lookup(a), env.Lookup(b)
	c, err := from.DialContext(context.Background(), "udp4", to.Addr(rttPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out := make([]time.Duration, 0, n)
	buf := make([]byte, 64)
	for i := range n {
		msg := binary.BigEndian.AppendUint64([]byte("rtt "), uint64(i))
		start := time.Now()
		if _, err := c.Write(msg); err != nil {
			t.Fatalf("udp %s -> %s: %v", a, b, err)
		}
		c.SetReadDeadline(start.Add(5 * time.Second))
		for {
			m, err := c.Read(buf)
			if err != nil {
				t.Fatalf("udp %s -> %s: round trip %d: %v", a, b, i, err)
			}
			if bytes.Equal(buf[:m], msg) {
				break // an older echo (possible under jitter) is skipped
			}
		}
		out = append(out, time.Since(start))
	}
	return out
}

// pingRTTs measures n ICMP echo round trips from guest a to b.
func pingRTTs(t *testing.T, env *testenv.Env, a, b string, n int) []time.Duration {
	t.Helper()
	from, to := env.Lookup(a), env.Lookup(b)
	out := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if err := probe.Ping(from.Netns(), to.IP(), 5*time.Second); err != nil {
			t.Fatalf("ping %s -> %s: %v", a, b, err)
		}
		out = append(out, time.Since(start))
	}
	return out
}

// arrival is one datagram of a stream as the receiver saw it.
type arrival struct {
	seq     int           // -1 when the payload is not one the sender sent
	intact  bool          // the payload is exactly what was sent
	latency time.Duration // from sending to receiving (both ends use this process's clock)
}

// streamPayload is the content of datagram seq: the number and a fixed pattern, so that any
// change to it is seen.
func streamPayload(seq int) []byte {
	b := binary.BigEndian.AppendUint32([]byte("pontoon-stream "), uint32(seq))
	for i := range 96 {
		b = append(b, byte(seq+i))
	}
	return b
}

// stream sends n sequence-numbered datagrams from guest a to a receiver in guest b, one
// every gap, and returns what arrived, in arrival order, until wait after the last one.
func stream(t *testing.T, env *testenv.Env, a, b string, n int, gap, wait time.Duration) []arrival {
	t.Helper()
	from, to := env.Lookup(a), env.Lookup(b)
	var pc net.PacketConn
	if err := to.Do(func() (err error) {
		pc, err = net.ListenPacket("udp4", to.Addr(streamPort))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	// Room for every datagram even if the reader falls behind for a moment.
	if u, ok := pc.(*net.UDPConn); ok {
		u.SetReadBuffer(1 << 20)
	}
	sent := make([]time.Time, n)
	var mu sync.Mutex
	var got []arrival
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			m, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			now := time.Now()
			p := slices.Clone(buf[:m])
			mu.Lock()
			arr := arrival{seq: -1}
			if len(p) >= 19 {
				if s := int(binary.BigEndian.Uint32(p[15:19])); s < n && bytes.Equal(p, streamPayload(s)) {
					arr = arrival{seq: s, intact: true, latency: now.Sub(sent[s])}
				}
			}
			got = append(got, arr)
			mu.Unlock()
		}
	}()
	c, err := from.DialContext(context.Background(), "udp4", to.Addr(streamPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range n {
		mu.Lock()
		sent[i] = time.Now()
		mu.Unlock()
		if _, err := c.Write(streamPayload(i)); err != nil {
			t.Fatalf("udp %s -> %s: datagram %d: %v", a, b, i, err)
		}
		time.Sleep(gap)
	}
	time.Sleep(wait)
	pc.Close()
	<-done
	mu.Lock()
	defer mu.Unlock()
	return got
}

// copies counts how often each sequence number arrived intact.
func copies(arr []arrival) map[int]int {
	out := map[int]int{}
	for _, a := range arr {
		if a.intact {
			out[a.seq]++
		}
	}
	return out
}

// TestNetemDelay: a delay on a guest holds what it sends and what it receives, so each round
// trip with it takes two delays; a pair delay holds only that pair's packets.
func TestNetemDelay(t *testing.T) {
	t.Parallel()
	env := netemEnv(t)
	// Without delay, round trips are far quicker than the delay: it is the delay that shows.
	if m := slices.Min(udpRTTs(t, env, "n1", "n2", 5)); m >= unimpaired {
		t.Fatalf("udp round trip n1 -> n2 without delay: at best %v, want < %v", m, unimpaired)
	}
	if m := slices.Min(pingRTTs(t, env, "n1", "n2", 5)); m >= unimpaired {
		t.Fatalf("ping n1 -> n2 without delay: at best %v, want < %v", m, unimpaired)
	}

	if err := env.Delay(netemDelay, "n1"); err != nil {
		t.Fatal(err)
	}
	// A round trip of n1 passes n1's link twice: out through its eth0, back in through its port.
	// netem holds a packet at least its delay, so nothing can come back sooner.
	both := 2*netemDelay - 10*time.Millisecond
	for _, pair := range [][2]string{{"n1", "n2"}, {"n3", "n1"}} {
		for i, rtt := range udpRTTs(t, env, pair[0], pair[1], 5) {
			if rtt < both {
				t.Errorf("udp round trip %d %s -> %s with %v delay on n1: %v, want >= %v", i, pair[0], pair[1], netemDelay, rtt, both)
			}
		}
		for i, rtt := range pingRTTs(t, env, pair[0], pair[1], 3) {
			if rtt < both {
				t.Errorf("ping %d %s -> %s with %v delay on n1: %v, want >= %v", i, pair[0], pair[1], netemDelay, rtt, both)
			}
		}
	}
	if m := slices.Min(udpRTTs(t, env, "n2", "n3", 5)); m >= unimpaired {
		t.Errorf("udp round trip n2 -> n3 with a delay on n1 only: at best %v, want < %v", m, unimpaired)
	}

	if err := env.Delay(0, "n1"); err != nil {
		t.Fatal(err)
	}
	mustImpair(t, env, partition.Impairment{Src: "n2", Dst: "n3", Delay: netemDelay})
	// One way delayed: at least one delay, and the answer n3 -> n2 is not held.
	one := netemDelay - 10*time.Millisecond
	rtts := udpRTTs(t, env, "n2", "n3", 5)
	for i, rtt := range rtts {
		if rtt < one {
			t.Errorf("udp round trip %d n2 -> n3 with %v delay on n2->n3: %v, want >= %v", i, netemDelay, rtt, one)
		}
	}
	if m := slices.Min(rtts); m >= both {
		t.Errorf("udp round trip n2 -> n3 with a delay on n2->n3 only: at best %v, want < %v (the reverse direction is delayed too)", m, both)
	}
	if m := slices.Min(udpRTTs(t, env, "n1", "n3", 5)); m >= unimpaired {
		t.Errorf("udp round trip n1 -> n3 with a delay on n2->n3 only: at best %v, want < %v", m, unimpaired)
	}
}

// TestNetemJitter: jitter makes round trips vary by far more than an unimpaired network does.
func TestNetemJitter(t *testing.T) {
	t.Parallel()
	env := netemEnv(t)
	const delay, jitter = 50 * time.Millisecond, 40 * time.Millisecond
	mustImpair(t, env, partition.Impairment{Guest: "n1", Delay: delay, Jitter: jitter})
	// Each pass over n1's link is held for delay +- jitter, drawn per packet, twice per round
	// trip: the round trips spread over up to 4*jitter. Twenty samples all within 20 ms of each
	// other would need every draw to land in a narrow window (odds well below 1e-9).
	rtts := udpRTTs(t, env, "n1", "n2", 20)
	lo, hi := slices.Min(rtts), slices.Max(rtts)
	t.Logf("20 round trips with delay %v jitter %v on n1: %v .. %v", delay, jitter, lo, hi)
	if hi-lo < 20*time.Millisecond {
		t.Errorf("round trips with jitter %v spread over %v only (%v .. %v), want >= 20ms", jitter, hi-lo, lo, hi)
	}
	if floor := 2 * (delay - jitter); lo < floor-5*time.Millisecond {
		t.Errorf("shortest round trip %v, want >= %v (twice delay - jitter)", lo, floor)
	}
}

// TestNetemDuplicate: duplicate 100% delivers every datagram twice; without it, never.
func TestNetemDuplicate(t *testing.T) {
	t.Parallel()
	env := netemEnv(t)
	const n = 50
	check := func(what, a, b string, wantTwice bool) {
		t.Helper()
		c := copies(stream(t, env, a, b, n, time.Millisecond, 300*time.Millisecond))
		twice, more := 0, 0
		for _, k := range c {
			switch {
			case k == 2:
				twice++
			case k > 2:
				more++
			}
		}
		t.Logf("%s: %d of %d datagrams %s -> %s arrived, %d of them twice", what, len(c), n, a, b, twice)
		switch {
		case more > 0:
			t.Errorf("%s: %d datagrams arrived more than twice", what, more)
		case wantTwice && twice < n/2:
			t.Errorf("%s: %d of %d datagrams arrived twice, want (nearly) all", what, twice, n)
		case !wantTwice && twice > 0:
			t.Errorf("%s: %d datagrams arrived twice, want none", what, twice)
		case len(c) < n/2:
			t.Errorf("%s: only %d of %d datagrams arrived", what, len(c), n)
		}
	}
	check("no impairment", "n1", "n2", false)

	mustImpair(t, env, partition.Impairment{Guest: "n1", Duplicate: 100})
	check("duplicate 100% on guest n1", "n1", "n2", true)
	check("duplicate 100% on guest n1", "n2", "n1", true)
	check("duplicate 100% on guest n1", "n2", "n3", false)

	if err := env.ClearImpairments(); err != nil {
		t.Fatal(err)
	}
	mustImpair(t, env, partition.Impairment{Src: "n1", Dst: "n2", Duplicate: 100})
	check("duplicate 100% on n1->n2", "n1", "n2", true)
	check("duplicate 100% on n1->n2", "n3", "n2", false)
	check("duplicate 100% on n1->n2", "n2", "n1", false)
}

// TestNetemCorrupt: corrupt 100% flips a bit in every packet, so (nearly) no datagram arrives
// as it was sent: most are dropped by the receiver's checksum check.
func TestNetemCorrupt(t *testing.T) {
	t.Parallel()
	env := netemEnv(t)
	const n = 200
	intact := func() int {
		t.Helper()
		return len(copies(stream(t, env, "n1", "n2", n, 500*time.Microsecond, 300*time.Millisecond)))
	}
	if k := intact(); k < n*9/10 {
		t.Fatalf("without corruption %d of %d datagrams arrived intact, want nearly all", k, n)
	}
	mustImpair(t, env, partition.Impairment{Guest: "n1", Corrupt: 100})
	// The flipped bit lands anywhere in the frame. Only a flip in the source MAC address (6 of
	// about 140 bytes) leaves a datagram deliverable and intact.
	k := intact()
	t.Logf("corrupt 100%% on n1: %d of %d datagrams arrived intact", k, n)
	if k > n/2 {
		t.Errorf("with corrupt 100%% on n1, %d of %d datagrams arrived intact, want at most %d", k, n, n/2)
	}
	// Traffic between other guests is untouched.
	if k := len(copies(stream(t, env, "n2", "n3", n, 500*time.Microsecond, 300*time.Millisecond))); k < n*9/10 {
		t.Errorf("with corrupt on n1 only, %d of %d datagrams n2 -> n3 arrived intact, want nearly all", k, n)
	}
}

// TestNetemReorder: with a delay and reorder 50%, about half the datagrams go at once and
// overtake earlier ones that wait for the delay.
func TestNetemReorder(t *testing.T) {
	t.Parallel()
	env := netemEnv(t)
	const n = 50
	if got := stream(t, env, "n1", "n2", n, time.Millisecond, 100*time.Millisecond); len(copies(got)) < n/2 {
		t.Fatalf("without impairment only %d of %d datagrams arrived", len(copies(got)), n)
	}
	mustImpair(t, env, partition.Impairment{Guest: "n1", Delay: netemDelay, Reorder: 50})
	got := stream(t, env, "n1", "n2", n, time.Millisecond, 3*netemDelay)
	var seqs []int
	early, late := 0, 0
	for _, a := range got {
		if !a.intact {
			continue
		}
		seqs = append(seqs, a.seq)
		switch {
		case a.latency < netemDelay/2:
			early++
		case a.latency >= netemDelay-10*time.Millisecond:
			late++
		}
	}
	inversions := 0
	for i := 1; i < len(seqs); i++ {
		if seqs[i] < seqs[i-1] {
			inversions++
		}
	}
	t.Logf("delay %v reorder 50%% on n1: %d datagrams arrived, %d sent at once, %d delayed, %d out of order; order %v",
		netemDelay, len(seqs), early, late, inversions, seqs)
	// All in order would need every immediate datagram to come before every delayed one:
	// odds of about n/2^n.
	if inversions == 0 {
		t.Errorf("no datagram overtook another with reorder 50%%: order %v", seqs)
	}
	if early == 0 || late == 0 {
		t.Errorf("%d datagrams went at once and %d waited the delay, want some of each", early, late)
	}
	if len(seqs) < n/2 {
		t.Errorf("only %d of %d datagrams arrived", len(seqs), n)
	}
}
