package kvstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeNet decides which peer RPCs get through. Nodes are split into two
// sides; an RPC between sides fails at once ("refuse", like a TCP reset) or
// hangs until its deadline ("drop", like a silently dropped packet). A rule
// can refuse more RPCs, such as one link or one kind of request, to steer a
// test into an exact interleaving.
type fakeNet struct {
	base *http.Transport
	ids  map[string]int // host:port -> node id

	mu     sync.Mutex
	side   map[int]bool // nodes cut off from the rest
	refuse func(from, to int, r *http.Request) bool
	drop   bool
}

var errFakeRefused = errors.New("connection refused by fake partition")

// split cuts the given nodes off from all others; split() heals.
func (f *fakeNet) split(nodes ...int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.side = make(map[int]bool)
	for _, id := range nodes {
		f.side[id] = true
	}
}

// refuseWhen also refuses, at once, every RPC for which cut reports true;
// refuseWhen(nil) lifts the rule. split does not change it.
func (f *fakeNet) refuseWhen(cut func(from, to int, r *http.Request) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refuse = cut
}

func (f *fakeNet) blocked(from, to int, r *http.Request) (blocked, drop bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.side[from] != f.side[to] {
		return true, f.drop
	}
	return f.refuse != nil && f.refuse(from, to, r), false
}

// transport returns the peer RoundTripper of node from.
func (f *fakeNet) transport(from int) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		to, ok := f.ids[req.URL.Host]
		if !ok {
			return nil, fmt.Errorf("fake network: unknown host %q", req.URL.Host)
		}
		if blocked, drop := f.blocked(from, to, req); blocked {
			if req.Body != nil {
				req.Body.Close()
			}
			if drop {
				<-req.Context().Done()
				return nil, req.Context().Err()
			}
			return nil, errFakeRefused
		}
		return f.base.RoundTrip(req)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// syncBuffer collects a node's log lines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type cluster struct {
	net     *fakeNet
	clients []*Client // clients[i] talks to node i+1 directly, bypassing fakeNet
	logs    []*syncBuffer
}

// startCluster serves n nodes on loopback ephemeral ports; peer RPCs go
// through a fakeNet. Everything stops when the test ends.
func startCluster(t *testing.T, n int, timeout time.Duration, drop bool) *cluster {
	t.Helper()
	f := &fakeNet{base: &http.Transport{}, ids: make(map[string]int), drop: drop}
	var lns []net.Listener
	var addrs []string
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen for node %d: %v", i+1, err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
		f.ids[ln.Addr().String()] = i + 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, n)
	c := &cluster{net: f}
	clientTr := &http.Transport{}
	for i := range n {
		lb := &syncBuffer{}
		node, err := NewNode(Config{ID: i + 1, Peers: addrs, Timeout: timeout, Transport: f.transport(i + 1), Logger: log.New(lb, "", 0)})
		if err != nil {
			t.Fatalf("new node %d: %v", i+1, err)
		}
		go func() { done <- node.Serve(ctx, lns[i]) }()
		c.logs = append(c.logs, lb)
		c.clients = append(c.clients, NewClient(addrs[i], &http.Client{Transport: clientTr, Timeout: 10 * time.Second}))
	}
	t.Cleanup(func() {
		// Idle client connections first, so shutdown has nothing to wait for.
		clientTr.CloseIdleConnections()
		f.base.CloseIdleConnections()
		cancel()
		for range n {
			if err := <-done; err != nil {
				t.Errorf("node stopped with error: %v", err)
			}
		}
		f.base.CloseIdleConnections()
	})
	return c
}

