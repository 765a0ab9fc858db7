// Package partition cuts and degrades the network between the guests of one
// run.
//
// All guest-to-guest traffic of a run crosses the run's bridge network
// namespace: each guest's eth0 is the peer of one veth port (g<last octet>)
// attached to the Linux bridge there. Partitions and packet loss are enforced
// on those ports by one nftables table named "pontoon_partition" that is
// replaced in a single netlink transaction, so every guest switches from the
// old connectivity to the new one at the same instant. The table is either a
// netdev table hooked on each port's ingress, or a bridge table hooked on the
// bridge's prerouting that tells ports apart by name (Backend): Apply probes
// the kernel once per process and takes the one whose family can reject
// (nft_reject_netdev, else nft_reject_bridge as in Debian 12's kernel), so
// reject mode and Cut work on both kinds of kernel; drop mode works with
// neither (see nft.go).
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
//	          Impairment and its validation           (pure)
//	compile   State + Backend -> Plan: RuleSet (tables, chains, rules
//	          and set elements as plain data) + Shaping (qdiscs) (pure)
//	backend   which Backend the kernel supports, probed once (kernel)
//	apply     Plan -> one nftables transaction + tc   (kernel)
//	state     Apply, Heal, Status, ApplyFor; JSON in the run's state dir
//
// Partitions apply to IPv4 traffic between guests. ARP always passes so that
// a dropped peer looks like a silent host (timeouts), not a missing one.
package partition
