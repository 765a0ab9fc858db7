package kvstore

import (
	"errors"
	"fmt"
)

// ErrNoQuorum matches (with errors.Is) every *NoQuorumError, on the node and
// in the Client.
var ErrNoQuorum = errors.New("no quorum")

// ErrNotFound is returned (wrapped) by Client.Get when a majority of nodes
// holds no value for the key; the node answers HTTP 404.
var ErrNotFound = errors.New("key not found")

// Phases of a quorum operation, reported in NoQuorumError.Phase.
const (
	// PhaseQuery is the first round, which reads tags from a majority.
	// A request that failed here changed nothing on any node.
	PhaseQuery = "query"
	// PhaseStore is the second round, which stores an entry on a majority
	// (the new value of a write, or the write-back of a read). A write that
	// failed here has an unknown outcome: some nodes may hold the value and
	// later reads may return it. A read that failed here changed nothing a
	// client could observe.
	PhaseStore = "store"
)

// NoQuorumError reports that a node could not reach a majority of the
// cluster within its peer timeout. The node answers HTTP 503 with a JSON body
// {"error": Error(), "reached": R, "nodes": N, "phase": P}.
type NoQuorumError struct {
	// Reached counts the nodes that answered, this node included.
	Reached int `json:"reached"`
	// Nodes is the cluster size (length of --peers).
	Nodes int `json:"nodes"`
	// Phase is PhaseQuery or PhaseStore.
	Phase string `json:"phase"`
}

// Error returns "no quorum: reached R of N nodes".
func (e *NoQuorumError) Error() string {
	return fmt.Sprintf("no quorum: reached %d of %d nodes", e.Reached, e.Nodes)
}

// Is makes errors.Is(err, ErrNoQuorum) true.
func (e *NoQuorumError) Is(target error) bool { return target == ErrNoQuorum }

// StatusError is an HTTP answer from a node that the Client has no more
// specific error for (bad request, payload too large, internal error).
type StatusError struct {
	// Code is the HTTP status code.
	Code int
	// Message is the node's "error" field, or the raw body when it had none.
	Message string
}

// Error returns "HTTP <code>: <message>".
func (e *StatusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Code, e.Message) }
