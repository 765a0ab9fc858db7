package partition

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// Benchmark scenes are built once per size and removed by TestMain.
var (
	benchMu     sync.Mutex
	benchScenes = map[int]*scene{}
)

type benchTB struct {
	testing.TB
	cleanups []func()
}

func (b *benchTB) Cleanup(f func()) { b.cleanups = append(b.cleanups, f) }

var benchCleanups []func()

func benchScene(b *testing.B, n int) *scene {
	b.Helper()
	needRoot(b)
	benchMu.Lock()
	defer benchMu.Unlock()
	if s, ok := benchScenes[n]; ok {
		return s
	}
	tb := &benchTB{TB: b}
	s := newScene(tb, n, false)
	benchCleanups = append(benchCleanups, tb.cleanups...)
	benchScenes[n] = s
	return s
}

func closeBenchScenes() {
	benchMu.Lock()
	defer benchMu.Unlock()
	for i := len(benchCleanups) - 1; i >= 0; i-- {
		benchCleanups[i]()
	}
	benchCleanups = nil
	benchScenes = map[int]*scene{}
}

// reportMedian adds the median and 90th percentile of the timed operations.
func reportMedian(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Microseconds()), "p50-us")
	b.ReportMetric(float64(d[len(d)*9/10].Microseconds()), "p90-us")
}

// isoAndHalves are the two states the apply benchmarks alternate: tgt's first guest isolated,
// and two random halves in reject mode.
func isoAndHalves(b *testing.B, tgt Target) []State {
	b.Helper()
	iso, err := Isolate(tgt.Guests, tgt.Guests[0].Name)
	if err != nil {
		b.Fatal(err)
	}
	halves, err := RandomHalves(tgt.Guests, 1)
	if err != nil {
		b.Fatal(err)
	}
	return []State{{Partition: iso}, {Partition: halves, Mode: ModeReject}}
}

// BenchmarkApply alternates between isolating one guest and two random
// halves, so every Apply changes the partition.
func BenchmarkApply(b *testing.B) {
	for _, n := range []int{5, 16, 64} {
		b.Run(fmt.Sprintf("guests=%d", n), func(b *testing.B) {
			s := benchScene(b, n)
			tgt := s.target()
			benchAlternate(b, tgt, isoAndHalves(b, tgt))
		})
	}
}

// BenchmarkHeal times Heal of an applied partition (Apply is not timed).
func BenchmarkHeal(b *testing.B) {
	for _, n := range []int{5, 16, 64} {
		b.Run(fmt.Sprintf("guests=%d", n), func(b *testing.B) {
			s := benchScene(b, n)
			tgt := s.target()
			halves, err := RandomHalves(tgt.Guests, 1)
			if err != nil {
				b.Fatal(err)
			}
			times := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if err := Apply(tgt, State{Partition: halves}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				start := time.Now()
				if err := Heal(tgt); err != nil {
					b.Fatal(err)
				}
				times = append(times, time.Since(start))
			}
			b.StopTimer()
			reportMedian(b, times)
		})
	}
}

// BenchmarkApplyBackends compares the backends on the same drop-mode
// partitions (reject may be missing from one of them): isolating one guest
// alternates with two random halves.
func BenchmarkApplyBackends(b *testing.B) {
	sup := probedSupport(b)
	for _, be := range backends {
		for _, n := range []int{16, 64} {
			b.Run(fmt.Sprintf("backend=%s/guests=%d", be, n), func(b *testing.B) {
				if !sup.tables[be] {
					b.Skipf("kernel has no %s family tables", be.Family())
				}
				forcedBackend = be
				defer func() { forcedBackend = "" }()
				s := benchScene(b, n)
				tgt := s.target()
				iso, err := Isolate(tgt.Guests, tgt.Guests[0].Name)
				if err != nil {
					b.Fatal(err)
				}
				halves, err := RandomHalves(tgt.Guests, 1)
				if err != nil {
					b.Fatal(err)
				}
				benchAlternate(b, tgt, []State{{Partition: iso}, {Partition: halves}})
			})
		}
	}
}

// benchAlternate times Apply of the states in turn, so every apply changes the partition,
// reports the median and heals.
func benchAlternate(b *testing.B, tgt Target, states []State) {
	times := make([]time.Duration, 0, b.N)
	commits := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		st, err := applyWith(tgt, constant(states[i%len(states)]), applyOpts{})
		if err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(start))
		commits = append(commits, time.Duration(st.CommitMicros)*time.Microsecond)
	}
	b.StopTimer()
	reportMedian(b, times)
	// The nftables transaction alone: the time between old and new connectivity being in
	// force.
	slices.Sort(commits)
	b.ReportMetric(float64(commits[len(commits)/2].Microseconds()), "commit-p50-us")
	if err := Heal(tgt); err != nil {
		b.Fatal(err)
	}
}
