package kvstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode/utf8"
)

// Health is the body of GET /health: this node and, probed live, which
// other nodes it can reach.
type Health struct {
	// ID is this node's id.
	ID int `json:"id"`
	// Addr is this node's entry in --peers.
	Addr string `json:"addr"`
	// Nodes is the cluster size.
	Nodes int `json:"nodes"`
	// Reachable counts the nodes that answered the probe, this one included.
	Reachable int `json:"reachable"`
	// Quorum reports whether Reachable is a majority of Nodes, i.e. whether
	// this node can serve reads and writes right now.
	Quorum bool `json:"quorum"`
	// Peers lists every node, this one included, in --peers order.
	Peers []PeerHealth `json:"peers"`
}

// PeerHealth is one node's line in Health.
type PeerHealth struct {
	// ID is the node's id, its 1-based position in --peers.
	ID int `json:"id"`
	// Addr is the node's --peers entry.
	Addr string `json:"addr"`
	// Self marks the node that answered the health request.
	Self bool `json:"self,omitempty"`
	// Reachable reports whether the node answered a ping within the peer
	// timeout (always true for Self).
	Reachable bool `json:"reachable"`
	// Error says why an unreachable node did not answer.
	Error string `json:"error,omitempty"`
}

// errorBody is the JSON body of every non-200 answer.
type errorBody struct {
	Error   string `json:"error"`
	Reached int    `json:"reached,omitempty"`
	Nodes   int    `json:"nodes,omitempty"`
	Phase   string `json:"phase,omitempty"`
}

// Handler returns the node's HTTP API:
//
//	PUT /kv/{key}       body = raw UTF-8 value -> 200 Entry | 503 no quorum
//	GET /kv/{key}       -> 200 Entry | 404 | 503 no quorum
//	GET /health         -> 200 Health (always 200 while the process runs)
//	GET /ping           -> 200 {"node","nodes"} (used by peers)
//	GET /replica/{key}  -> 200 replica state (used by peers)
//	PUT /replica/{key}  body {"value","version","writer"} -> 200 replica state (used by peers)
//
// Keys are one path segment: clients escape "/" and other reserved bytes.
func (n *Node) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /kv/{key}", n.handlePut)
	mux.HandleFunc("GET /kv/{key}", n.handleGet)
	mux.HandleFunc("GET /health", n.handleHealth)
	mux.HandleFunc("GET /ping", n.handlePing)
	mux.HandleFunc("GET /replica/{key}", n.handleReplicaGet)
	mux.HandleFunc("PUT /replica/{key}", n.handleReplicaPut)
	return mux
}

func (n *Node) handlePut(w http.ResponseWriter, r *http.Request) {
	key, ok := pathKey(w, r)
	if !ok {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxValueBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("value for key %q is over %d bytes; store smaller values", key, MaxValueBytes))
			return
		}
		writeError(w, http.StatusBadRequest, fmt.Sprintf("read value for key %q: %v", key, err))
		return
	}
	if !utf8.Valid(body) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("value for key %q is not valid UTF-8; encode binary data first (e.g. base64)", key))
		return
	}
	e, err := n.put(r.Context(), key, string(body))
	if err != nil {
		n.fail(w, "put", key, err)
		return
	}
	writeJSON(w, http.StatusOK, e)
}

func (n *Node) handleGet(w http.ResponseWriter, r *http.Request) {
	key, ok := pathKey(w, r)
	if !ok {
		return
	}
	e, err := n.get(r.Context(), key)
	if err != nil {
		n.fail(w, "get", key, err)
		return
	}
	writeJSON(w, http.StatusOK, e)
}

// fail answers a failed client request and logs the rejections that a
// partition causes.
func (n *Node) fail(w http.ResponseWriter, op, key string, err error) {
	var nq *NoQuorumError
	switch {
	case errors.As(err, &nq):
		n.log.Printf("%s %q rejected: %v", op, key, nq)
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: nq.Error(), Reached: nq.Reached, Nodes: nq.Nodes, Phase: nq.Phase})
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("key %q not found", key))
	default:
		// Only a client that went away gets here; it will not read this.
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("%s %q: %v", op, key, err))
	}
}

func (n *Node) handleHealth(w http.ResponseWriter, r *http.Request) {
	errs := n.probeAll()
	h := Health{ID: n.id, Addr: n.Addr(), Nodes: len(n.peers)}
	for _, p := range n.peers {
		ph := PeerHealth{ID: p.id, Addr: p.addr, Self: p.id == n.id, Reachable: errs[p.id-1] == nil}
		if !ph.Reachable {
			ph.Error = n.describe(errs[p.id-1])
		} else {
			h.Reachable++
		}
		h.Peers = append(h.Peers, ph)
	}
	h.Quorum = h.Reachable >= n.majority()
	writeJSON(w, http.StatusOK, h)
}

func (n *Node) handlePing(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, pingReply{Node: n.id, Nodes: len(n.peers)})
}

func (n *Node) handleReplicaGet(w http.ResponseWriter, r *http.Request) {
	key, ok := pathKey(w, r)
	if !ok {
		return
	}
	e, found := n.store.get(key)
	writeJSON(w, http.StatusOK, n.replicaState(e, found))
}

func (n *Node) handleReplicaPut(w http.ResponseWriter, r *http.Request) {
	key, ok := pathKey(w, r)
	if !ok {
		return
	}
	var rw replicaWrite
	// JSON escaping can grow a value up to six times (\u00XX).
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 6*MaxValueBytes+4096))
	if err := dec.Decode(&rw); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("decode replica write for key %q: %v", key, err))
		return
	}
	if rw.Version < 1 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("replica write for key %q: version %d out of range; writes carry version >= 1", key, rw.Version))
		return
	}
	if rw.Writer < 1 || rw.Writer > len(n.peers) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("replica write for key %q: writer %d out of range 1..%d; give the same --peers on every node", key, rw.Writer, len(n.peers)))
		return
	}
	cur := n.store.apply(Entry{Key: key, Value: rw.Value, Version: rw.Version, Writer: rw.Writer})
	writeJSON(w, http.StatusOK, n.replicaState(cur, true))
}

func (n *Node) replicaState(e Entry, found bool) replicaState {
	return replicaState{Node: n.id, Found: found, Value: e.Value, Version: e.Version, Writer: e.Writer}
}

// pathKey extracts and checks {key}, answering 400 when it is unusable.
func pathKey(w http.ResponseWriter, r *http.Request) (string, bool) {
	key := r.PathValue("key")
	switch {
	case key == "":
		writeError(w, http.StatusBadRequest, "empty key; use /kv/{key} with a key of 1.."+fmt.Sprint(MaxKeyBytes)+" bytes")
		return "", false
	case len(key) > MaxKeyBytes:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("key of %d bytes is over the limit of %d; use a shorter key", len(key), MaxKeyBytes))
		return "", false
	case !utf8.ValidString(key):
		writeError(w, http.StatusBadRequest, "key is not valid UTF-8; use a UTF-8 key")
		return "", false
	}
	return key, true
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	// The status is already sent; a failed write means the client is gone.
	_ = json.NewEncoder(w).Encode(v)
}
