// Package names is each bridge's name server: a small DNS server in the bridge's network
// namespace, on the bridge's address (the guests' default gateway), UDP and TCP port 53.
//
// It answers A queries for every guest of the bridge, however the guest joined (`guest
// add`, a `pontoon run` child, the OCI hook from any engine), by its name, its hostname and
// its aliases, AAAA queries with the guest's IPv6 address on a dual-stack chain, and an empty
// answer for the other types of those names (AAAA too on an IPv4-only chain), so resolvers
// do not wait. The names come from the bridge's record in pontoon's state:
// the server checks with one stat per query whether the record changed and rereads it only
// then, so attaching a guest publishes its name without telling the server anything, and a
// guest that leaves stops resolving at once. Other names are forwarded to the resolvers guests
// used before there was a name server (netsetup.GuestResolvConf), over the protocol the
// query came in on. ResolvConf is the resolv.conf that names the server: `pontoon run` and
// testenv give it to their guests, Docker's runtime mounts it, and `pontoon exec` into a
// namespace pontoon created binds it (ResolvConfFile).
//
// The server speaks DNS over UDP and TCP as resolvers expect (RFC 1035, 6891, 7766): an
// answer bigger than the query's UDP limit (512 bytes without EDNS, the size its OPT record
// offers, at most 1232) goes back with TC set and without records, so that the resolver asks
// again over TCP; an OPT record in a query gets one in the answer; a TCP connection carries
// queries one after the other until it is idle for seconds. What is not a query gets no
// answer, a query that does not parse or asks other than one question FORMERR, another opcode
// NOTIMP. The UDP queries answered at once and the TCP connections open are bounded, so that
// a guest that floods the server does not exhaust it.
//
// DNS faults (AddFault) make the server answer some queries wrongly: per queried name or
// per asking guest, NXDOMAIN, SERVFAIL, a wrong address, a delayed answer, or none at all.
// They live in the bridge's data directory, so they go with the bridge, and the server
// rereads them, like the record, when their file changes.
//
// # Lifetime
//
// One process serves a bridge, and a record under the state directory (names/BRIDGE.json)
// says which. `pontoon bridge create` starts `pontoon names serve`, a process of its own
// session that outlives the command (Start): the command binds the server's sockets and
// hands them over, so the bridge answers names as soon as it returns, queries waiting in
// the sockets until the new process reads them. `pontoon run` and testenv serve from their
// own process for as long as they own the bridge (Listen). `bridge destroy` and gc stop a
// detached server themselves (Stop, Collect: SIGKILL, then its pidfd says it is gone); a
// server also leaves, within a second, when its bridge's record is removed or marked for
// removal behind its back. A server killed
// with SIGKILL leaves its record: Status reports it as dead, and the next `guest add` or
// `pontoon gc` starts a new one (Ensure, Collect). The OCI hook does not: it runs inside an
// engine's process tree and must stay short.
package names
