package kvstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// replicaState is a replica's answer to GET and PUT /replica/{key}: what it
// holds for the key after the request. Node lets the coordinator detect a
// peer list given in a different order on another node.
type replicaState struct {
	Node    int    `json:"node"`
	Found   bool   `json:"found"`
	Value   string `json:"value"`
	Version uint64 `json:"version"`
	Writer  int    `json:"writer"`
}

// replicaWrite is the body of PUT /replica/{key}.
type replicaWrite struct {
	Value   string `json:"value"`
	Version uint64 `json:"version"`
	Writer  int    `json:"writer"`
}

// pingReply is the body of GET /ping.
type pingReply struct {
	Node  int `json:"node"`
	Nodes int `json:"nodes"`
}

// reply is one node's contribution to a quorum round.
type reply struct {
	found bool
	entry Entry
}

// highest returns the reply with the highest tag; a found reply beats every
// missing one.
func highest(rs []reply) reply {
	var best reply
	for _, r := range rs {
		if r.found && (!best.found || best.entry.Tag().Less(r.entry.Tag())) {
			best = r
		}
	}
	return best
}

// put coordinates a client write: learn the highest version from a
// majority, then store value under a higher tag on a majority.
func (n *Node) put(ctx context.Context, key, value string) (Entry, error) {
	rs, err := n.query(ctx, key)
	if err != nil {
		return Entry{}, err
	}
	e := Entry{
		Key:     key,
		Value:   value,
		Version: n.nextVersion(key, highest(rs).entry.Version),
		Writer:  n.id,
	}
	if err := n.storeOnMajority(ctx, e); err != nil {
		return Entry{}, err
	}
	n.log.Printf("put %q=%s %s acked", key, short(value), e.Tag())
	return e, nil
}

// get coordinates a client read: read a majority and return the highest
// entry, first writing it back to a majority unless the majority already
// holds it. The write-back is what stops a later read from returning an
// older value than this one did.
func (n *Node) get(ctx context.Context, key string) (Entry, error) {
	rs, err := n.query(ctx, key)
	if err != nil {
		return Entry{}, err
	}
	best := highest(rs)
	if !best.found {
		return Entry{}, ErrNotFound
	}
	holding := 0
	for _, r := range rs {
		if r.found && r.entry.Tag() == best.entry.Tag() {
			holding++
		}
	}
	if holding < n.majority() {
		if err := n.storeOnMajority(ctx, best.entry); err != nil {
			return Entry{}, err
		}
		n.log.Printf("get %q repaired %s on a majority", key, best.entry.Tag())
	}
	return best.entry, nil
}

// nextVersion returns a version above seen and above every version this
// node issued before for key, so two concurrent writes through the same
// node never share a tag.
func (n *Node) nextVersion(key string, seen uint64) uint64 {
	n.issuedMu.Lock()
	defer n.issuedMu.Unlock()
	v := max(seen, n.issued[key]) + 1
	n.issued[key] = v
	return v
}

// query is the first round: every node's current entry for key.
func (n *Node) query(ctx context.Context, key string) ([]reply, error) {
	self, found := n.store.get(key)
	return n.round(ctx, PhaseQuery, reply{found: found, entry: self}, func(ctx context.Context, p peer) (reply, error) {
		var st replicaState
		if err := n.rpc(ctx, p, http.MethodGet, key, nil, &st); err != nil {
			return reply{}, err
		}
		return st.reply(key), nil
	})
}

// storeOnMajority is the second round: make a majority hold e or a higher
// tag for e.Key.
func (n *Node) storeOnMajority(ctx context.Context, e Entry) error {
	self := n.store.apply(e)
	w := replicaWrite{Value: e.Value, Version: e.Version, Writer: e.Writer}
	_, err := n.round(ctx, PhaseStore, reply{found: true, entry: self}, func(ctx context.Context, p peer) (reply, error) {
		var st replicaState
		if err := n.rpc(ctx, p, http.MethodPut, e.Key, w, &st); err != nil {
			return reply{}, err
		}
		return st.reply(e.Key), nil
	})
	return err
}

func (st replicaState) reply(key string) reply {
	return reply{found: st.Found, entry: Entry{Key: key, Value: st.Value, Version: st.Version, Writer: st.Writer}}
}

