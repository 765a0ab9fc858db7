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
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	mnl "github.com/mdlayher/netlink"
	"github.com/pontoon-dev/pontoon/internal/nftrule"
	"golang.org/x/sys/unix"
)

// elemChunk bounds the set elements sent in one netlink message so a large
// batch stays well inside the socket buffer; all chunks are still one
// transaction.
const elemChunk = 512

// Connections to nf_tables are kept open between calls, per namespace.
//
// Closing a netfilter netlink socket runs nft_rcv_nl_event, which takes the
// namespace's commit mutex and waits for the pending "destroy" work of the
// previous transaction, i.e. an RCU grace period (~12 ms measured here, ~200
// times the commit itself). Closing after every apply would therefore make
// the next apply (and every other nftables user of that namespace) wait. A
// connection is closed after nftIdle without use, or by Release; a command
// about to exit hands it to Linger instead (linger.go).
//
// Connections are keyed by the namespace's inode, not its path, so a
// namespace re-created under the same path never gets a stale socket.
const nftIdle = time.Second

type nftConn struct {
	mu    sync.Mutex
	key   nsKey
	c     *nftables.Conn
	raw   *mnl.Conn // c's socket, for Linger
	timer *time.Timer
}

type nsKey struct{ dev, ino uint64 }

var nftPool = struct {
	sync.Mutex
	m map[nsKey]*nftConn
}{m: map[nsKey]*nftConn{}}

func netnsKey(nsPath string) (nsKey, error) {
	var st unix.Stat_t
	if err := unix.Stat(nsPath, &st); err != nil {
		return nsKey{}, fmt.Errorf("open bridge netns %q: %w", nsPath, err)
	}
	return nsKey{uint64(st.Dev), st.Ino}, nil
}

// withNft runs f with an nftables connection bound to the namespace at
// nsPath, without switching the calling thread's namespace. Calls for the
// same namespace are serialised, so batches never interleave.
func withNft(nsPath string, f func(c *nftables.Conn) error) error {
	key, err := netnsKey(nsPath)
	if err != nil {
		return err
	}
	nftPool.Lock()
	e := nftPool.m[key]
	if e == nil {
		e = &nftConn{key: key}
		nftPool.m[key] = e
	}
	nftPool.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.timer != nil {
		e.timer.Stop()
	}
	if e.c == nil {
		fd, err := os.Open(nsPath)
		if err != nil {
			return fmt.Errorf("open bridge netns %q: %w", nsPath, err)
		}
		var raw *mnl.Conn
		keep := func(c *mnl.Conn) error { raw = c; return nil }
		c, err := nftables.New(nftables.WithNetNSFd(int(fd.Fd())), nftables.AsLasting(), nftables.WithSockOptions(append(slices.Clip(nftSockOptions), keep)...))
		fd.Close() // the socket stays bound to the namespace once dialled
		if err != nil {
			return fmt.Errorf("open nftables in bridge netns %q: %w", nsPath, err)
		}
		e.c, e.raw = c, raw
	}
	err = f(e.c)
	if err != nil {
		// Answers to a failed batch may still be queued on the socket, where
		// the next request would read them as its own: start afresh.
		_ = e.c.CloseLasting()
		e.c, e.raw = nil, nil
	}
	e.timer = time.AfterFunc(nftIdle, func() { closeConn(e) })
	return err
}

// nftSockOptions make room for a whole batch and the answers to it, which
// the kernel sends at once after the commit: acknowledgements without a copy
// of each message (NETLINK_CAP_ACK: a copy of every message of a large batch
// is what overflowed the socket), and buffers past the system's default
// limits (a transaction must go in one message; the FORCE options are for
// CAP_NET_ADMIN, which changing nftables needs anyway). An answer lost anyway
// is covered by reading the table back (commitVerified). Tests replace them.
var nftSockOptions = []nftables.SockOption{
	func(c *mnl.Conn) error { return c.SetOption(mnl.CapAcknowledge, true) },
	func(c *mnl.Conn) error { return forceBuffer(c, unix.SO_RCVBUFFORCE, 4<<20) },
	func(c *mnl.Conn) error { return forceBuffer(c, unix.SO_SNDBUFFORCE, 4<<20) },
}

// plainBuffer is the option forceBuffer falls back to: the FORCE options need CAP_NET_ADMIN
// over the initial user namespace, which root of a user namespace lacks even where it may
// change nftables; the plain ones are capped at net.core.rmem_max and wmem_max.
var plainBuffer = map[int]int{unix.SO_RCVBUFFORCE: unix.SO_RCVBUF, unix.SO_SNDBUFFORCE: unix.SO_SNDBUF}

func forceBuffer(c *mnl.Conn, opt, size int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, size)
		if errors.Is(serr, unix.EPERM) && plainBuffer[opt] != 0 {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, plainBuffer[opt], size)
		}
	}); err != nil {
		return err
	}
	return serr
}

func closeConn(e *nftConn) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.timer != nil {
		e.timer.Stop() // under e.mu, which guards the timer too
	}
	nftPool.Lock()
	if nftPool.m[e.key] == e {
		delete(nftPool.m, e.key)
	}
	nftPool.Unlock()
	if e.c != nil {
		_ = e.c.CloseLasting()
		e.c, e.raw = nil, nil
	}
}

