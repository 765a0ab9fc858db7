package partition

import "testing"

func TestPairFinder(t *testing.T) {
	c := Counters{Blocked: []PairCounters{
		{Src: "a", Dst: "b", Dropped: Count{Packets: 1, Bytes: 60}},
		{Src: "b", Dst: "a", Rejected: Count{Packets: 2, Bytes: 120}},
	}}
	find := c.PairFinder()
	for _, p := range [][2]string{{"a", "b"}, {"b", "a"}, {"a", "c"}, {"ab", ""}} {
		if got, want := find(p[0], p[1]), c.Pair(p[0], p[1]); got != want {
			t.Errorf("PairFinder(%s, %s) = %+v, Pair says %+v", p[0], p[1], got, want)
		}
	}
	if got := find("b", "a").Rejected.Packets; got != 2 {
		t.Errorf("b->a rejected %d packets, want 2", got)
	}
}
