package partition

import (
	"errors"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/internal/nftwire"
)

// TestFullBridge reproduces partitions on a full bridge: 253 guests, where a
// table listing every blocked pair overflowed netlink from 106 guests on
// ("recvmsg: no buffer space available" with the rules half in force and
// status saying fullmesh) and from about 140 failed outright ("sendmsg:
// message too long"). Every kind and impairment must apply, status must read
// back from the kernel exactly the pairs the partition blocks, sampled pairs
// must pass or not as it says, and the table must stay small.
func TestFullBridge(t *testing.T) {
	s := newScene(t, 253, false)
	s.startServers(t)
	tgt := s.target()
	g := tgt.Guests
	names := make([]string, len(g))
	for i := range g {
		names[i] = g[i].Name
	}
	build := map[string]func() (Partition, error){
		"isolate":       func() (Partition, error) { return Isolate(g, names[0], names[99]) },
		"disjoint":      func() (Partition, error) { return Disjoint(g, [][]string{names[:100], names[100:200], names[200:]}) },
		"split":         func() (Partition, error) { return Split(g, [][]string{names[:150], names[100:]}) },
		"block":         func() (Partition, error) { return Block(g, names[:30], names[200:]) },
		"random-halves": func() (Partition, error) { return RandomHalves(g, 7) },
		"random-node":   func() (Partition, error) { return RandomNode(g, 7) },
		"bridge":        func() (Partition, error) { return BridgedHalves(g, 7) },
		"ring":          func() (Partition, error) { return MajoritiesRing(g, 7) },
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, kind := range []string{"isolate", "disjoint", "split", "block", "random-halves", "random-node", "bridge", "ring"} {
		t.Run(kind, func(t *testing.T) {
			p, err := build[kind]()
			if err != nil {
				t.Fatal(err)
			}
			if err := Apply(tgt, State{Partition: p}); err != nil {
				t.Fatalf("apply %s on 253 guests: %v", kind, err)
			}
			rec, err := Status(tgt)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Kernel == nil || !rec.Kernel.InEffect {
				t.Fatalf("status after %s: %+v", kind, rec.Kernel)
			}
			if len(rec.Blocked) != len(p.Blocked) {
				t.Fatalf("status reads %d blocked pairs back from the kernel, the partition blocks %d", len(rec.Blocked), len(p.Blocked))
			}
			for _, b := range rec.Blocked {
				if !p.Blocks(b.Src, b.Dst) {
					t.Fatalf("the kernel blocks %s->%s, which %s does not", b.Src, b.Dst, kind)
				}
			}
			kt, err := readKernel(tgt.NetnsPath)
			if err != nil {
				t.Fatal(err)
			}
			elements := len(kt.Classes.Sources) + len(kt.Classes.Dests) + len(kt.Classes.Runs)
			t.Logf("%s: %d blocked pairs held as %d set elements (%d runs); `nft list ruleset` prints %d bytes",
				kind, len(p.Blocked), elements, len(kt.Classes.Runs), tableSize(t, s.bridgeNS))
			// Each guest is at most in the source map and in both destination maps;
			// the runs stay within two per row class.
			if elements > 3*len(g)+2*len(g) {
				t.Errorf("%d set elements for %d guests: the encoding grows with the pairs", elements, len(g))
			}
			// Sample pairs, blocked and not, and check that packets agree.
			var pairs [][2]string
			var blocked, open int
			for blocked < 6 || open < 6 {
				a, b := names[rng.IntN(len(names))], names[rng.IntN(len(names))]
				if a == b {
					continue
				}
				if p.Blocks(a, b) && blocked < 6 {
					blocked++
					pairs = append(pairs, [2]string{a, b})
				} else if !p.Blocks(a, b) && !p.Blocks(b, a) && open < 6 {
					open++
					pairs = append(pairs, [2]string{a, b})
				}
			}
			res := s.probePairs(t, pairs, kind, time.Second)
			// A slow machine (the stock-kernel lane emulates its CPU) can miss the
			// first second of an open pair while 253 guests resolve addresses:
			// those get a second, longer chance; a blocked pair never passes.
			var again [][2]string
			for _, pr := range pairs {
				if res[[3]string{pr[0], pr[1], "udp"}] != "ok" && !p.Blocks(pr[0], pr[1]) && !p.Blocks(pr[1], pr[0]) {
					again = append(again, pr)
				}
			}
			if len(again) > 0 {
				for k, v := range s.probePairs(t, again, kind+"-again", 5*time.Second) {
					res[k] = v
				}
			}
			for _, pr := range pairs {
				// A UDP echo is a round trip: a one-way block either way stops it.
				got := res[[3]string{pr[0], pr[1], "udp"}]
				want := "ok"
				if p.Blocks(pr[0], pr[1]) || p.Blocks(pr[1], pr[0]) {
					want = "timeout"
				}
				if got != want {
					t.Errorf("%s: udp %s->%s = %q, want %q", kind, pr[0], pr[1], got, want)
				}
			}
		})
	}
	// The answers to a batch can be lost after the kernel committed it (they
	// overflowed the socket). With every answer left unread, every apply must
	// still report what the kernel did: success, in force.
	t.Run("answers lost", func(t *testing.T) {
		nftwire.LoseAnswers.Store(true)
		t.Cleanup(func() { nftwire.LoseAnswers.Store(false); Release() })
		before := answersLost.Load()
		for _, seed := range []int64{1, 2, 3} {
			p, err := MajoritiesRing(g, seed)
			if err != nil {
				t.Fatal(err)
			}
			if err := Apply(tgt, State{Partition: p, Mode: ModeReject}); err != nil {
				t.Fatalf("apply with lost answers: %v", err)
			}
			rec, err := Status(tgt)
			if err != nil {
				t.Fatal(err)
			}
			if !rec.Kernel.InEffect || len(rec.Blocked) != len(p.Blocked) {
				t.Fatalf("after an apply whose answer was lost: %+v, %d pairs, want %d", rec.Kernel, len(rec.Blocked), len(p.Blocked))
			}
		}
		if answersLost.Load() == before {
			t.Fatal("no answer was lost: the test did not provoke what it is about")
		}
	})
	t.Run("impairments", func(t *testing.T) {
		st, err := Recorded(tgt)
		if err != nil {
			t.Fatal(err)
		}
		st, _, err = st.Impair([]string{"loss=50%", names[0]}, g)
		if err != nil {
			t.Fatal(err)
		}
		st, _, err = st.Impair([]string{"rate=1mbit", names[1], "--", names[2]}, g)
		if err != nil {
			t.Fatal(err)
		}
		if err := Apply(tgt, st); err != nil {
			t.Fatalf("loss and rate on 253 guests: %v", err)
		}
		rec, err := Status(tgt)
		if err != nil {
			t.Fatal(err)
		}
		if !rec.Kernel.InEffect || len(rec.Impairments) != 2 {
			t.Fatalf("status after impairments: %+v, %d impairments", rec.Kernel, len(rec.Impairments))
		}
	})
	t.Run("delay", func(t *testing.T) {
		st, err := Recorded(tgt)
		if err != nil {
			t.Fatal(err)
		}
		st, _, err = st.Impair([]string{"delay=10ms", names[3], "--", names[4]}, g)
		if err != nil {
			t.Fatal(err)
		}
		if err := Apply(tgt, st); err != nil {
			var fe *FeatureError
			if errors.As(err, &fe) {
				t.Skipf("delay: %v (the stock-kernel lane covers it)", err)
			}
			t.Fatalf("delay on 253 guests: %v", err)
		}
	})
	if err := Heal(tgt); err != nil {
		t.Fatal(err)
	}
}

// tableSize is the length of the partition table as `nft list` prints it.
func tableSize(t *testing.T, bridgeNS string) int {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", bridgeNS, "nft", "list", "ruleset").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list ruleset: %v\n%s", err, out)
	}
	text := string(out)
	if i := strings.Index(text, "table "); i >= 0 && !strings.Contains(text, TableName) {
		t.Fatalf("no %s table in\n%s", TableName, text)
	}
	return len(text)
}

// BenchmarkRandomHalves253 times the apply of random halves on a full bridge
// in-process, alternating two seeds so every apply changes the partition.
func BenchmarkRandomHalves253(b *testing.B) {
	s := benchScene(b, 253)
	tgt := s.target()
	var states []State
	for _, seed := range []int64{1, 2} {
		p, err := RandomHalves(tgt.Guests, seed)
		if err != nil {
			b.Fatal(err)
		}
		states = append(states, State{Partition: p})
	}
	benchAlternate(b, tgt, states)
}