// Release closes the nftables connections partition keeps open (they close
// by themselves after a second without use). An open connection holds a
// reference to its namespace, so call Release before relying on a bridge
// namespace disappearing at once. It waits for the kernel (see nftIdle).
func Release() {
	for _, e := range pooledConns() {
		closeConn(e)
	}
}

// pooledConns snapshots the pool so callers can take each connection's lock
// without holding nftPool's (closeConn takes them the other way round).
func pooledConns() []*nftConn {
	nftPool.Lock()
	defer nftPool.Unlock()
	conns := make([]*nftConn, 0, len(nftPool.m))
	for _, e := range nftPool.m {
		conns = append(conns, e)
	}
	return conns
}

var chainHooks = map[string]*nftables.ChainHook{
	"ingress":     nftables.ChainHookIngress,
	"egress":      nftables.ChainHookEgress,
	"prerouting":  nftables.ChainHookPrerouting, // NF_BR_PRE_ROUTING == NF_INET_PRE_ROUTING
	"postrouting": nftables.ChainHookPostrouting,
}

// be32 encodes a class number big-endian, so that the blocked set's ranges,
// which the kernel compares byte by byte, order classes by number.
func be32(v uint32) []byte { return binaryutil.BigEndian.PutUint32(v) }

// logicalSet stands for a set in the text form of a rule, which names the
// set without its buffer (see commit.go).
func logicalSet(name string) *nftables.Set { return &nftables.Set{Name: name} }

// matches turns r into nft matches, in the order of Rule's fields. set gives
// the set that a lookup of the named set uses: the buffer the rule is for, or
// logicalSet for the text form; nil means the rule set has no such set.
func (r Rule) matches(set func(name string) *nftables.Set) (nftrule.Rule, error) {
	var m nftrule.Rule
	if r.Iifname != "" {
		m = append(m, nftrule.Iifname(r.Iifname))
	}
	if r.Oifname != "" {
		m = append(m, nftrule.Oifname(r.Oifname))
	}
	if r.IPv4 {
		m = append(m, nftrule.Protocol("ip", unix.ETH_P_IP))
	}
	if r.IPv6 {
		m = append(m, nftrule.Protocol("ip6", unix.ETH_P_IPV6))
	}
	if r.ND {
		m = append(m, nftrule.ND())
	}
	if r.NotARP {
		m = append(m, nftrule.NotProtocol("arp", unix.ETH_P_ARP))
	}
	switch {
	case r.Daddr.Is4():
		m = append(m, nftrule.Daddr(nftrule.Host(r.Daddr)))
	case r.Daddr.IsValid():
		m = append(m, nftrule.Daddr6(r.Daddr))
	}
	lookup := func(name string) (*nftables.Set, error) {
		s := set(name)
		if s == nil {
			return nil, fmt.Errorf("set %q is not in the rule set", name)
		}
		return s, nil
	}
	classify := func(field nftrule.MetaField, name string, key nftrule.Key) error {
		s, err := lookup(name)
		if err == nil {
			m = append(m, nftrule.MetaSetMap(field, s, key))
		}
		return err
	}
	var err error
	switch r.Classify {
	case "":
	case ClassifyReset:
		m = append(m, nftrule.MetaClear(nftrule.MetaMark, nftrule.MetaPriority))
	case ClassifyClearColumn:
		m = append(m, nftrule.MetaClear(nftrule.MetaPriority))
	case ClassifyRow:
		err = classify(nftrule.MetaMark, SourceMap, nftrule.KeyIifname)
	case ClassifyColumnByIP:
		err = classify(nftrule.MetaPriority, DestMap, nftrule.KeyIPDaddr)
	case ClassifyColumnByIP6:
		err = classify(nftrule.MetaPriority, DestMap6, nftrule.KeyIP6Daddr)
	case ClassifyColumnByPort:
		err = classify(nftrule.MetaPriority, DestPortMap, nftrule.KeyOifname)
	default:
		err = fmt.Errorf("unknown class lookup %q", r.Classify)
	}
	if err != nil {
		return m, err
	}
	if r.Blocked {
		s, err := lookup(BlockedSet)
		if err != nil {
			return m, err
		}
		m = append(m, nftrule.InSet(s, nftrule.KeyMark, nftrule.KeyPriority))
	}
	if r.TCP {
		m = append(m, nftrule.L4Proto("tcp"))
	}
	if r.NoSYN {
		if !r.TCP {
			return m, errors.New("tcp flags match without meta l4proto tcp")
		}
		m = append(m, nftrule.NoSYN())
	}
	if r.Chance != 0 {
		m = append(m, nftrule.RandomBelow(LossScale, r.Chance))
	}
	if r.Count != "" {
		s, err := lookup(r.Count)
		if err != nil {
			return m, err
		}
		m = append(m, nftrule.UpdateCounter(s, counterKeys[r.Count]...))
	}
	switch r.Action {
	case ActionDrop:
		m = append(m, nftrule.Drop())
	case ActionRejectTCPReset:
		m = append(m, nftrule.RejectTCPReset())
	case ActionRejectAdmin:
		m = append(m, nftrule.RejectAdminProhibited())
	case ActionJump:
		m = append(m, nftrule.Jump(r.Jump))
	case ActionAccept:
		m = append(m, nftrule.Accept())
	case "":
		// A classification step: no verdict, the packet goes on.
	default:
		return m, fmt.Errorf("unknown action %q", r.Action)
	}
	return m, nil
}
