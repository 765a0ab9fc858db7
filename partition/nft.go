package partition

// Where the partition table sits, and why there are two kinds.
//
// Reject mode must answer a blocked TCP packet with a reset, built from the
// offending packet and sent back out of the sender's port so the sender sees
// the destination answer (no MAC, sysctl or routing of the bridge namespace
// involved). The kernel can do that in two families, and kernels differ in
// which one they build:
//
//   - netdev (BackendNetdev): base chains on the ingress hook of each guest's
//     port, reject by nft_reject_netdev (CONFIG_NFT_REJECT_NETDEV). Loss
//     towards a guest sits on the port's egress hook. google/nftables cannot
//     attach one netdev chain to several devices (NFTA_HOOK_DEVS), hence one
//     small base chain per port jumping to the shared "filter" chain.
//   - bridge (BackendBridge): one base chain on the bridge's prerouting hook
//     (the only hooks, with input, where nft_reject_bridge may run) that
//     sends each guest port's frames (meta iifname) to the same "filter"
//     chain, and one on postrouting (meta oifname) for loss towards a guest.
//     Only generic meta keys are used, so nft_meta_bridge is not needed.
//
// Debian 12's stock kernel (6.1) has bridge reject but not netdev reject;
// others have the opposite. Apply probes the kernel once per process
// (backend.go) and uses netdev when it can reject there, else bridge. Drop
// mode, loss and class marking live in the same table, so one transaction
// switches everything, and every transaction also deletes the table of the
// other family, so a change of backend never leaves one behind.

import (
	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/nftpool"
	"github.com/pontoon-dev/pontoon/internal/nftwire"
)

// elemChunk bounds the set elements sent in one netlink message so a large
// batch stays well inside the socket buffer; all chunks are still one
// transaction.
const elemChunk = 512

// flush sends the batch queued on c, a pooled connection, as one transaction
// and returns the kernel's verdict.
func flush(c *nftables.Conn) error { return nftwire.Flush(c) }

// Release closes the nftables connections pontoon keeps open (they close by themselves
// after a second without use). An open connection holds a reference to its namespace, so
// call Release before relying on a bridge namespace disappearing at once. It waits for the
// kernel.
func Release() { nftpool.Release() }