func TestPartitionMinorityRejectsMajorityServes(t *testing.T) {
	for _, mode := range []struct {
		name string
		drop bool
	}{{"refuse", false}, {"drop", true}} {
		t.Run(mode.name, func(t *testing.T) {
			c := startCluster(t, 3, 100*time.Millisecond, mode.drop)
			ctx := context.Background()
			acked := make(map[string]string) // key -> latest acknowledged value
			put := func(node int, key, value string) {
				t.Helper()
				if _, err := c.clients[node-1].Put(ctx, key, value); err != nil {
					t.Fatalf("put %s=%s via node %d: %v", key, value, node, err)
				}
				acked[key] = value
			}
			for i := range 5 {
				put(1, fmt.Sprintf("k%d", i), fmt.Sprintf("before-%d", i))
			}

			c.net.split(3)

			_, err := c.clients[2].Put(ctx, "minority", "must not be stored")
			var nq *NoQuorumError
			if !errors.As(err, &nq) || !errors.Is(err, ErrNoQuorum) {
				t.Fatalf("put via isolated node 3: error = %v, want *NoQuorumError", err)
			}
			if *nq != (NoQuorumError{Reached: 1, Nodes: 3, Phase: PhaseQuery}) {
				t.Errorf("put via isolated node 3: %+v, want reached 1 of 3 in phase query", *nq)
			}
			if got := err.Error(); !strings.Contains(got, "no quorum: reached 1 of 3 nodes") {
				t.Errorf("put via isolated node 3: error %q lacks \"no quorum: reached 1 of 3 nodes\"", got)
			}
			if _, err := c.clients[2].Get(ctx, "k0"); !errors.Is(err, ErrNoQuorum) {
				t.Errorf("get via isolated node 3: error = %v, want ErrNoQuorum", err)
			}
			if !strings.Contains(c.logs[2].String(), "quorum lost: reached 1 of 3 nodes") {
				t.Errorf("node 3 log lacks \"quorum lost\":\n%s", c.logs[2])
			}
			h, err := c.clients[2].Health(ctx)
			if err != nil || h.Quorum || h.Reachable != 1 || h.Peers[0].Reachable || h.Peers[0].Error == "" {
				t.Errorf("health of node 3 = %+v, %v; want no quorum, 1 reachable, node 1 unreachable with a reason", h, err)
			}

			// The majority side keeps accepting writes through either node.
			for i := range 8 {
				put(1+i%2, fmt.Sprintf("k%d", i%6), fmt.Sprintf("during-%d", i))
			}
			if e, err := c.clients[1].Get(ctx, "k0"); err != nil || e.Value != acked["k0"] {
				t.Errorf("get k0 via node 2 during partition = %+v, %v; want %q", e, err, acked["k0"])
			}
			if h, err := c.clients[0].Health(ctx); err != nil || !h.Quorum || h.Reachable != 2 {
				t.Errorf("health of node 1 = %+v, %v; want quorum with 2 reachable", h, err)
			}

			c.net.split()

			for node := 1; node <= 3; node++ {
				for key, want := range acked {
					e, err := c.clients[node-1].Get(ctx, key)
					if err != nil || e.Value != want {
						t.Errorf("after heal, get %s via node %d = %+v, %v; want %q", key, node, e, err, want)
					}
				}
				if _, err := c.clients[node-1].Get(ctx, "minority"); !errors.Is(err, ErrNotFound) {
					t.Errorf("after heal, get of the rejected write via node %d: error = %v, want ErrNotFound", node, err)
				}
			}
			if !strings.Contains(c.logs[2].String(), "quorum regained") {
				t.Errorf("node 3 log lacks \"quorum regained\":\n%s", c.logs[2])
			}
		})
	}
}

