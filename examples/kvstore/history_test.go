package kvstore

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

// op is one client operation as seen by the client, for the history check.
type op struct {
	write      bool
	key, value string
	tag        Tag
	start, end time.Time
	err        error
}

// checkHistory asserts that no acknowledged write was lost, that reads
// respected real-time order and that the cluster converges.
//
// It ends the history with two passes of reads of every key through every
// node in turn. The first pass may see different entries through different
// nodes: a write that failed in its store phase can sit on a minority that
// one read's majority misses (the older entry is still a linearizable
// answer: the failed write may take effect at any time after it began) while
// a read through a node that holds it returns it. That read writes it back
// to a majority, and every majority meets that one, so from then on every
// read returns it: the second pass must agree on every node. Both passes
// join the history, so they are held to real-time order too.
func checkHistory(t *testing.T, c *cluster, keys []string, history []op, chaos bool) {
	t.Helper()
	ackedTag := make(map[string]map[Tag]string) // key -> tag -> value of acked writes
	unknown := make(map[string]bool)            // values of writes with unknown outcome
	rejected := make(map[string]bool)           // values of writes that changed nothing
	var acks, rejects int
	for _, o := range history {
		if o.err != nil {
			var nq *NoQuorumError
			if !chaos || !errors.As(o.err, &nq) {
				t.Fatalf("unexpected error: %v", o.err)
			}
			if o.write && nq.Phase == PhaseQuery {
				rejected[o.value] = true
			} else if o.write {
				unknown[o.value] = true
			}
			rejects++
			continue
		}
		if !o.write {
			continue
		}
		acks++
		if ackedTag[o.key] == nil {
			ackedTag[o.key] = make(map[Tag]string)
		}
		if prev, dup := ackedTag[o.key][o.tag]; dup {
			t.Errorf("key %s: writes %q and %q were both acked with tag %v", o.key, prev, o.value, o.tag)
		}
		ackedTag[o.key][o.tag] = o.value
	}
	if acks == 0 {
		t.Fatal("no write was acknowledged")
	}
	t.Logf("%d ops: %d writes acked, %d requests rejected for lack of quorum", len(history), acks, rejects)

	for _, key := range keys {
		var final Entry
		for pass := 1; pass <= 2; pass++ {
			for node := 1; node <= len(c.clients); node++ {
				o := op{key: key, start: time.Now()}
				e, err := c.clients[node-1].Get(context.Background(), key)
				o.end = time.Now()
				if err != nil && !errors.Is(err, ErrNotFound) {
					t.Fatalf("final get %s via node %d (pass %d): %v", key, node, pass, err)
				}
				// A key no majority holds reads as the zero tag.
				o.value, o.tag = e.Value, e.Tag()
				history = append(history, o)
				if pass == 2 && node > 1 && e != final {
					t.Errorf("key %s did not converge: after a read through every node, node %d returned %+v and node %d %+v", key, node, e, node-1, final)
				}
				final = e
			}
		}
		for tag, v := range ackedTag[key] {
			if final.Tag().Less(tag) {
				t.Errorf("key %s: acked write %q (%v) lost, final value %q has older tag %v", key, v, tag, final.Value, final.Tag())
			}
		}
	}

	// Every read returns what some write stored, and real-time order: an
	// operation that starts after another one ended must see that
	// operation's tag or a later one.
	for _, r := range history {
		if r.err != nil || r.write {
			continue
		}
		v, acked := ackedTag[r.key][r.tag]
		switch {
		case rejected[r.value]:
			t.Errorf("read of %s returned %q, a write that was rejected in the query phase", r.key, r.value)
		case acked && v != r.value:
			t.Errorf("read of %s returned %q with tag %v, acked write with that tag stored %q", r.key, r.value, r.tag, v)
		case !acked && !r.tag.IsZero() && !unknown[r.value]:
			t.Errorf("read of %s returned %q (%v), which comes from no acked or unknown-outcome write", r.key, r.value, r.tag)
		}
		for _, o := range history {
			if o.err != nil || o.key != r.key || !o.end.Before(r.start) {
				continue
			}
			if r.tag.Less(o.tag) {
				kind := "read"
				if o.write {
					kind = "write"
				}
				t.Errorf("stale read of %s: got %v (%q) after a completed %s saw %v (%q)", r.key, r.tag, r.value, kind, o.tag, o.value)
			}
		}
	}
}

// TestUnknownOutcomeWriteSurfacesEverywhereAfterOneRead builds, step by
// step, the state a partition can leave behind: a write whose store phase
// reached only its own node. A read whose majority lacks that node returns
// the older value; a read through the node returns the new one and writes it
// back, after which every node returns it. checkHistory must accept this
// history, whose first reads through nodes 1 and 2 disagree, and find the
// cluster converged.
func TestUnknownOutcomeWriteSurfacesEverywhereAfterOneRead(t *testing.T) {
	c := startCluster(t, 3, 5*time.Second, false)
	ctx := context.Background()
	var history []op
	do := func(node int, write bool, value string) (Entry, error) {
		o := op{write: write, key: "a", value: value, start: time.Now()}
		var e Entry
		if write {
			e, o.err = c.clients[node-1].Put(ctx, "a", value)
		} else {
			e, o.err = c.clients[node-1].Get(ctx, "a")
			o.value = e.Value
		}
		o.end, o.tag = time.Now(), e.Tag()
		history = append(history, o)
		return e, o.err
	}

	old, err := do(1, true, "old")
	if err != nil {
		t.Fatalf("put a=old via node 1: %v", err)
	}
	// Node 2 may query, but none of its replica writes get through.
	c.net.refuseWhen(func(from, _ int, r *http.Request) bool { return from == 2 && r.Method == http.MethodPut })
	_, err = do(2, true, "new")
	var nq *NoQuorumError
	if !errors.As(err, &nq) || nq.Phase != PhaseStore {
		t.Fatalf("put a=new via node 2 with its replica writes refused: error = %v, want no quorum in phase %q", err, PhaseStore)
	}

	// Cut only the link between nodes 1 and 2: both still reach a majority
	// through node 3, but a read through node 1 cannot see node 2's copy.
	c.net.refuseWhen(func(from, to int, _ *http.Request) bool { return from+to == 3 })
	if e, err := do(1, false, ""); err != nil || e != old {
		t.Fatalf("get a via node 1, which cannot reach node 2 = %+v, %v; want the acked %+v", e, err, old)
	}

	checkHistory(t, c, []string{"a"}, history, true)

	for node := 1; node <= 3; node++ {
		if e, err := c.clients[node-1].Get(ctx, "a"); err != nil || e.Value != "new" || !old.Tag().Less(e.Tag()) {
			t.Errorf("get a via node %d after reads through every node = %+v, %v; want %q with a tag above %v", node, e, err, "new", old.Tag())
		}
	}
}
