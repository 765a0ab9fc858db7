package partition

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkCounters measures what the counters cost a change: the same alternation of one
// isolated guest and two random halves, with the counting rules and the pruning of stale
// counters and without (as built with -X ...countersSetting=off). The two settings take turns
// every two changes, so that other load on the machine hits both alike; it reports each
// setting's median.
func BenchmarkCounters(b *testing.B) {
	for _, n := range []int{16, 253} {
		b.Run(fmt.Sprintf("guests=%d", n), func(b *testing.B) {
			s := benchScene(b, n)
			tgt := s.target()
			b.Cleanup(func() { countersSetting = "on" })
			iso, err := Isolate(tgt.Guests, tgt.Guests[0].Name)
			if err != nil {
				b.Fatal(err)
			}
			halves, err := RandomHalves(tgt.Guests, 1)
			if err != nil {
				b.Fatal(err)
			}
			states := []State{{Partition: iso}, {Partition: halves}}
			times := map[string][]time.Duration{}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				setting := []string{"on", "off"}[(i/2)%2]
				countersSetting = setting
				start := time.Now()
				if _, err := applyWith(tgt, constant(states[i%2]), applyOpts{}); err != nil {
					b.Fatal(err)
				}
				// The first change after a switch of setting rewrites the counting rules.
				if i%2 == 1 {
					times[setting] = append(times[setting], time.Since(start))
				}
			}
			b.StopTimer()
			for setting, d := range times {
				slices.Sort(d)
				b.ReportMetric(float64(d[len(d)/2].Microseconds()), "p50-us-counters-"+setting)
			}
			countersSetting = "on"
			if err := Heal(tgt); err != nil {
				b.Fatal(err)
			}
		})
	}
}