// round runs call against every other node concurrently, each bounded by
// the peer timeout, and returns once a majority (self counted) has answered
// or every call has ended. Calls still running keep going in the background
// so that slower nodes also receive the write.
func (n *Node) round(ctx context.Context, phase string, self reply, call func(context.Context, peer) (reply, error)) ([]reply, error) {
	type result struct {
		r   reply
		err error
	}
	others := len(n.peers) - 1
	ch := make(chan result, others) // buffered: late calls never block
	for _, p := range n.peers {
		if p.id == n.id {
			continue
		}
		n.bg.Add(1)
		go func() {
			defer n.bg.Done()
			seq := n.seq.Add(1)
			// Detached from ctx: a client hanging up must not cut a
			// replica write short or be mistaken for an unreachable peer.
			rctx, cancel := context.WithTimeout(context.Background(), n.timeout)
			r, err := call(rctx, p)
			cancel()
			n.observe(p, seq, err)
			ch <- result{r, err}
		}()
	}
	rs := []reply{self}
	for pending := others; len(rs) < n.majority() && pending > 0; pending-- {
		select {
		case res := <-ch:
			if res.err == nil {
				rs = append(rs, res.r)
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if len(rs) < n.majority() {
		return nil, &NoQuorumError{Reached: len(rs), Nodes: len(n.peers), Phase: phase}
	}
	return rs, nil
}

// rpc sends one replica request to p and decodes its answer into out.
func (n *Node) rpc(ctx context.Context, p peer, method, key string, in any, out *replicaState) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode replica request for %q: %w", key, err)
		}
		body = bytes.NewReader(b)
	}
	if err := n.call(ctx, p, method, "/replica/"+escapeKey(key), body, out); err != nil {
		return err
	}
	if out.Node != p.id {
		return fmt.Errorf("%s answered as node %d, expected node %d; give --peers in the same order on every node", p.addr, out.Node, p.id)
	}
	return nil
}

// ping asks p for its identity; the answer must match this node's peer list.
func (n *Node) ping(ctx context.Context, p peer) error {
	var pr pingReply
	if err := n.call(ctx, p, http.MethodGet, "/ping", nil, &pr); err != nil {
		return err
	}
	if pr.Node != p.id || pr.Nodes != len(n.peers) {
		return fmt.Errorf("%s answered as node %d of %d, expected node %d of %d; give the same --peers on every node", p.addr, pr.Node, pr.Nodes, p.id, len(n.peers))
	}
	return nil
}

// call does one HTTP exchange with p and decodes a 200 JSON answer into out.
func (n *Node) call(ctx context.Context, p peer, method, path string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+p.addr+path, body)
	if err != nil {
		return fmt.Errorf("build %s %s for node %d: %w", method, path, p.id, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := n.hc.Do(req)
	if err != nil {
		return err
	}
	defer func() {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
	}()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("node %d answered %s %s with HTTP %d: %s", p.id, method, path, resp.StatusCode, bytes.TrimSpace(msg))
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8*MaxValueBytes)).Decode(out); err != nil {
		return fmt.Errorf("decode answer of node %d to %s %s: %w", p.id, method, path, err)
	}
	return nil
}

// observe records the outcome of a peer RPC started as number seq and logs
// changes of the peer's reachability and of this node's quorum.
func (n *Node) observe(p peer, seq uint64, err error) {
	n.stateMu.Lock()
	defer n.stateMu.Unlock()
	i := p.id - 1
	if seq < n.upSeq[i] {
		return // an RPC started later has already reported
	}
	n.upSeq[i] = seq
	up := err == nil
	if up != n.up[i] {
		n.up[i] = up
		if up {
			n.log.Printf("peer %d (%s) reachable", p.id, p.addr)
		} else {
			n.log.Printf("peer %d (%s) unreachable: %s", p.id, p.addr, n.describe(err))
		}
	}
	reached := 0
	for _, u := range n.up {
		if u {
			reached++
		}
	}
	if q := reached >= n.majority(); q != n.quorum {
		n.quorum = q
		if q {
			n.log.Printf("quorum regained: reached %d of %d nodes", reached, len(n.peers))
		} else {
			n.log.Printf("quorum lost: reached %d of %d nodes", reached, len(n.peers))
		}
	}
}

// describe shortens a peer RPC error for a log line.
func (n *Node) describe(err error) string {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Sprintf("no answer within %v", n.timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// probeLoop pings every peer each interval until ctx is done.
func (n *Node) probeLoop(ctx context.Context) {
	t := time.NewTicker(n.probe)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n.probeAll()
		}
	}
}

// probeAll pings every peer concurrently, records the outcomes and returns
// them indexed by node id - 1 (nil for this node and reachable peers).
func (n *Node) probeAll() []error {
	errs := make([]error, len(n.peers))
	done := make(chan struct{}, len(n.peers))
	for _, p := range n.peers {
		if p.id == n.id {
			continue
		}
		go func() {
			seq := n.seq.Add(1)
			ctx, cancel := context.WithTimeout(context.Background(), n.timeout)
			err := n.ping(ctx, p)
			cancel()
			n.observe(p, seq, err)
			errs[p.id-1] = err
			done <- struct{}{}
		}()
	}
	for range len(n.peers) - 1 {
		<-done
	}
	return errs
}

// short quotes a value for a log line, cut to keep the line short.
func short(v string) string {
	const limit = 24
	if len(v) > limit {
		// Cut on a rune boundary so the quoted form stays readable.
		r := []rune(v)
		if len(r) > limit {
			return fmt.Sprintf("%q...", string(r[:limit]))
		}
	}
	return fmt.Sprintf("%q", v)
}
