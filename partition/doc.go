// Package partition cuts and degrades the network between the guests of one
// run.
//
// All guest-to-guest traffic of a run crosses the run's bridge network
// namespace: each guest's eth0 is the peer of one veth port (g<last octet>)
// attached to the Linux bridge there. Partitions and packet loss are enforced
// on those ports by one nftables table (netdev family, named
// "pontoon_partition") that is replaced in a single netlink transaction, so
// every guest switches from the old connectivity to the new one at the same
// instant. Rate limits and netem impairments are traffic-control qdiscs on the
// egress side of the link they shape: the ports for traffic delivered to a
// guest, and the guest's own eth0 for traffic it sends, so that every packet
// meets the partition table before it can reach another guest (see tc.go).
// Inside a guest's namespace partition touches only its own root qdisc on
// eth0 (handle QdiscMajor) and, with Cut, sockets crossing the partition; no
// other table of the bridge namespace is read or changed.
//
// The package is layered like the rest of pontoon:
//
//	model     Partition (blocked ordered pairs), constructors, ParseSpec;
//	          Impairment and its validation           (pure)
//	compile   State -> Plan: RuleSet (tables, chains, rules and set
//	          elements as plain data) + Shaping (qdiscs) (pure)
//	apply     Plan -> one nftables transaction + tc   (kernel)
//	state     Apply, Heal, Status, ApplyFor; JSON in the run's state dir
//
// Partitions apply to IPv4 traffic between guests. ARP always passes so that
// a dropped peer looks like a silent host (timeouts), not a missing one.
package partition
