// Package nftpool keeps pontoon's nftables connections open between calls, one per network
// namespace, and hands them to a short-lived child when the process exits (Linger), so that
// neither the next call nor the user waits for the kernel's clean-up after a change.
//
// Closing a netfilter netlink socket runs nft_rcv_nl_event, which takes the namespace's
// commit mutex and waits for the pending "destroy" work of the previous transaction, i.e.
// an RCU grace period (~12 ms measured here, ~200 times a partition's commit). Closing after
// every change would therefore make the next change (and every other nftables user of that
// namespace) wait. A connection is closed after Idle without use, or by Release; a command
// about to exit hands it to Linger instead (linger.go).
//
// Connections are keyed by the namespace's inode, not its path, so a namespace re-created
// under the same path never gets a stale socket.
package nftpool

import (
	"fmt"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/nftwire"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"golang.org/x/sys/unix"
)

// Idle is how long a connection stays open without use.
const Idle = time.Second

type conn struct {
	mu    sync.Mutex
	key   nsKey
	conn  *nftwire.Conn // nil while closed
	timer *time.Timer
}

type nsKey struct{ dev, ino uint64 }

var pool = struct {
	sync.Mutex
	m map[nsKey]*conn
}{m: map[nsKey]*conn{}}

func netnsKey(nsPath string) (nsKey, error) {
	var st unix.Stat_t
	if err := unix.Stat(nsPath, &st); err != nil {
		return nsKey{}, fmt.Errorf("open netns %q: %w", nsPath, err)
	}
	return nsKey{uint64(st.Dev), st.Ino}, nil
}

// With runs f with an nftables connection bound to the namespace at nsPath, without
// switching the calling thread's namespace. Calls for the same namespace are serialised, so
// batches never interleave. After an error from f the connection is replaced: answers to a
// failed batch may still be queued on it. A caller whose batch removes anything calls
// MarkRemoved.
func With(nsPath string, f func(c *nftables.Conn) error) error {
	return WithConn(nsPath, func(c *nftwire.Conn) error { return f(c.Conn) })
}

// WithConn is With for a caller that needs the wire's own requests (nftwire.Conn.Holds).
func WithConn(nsPath string, f func(c *nftwire.Conn) error) error {
	key, err := netnsKey(nsPath)
	if err != nil {
		return err
	}
	e := take(key)
	defer e.mu.Unlock()
	if e.timer != nil {
		e.timer.Stop()
	}
	if e.conn == nil {
		if err := e.open(nsPath); err != nil {
			e.drop()
			return err
		}
	}
	err = f(e.conn)
	if err != nil {
		e.close()
	}
	e.timer = time.AfterFunc(Idle, func() { closeConn(e) })
	return err
}

// take returns the pool's entry for key, locked. An entry that closeConn took out of the
// pool while this waited for its lock is left for a current one: a connection opened on it
// would be one that neither Linger nor Release sees, and a second for the namespace.
func take(key nsKey) *conn {
	for {
		pool.Lock()
		e := pool.m[key]
		if e == nil {
			e = &conn{key: key}
			pool.m[key] = e
		}
		pool.Unlock()
		e.mu.Lock() // then the pool's lock, as closeConn takes them
		pool.Lock()
		current := pool.m[key] == e
		pool.Unlock()
		if current {
			return e
		}
		e.mu.Unlock()
	}
}

// drop takes e, whose connection could not be opened, out of the pool; e.mu is held.
func (e *conn) drop() {
	pool.Lock()
	if pool.m[e.key] == e {
		delete(pool.m, e.key)
	}
	pool.Unlock()
}

// open dials the nftables socket of the namespace at nsPath and puts e.conn on it.
func (e *conn) open(nsPath string) error {
	fd, err := ns.Socket(nsPath, unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_NETFILTER)
	if err != nil {
		return fmt.Errorf("open nftables in netns %q: %w", nsPath, err)
	}
	conn, err := nftwire.Open(fd)
	if err != nil {
		return fmt.Errorf("open nftables in netns %q: %w", nsPath, err)
	}
	e.conn = conn
	return nil
}

func (e *conn) close() {
	if e.conn != nil {
		_ = e.conn.Close()
		e.conn = nil
	}
}

func closeConn(e *conn) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.timer != nil {
		e.timer.Stop() // under e.mu, which guards the timer too
	}
	e.drop()
	e.close()
}

// Release closes the connections the pool keeps open (they close by themselves after Idle
// without use). An open connection holds a reference to its namespace, so call Release
// before relying on a namespace disappearing at once. It waits for the kernel.
func Release() {
	// First: a removal marked meanwhile is on a connection this does not close.
	removed.Store(false)
	for _, e := range pooledConns() {
		closeConn(e)
	}
}

// pooledConns snapshots the pool so callers can take each connection's lock without holding
// the pool's (closeConn takes them the other way round).
func pooledConns() []*conn {
	pool.Lock()
	defer pool.Unlock()
	conns := make([]*conn, 0, len(pool.m))
	for _, e := range pool.m {
		conns = append(conns, e)
	}
	return conns
}
