package partition

import (
	"fmt"
	"testing"
	"time"
)

// benchScene6 is benchScene with IPv6 addresses on the guests (a separate scene per size).
func benchScene6(b *testing.B, n int) *scene {
	b.Helper()
	needRoot(b)
	benchMu.Lock()
	defer benchMu.Unlock()
	if s, ok := benchScenes[-n]; ok {
		return s
	}
	tb := &benchTB{TB: b}
	s := newScene(tb, n, false)
	s.addIPv6(tb)
	benchCleanups = append(benchCleanups, tb.cleanups...)
	benchScenes[-n] = s
	return s
}

// BenchmarkApplyFamilies is BenchmarkApply on IPv4-only guests and on dual-stack guests: what
// covering IPv6 too costs a change.
func BenchmarkApplyFamilies(b *testing.B) {
	for _, n := range []int{16, 64} {
		for _, fam := range []string{"ipv4", "dual"} {
			b.Run(fmt.Sprintf("guests=%d/%s", n, fam), func(b *testing.B) {
				s := benchScene(b, n)
				if fam == "dual" {
					s = benchScene6(b, n)
				}
				tgt := s.target()
				iso, err := Isolate(tgt.Guests, tgt.Guests[0].Name)
				if err != nil {
					b.Fatal(err)
				}
				halves, err := RandomHalves(tgt.Guests, 1)
				if err != nil {
					b.Fatal(err)
				}
				states := []State{{Partition: iso}, {Partition: halves, Mode: ModeReject}}
				times := make([]time.Duration, 0, b.N)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					start := time.Now()
					if _, err := applyWith(tgt, constant(states[i%2]), applyOpts{}); err != nil {
						b.Fatal(err)
					}
					times = append(times, time.Since(start))
				}
				b.StopTimer()
				reportMedian(b, times)
				if err := Heal(tgt); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}
