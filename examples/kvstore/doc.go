// Package kvstore is a small replicated key-value store that shows how a
// quorum system behaves under network partitions. It is pontoon's example
// service: run three kvnode processes on a pontoon bridge, cut the network
// between them, and watch the majority side keep serving while the minority
// side refuses with HTTP 503.
//
// # Replication
//
// Every node is a replica and a coordinator; there is no leader. Per key a
// replica keeps one Entry ordered by its Tag (Version, then Writer). A
// replica only ever replaces an entry with one of a higher tag.
//
// A write through any node runs two rounds: query (read the tag of the key
// from a majority, this node included) and store (store the value under
// Tag{max+1, this node} on a majority). A read queries a majority, takes the
// highest entry and, unless a majority already holds it, stores it on a
// majority before answering; this write-back makes reads linearizable.
//
// Each round waits for a majority of nodes, each peer bounded by the peer
// timeout (Config.Timeout, kvnode --timeout, default 300ms). A node that
// cannot reach a majority answers HTTP 503 with
// {"error":"no quorum: reached N of M nodes","reached":N,"nodes":M,"phase":P}.
// Phase "query" means nothing was written; phase "store" means the write's
// outcome is unknown (some nodes may hold it). Every acknowledged write is on
// a majority and any two majorities share a node, so no acknowledged write
// is lost when a partition heals. Until a newer write replaces it, a value
// left behind by a write of unknown outcome is missed by reads whose majority
// lacks it and returned by the first read whose majority includes a node
// holding it; that read writes it back to a majority, so every later read
// returns it too. Both answers are linearizable: a write of unknown outcome
// may take effect at any moment after it began.
//
// # Limits
//
// State is kept in memory. A restarted node comes back empty: it counts as a
// replica that lost its data, so a restart combined with a partition can lose
// acknowledged writes, and restarting a node while one of its own writes is
// unacknowledged can leave two values under one tag. Demonstrations should
// partition nodes, not restart them.
package kvstore
