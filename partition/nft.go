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
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/nftwire"
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
	conn  *nftwire.Conn
	c     *nftables.Conn // conn's
	raw   *os.File       // conn's socket, for Linger
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
		if err := e.open(nsPath); err != nil {
			return err
		}
	}
	err = f(e.c)
	if err != nil {
		// Answers to a failed batch may still be queued on the socket: start
		// afresh rather than skip them.
		e.close()
	}
	e.timer = time.AfterFunc(nftIdle, func() { closeConn(e) })
	return err
}

// open dials the nftables socket of the namespace at nsPath and puts e.c on it.
func (e *nftConn) open(nsPath string) error {
	fd, err := socketIn(nsPath)
	if err != nil {
		return fmt.Errorf("open nftables in bridge netns %q: %w", nsPath, err)
	}
	// An answer the socket loses although the batch was committed is covered
	// by reading the table back (commitVerified).
	conn, err := nftwire.Open(fd)
	if err != nil {
		return fmt.Errorf("open nftables in bridge netns %q: %w", nsPath, err)
	}
	e.conn, e.c, e.raw = conn, conn.Conn, conn.File()
	return nil
}

func (e *nftConn) close() {
	if e.conn != nil {
		_ = e.conn.Close()
		e.conn, e.c, e.raw = nil, nil, nil
	}
}

// flush sends the batch queued on c, a pooled connection, as one transaction
// and returns the kernel's verdict.
func flush(c *nftables.Conn) error { return nftwire.Flush(c) }

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
	e.close()
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