func TestConcurrentWritersNoAckedWriteLost(t *testing.T) {
	for _, chaos := range []bool{false, true} {
		name := "steady"
		if chaos {
			name = "with partitions"
		}
		t.Run(name, func(t *testing.T) {
			// The fake network refuses cut RPCs at once, so the peer
			// timeout only ends RPCs on a busy machine; "steady" must
			// never see a no-quorum answer, even under -race on a loaded
			// host.
			c := startCluster(t, 3, 5*time.Second, false)
			ctx := context.Background()
			keys := []string{"a", "b", "c"}
			const writers, opsPerWriter = 6, 40

			var mu sync.Mutex
			var history []op
			var wg sync.WaitGroup
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					cl := c.clients[w%3] // two writers per node: same-node concurrency too
					rng := rand.New(rand.NewPCG(uint64(w), 1))
					for i := range opsPerWriter {
						o := op{key: keys[rng.IntN(len(keys))], write: rng.IntN(3) > 0, start: time.Now()}
						var e Entry
						if o.write {
							o.value = fmt.Sprintf("w%d-%d", w, i)
							e, o.err = cl.Put(ctx, o.key, o.value)
						} else {
							e, o.err = cl.Get(ctx, o.key)
							if errors.Is(o.err, ErrNotFound) {
								o.err = nil // a read of a key never written: zero tag
							}
							o.value = e.Value
						}
						o.end = time.Now()
						o.tag = e.Tag()
						mu.Lock()
						history = append(history, o)
						mu.Unlock()
					}
				}()
			}
			stop := make(chan struct{})
			chaosDone := make(chan struct{})
			go func() {
				defer close(chaosDone)
				for i := 0; chaos; i++ {
					c.net.split(1 + i%3)
					select {
					case <-stop:
						return
					case <-time.After(15 * time.Millisecond):
					}
					c.net.split()
					select {
					case <-stop:
						return
					case <-time.After(15 * time.Millisecond):
					}
				}
			}()
			wg.Wait()
			close(stop)
			<-chaosDone
			c.net.split()

			checkHistory(t, c, keys, history, chaos)
		})
	}
}

func TestPeerListOrderMismatchIsDetected(t *testing.T) {
	// Node 3 lists the peers in another order, so it believes it is node 2.
	f := &fakeNet{base: &http.Transport{}, ids: make(map[string]int)}
	var lns []net.Listener
	var addrs []string
	for i := range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
		f.ids[ln.Addr().String()] = i + 1
	}
	swapped := []string{addrs[0], addrs[2], addrs[1]}
	cfgs := []Config{
		{ID: 1, Peers: addrs},
		{ID: 2, Peers: addrs},
		{ID: 2, Peers: swapped},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 3)
	for i, cfg := range cfgs {
		cfg.Timeout = 200 * time.Millisecond
		cfg.Transport = f.transport(i + 1)
		cfg.Logger = log.New(io.Discard, "", 0)
		n, err := NewNode(cfg)
		if err != nil {
			t.Fatal(err)
		}
		go func() { done <- n.Serve(ctx, lns[i]) }()
	}
	t.Cleanup(func() {
		f.base.CloseIdleConnections()
		cancel()
		for range 3 {
			if err := <-done; err != nil {
				t.Errorf("node stopped with error: %v", err)
			}
		}
		f.base.CloseIdleConnections()
	})

	h, err := NewClient(addrs[0], nil).Health(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !h.Peers[1].Reachable {
		t.Errorf("node 2 should be reachable from node 1: %+v", h.Peers[1])
	}
	if p := h.Peers[2]; p.Reachable || !strings.Contains(p.Error, "same --peers on every node") {
		t.Errorf("node 3 with a reordered peer list: %+v, want unreachable with a hint about --peers", p)
	}
}

func TestCheckThroughCluster(t *testing.T) {
	c := startCluster(t, 3, 100*time.Millisecond, false)
	ctx := context.Background()
	r, err := Check(ctx, c.clients[1], 12, "chk")
	if err != nil || !r.OK() || r.Verified != 12 || !strings.HasPrefix(r.String(), "check ok: 12 of 12 keys") {
		t.Fatalf("Check = %+v (%s), %v; want 12 of 12 verified", r, r, err)
	}
	// Another node sees what the check wrote.
	if e, err := c.clients[2].Get(ctx, "chk-11"); err != nil || !strings.HasPrefix(e.Value, "chk-11@") {
		t.Errorf("get chk-11 via node 3 = %+v, %v; want the value the check wrote", e, err)
	}

	c.net.split(2)
	r, err = Check(ctx, c.clients[1], 3, "chk")
	if err == nil || r.OK() || r.Written != 0 || len(r.Failures) != 3 || !strings.Contains(r.String(), "check FAILED") {
		t.Errorf("Check via isolated node = %+v (%s), %v; want every write failed", r, r, err)
	}
	if !strings.Contains(r.Failures[0], "no quorum: reached 1 of 3 nodes") {
		t.Errorf("first failure %q lacks the no-quorum reason", r.Failures[0])
	}

	if _, err := Check(ctx, c.clients[0], 0, "chk"); err == nil {
		t.Error("Check with 0 keys: want an error")
	}
}
