package testenv

import "github.com/pontoon-dev/pontoon/partition"

// Stats returns what the Env's partition and impairments did so far, as the kernel counts it
// (partition.Stats): per blocked pair the packets dropped or rejected since the pair was
// blocked, per impairment the packets lost, shaped and delayed. What guests send by
// themselves across a partition (IPv6 neighbour discovery, for one) is stopped and counted
// too. A test can assert that the partition stopped the traffic it expected and nothing else:
//
//	env.Block("n1", "n2")
//	_ = env.Delivers("n1", "n2") // lost
//	if c := env.Stats(); c.Pair("n1", "n2").Dropped.Packets != 1 || len(c.Blocked) != 1 { ... }
func (e *Env) Stats() partition.Counters {
	e.t.Helper()
	c, err := partition.Stats(e.Target())
	if err != nil {
		e.t.Fatalf("testenv: partition counters: %v", err)
	}
	return c
}
