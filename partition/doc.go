// Package partition cuts and degrades the network between the guests of one
// run.
//
// All guest-to-guest traffic of a run crosses the run's bridge network
// namespace: each guest's eth0 is the peer of one veth port (g<last octet>)
// attached to the Linux bridge there. Partitions and packet loss are enforced
// on those ports by one nftables table named "pontoon_partition". A guest is
// known by its port: a packet's row class comes from the port it enters by,
// its column class from its IPv4 destination where it enters (so reject mode
// can answer it) and from the port it leaves by (so nothing a guest writes in
// a packet, and no broadcast, gets it across). The blocked pairs are held as
// classes of guests and ranges of classes (matrix.go), a few hundred set
// elements on a full bridge. A change is one generation switch of the kernel
// (commit.go); Status reads what is in force back (readback.go).
//
// The table is either a netdev table hooked on each port's ingress and
// egress, or a bridge table hooked on the bridge's prerouting and
// postrouting (Backend): Apply takes the one whose family can reject
// (nft_reject_netdev, else nft_reject_bridge as in Debian 12's kernel), so
// reject mode and Cut work on both kinds of kernel; drop mode works with
// neither.
//
// Rate limits and netem impairments are traffic-control qdiscs on the egress
// side of the link they shape: the ports for traffic delivered to a guest,
// and the guest's own eth0 for traffic it sends, so that every packet meets
// the partition table before it can reach another guest (see tc.go).
// Inside a guest's namespace partition touches only its own root qdisc on
// eth0 (handle QdiscMajor) and, with Cut, sockets crossing the partition; no
// other table of the bridge namespace is read or changed.
//
// The package is layered like the rest of pontoon:
//
//	model     Partition (blocked ordered pairs), constructors, ParseSpec;
//	          Impairment and its validation; State and its changes (pure)
//	compile   State + Backend -> Plan: RuleSet (class matrix, chains,
//	          rules as plain data) + Shaping (qdiscs)        (pure)
//	backend   which Backend the kernel supports, probed when needed (kernel)
//	commit    RuleSet -> the partition table, atomically; tc (kernel)
//	apply     Update, Apply, Heal, Status, ApplyFor, Refresh under the
//	          bridge's lock; the record in the run's state dir
//	stats     Stats: what each blocked pair and impairment stopped, counted
//	          by the table (stats_rules.go) and by tc (kernel)
//	events    every change in the bridge's event log (package eventlog),
//	          with who asked (Target.Source) and the commit time
//	services  service addresses (AddService, RemoveService, Services): NAT
//	          rules compiled with the partition and committed in its
//	          transaction (service*.go)
//
// Partitions apply to all traffic between guests (the bridge's port security
// lets guests send IPv4 and ARP only). ARP always passes so that a dropped
// peer looks like a silent host (timeouts), not a missing one, and a one-way
// block leaves the other way's address resolution alone.
package partition
