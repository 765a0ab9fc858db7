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
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
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
// connection is closed after nftIdle without use, or by Release.
//
// Connections are keyed by the namespace's inode, not its path, so a
// namespace re-created under the same path never gets a stale socket.
const nftIdle = time.Second

type nftConn struct {
	mu    sync.Mutex
	key   nsKey
	c     *nftables.Conn
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
		c, err := nftables.New(nftables.WithNetNSFd(int(fd.Fd())), nftables.AsLasting())
		fd.Close() // the socket stays bound to the namespace once dialled
		if err != nil {
			return fmt.Errorf("open nftables in bridge netns %q: %w", nsPath, err)
		}
		e.c = c
	}
	err = f(e.c)
	e.timer = time.AfterFunc(nftIdle, func() { closeConn(e) })
	return err
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
		e.c = nil
	}
}

// Release closes the nftables connections partition keeps open (they close
// by themselves after a second without use). An open connection holds a
// reference to its namespace, so call Release before relying on a bridge
// namespace disappearing at once. It waits for the kernel (see nftIdle).
func Release() {
	nftPool.Lock()
	conns := make([]*nftConn, 0, len(nftPool.m))
	for _, e := range nftPool.m {
		conns = append(conns, e)
	}
	nftPool.Unlock()
	for _, e := range conns {
		closeConn(e)
	}
}

// commitRuleSet replaces the partition table by rs in one transaction: the
// old table (of every family in families) is deleted and the new one created
// in the same batch, so packets see either the old rules or the new ones,
// never a mix and never none. An empty rs removes the table in every family.
func commitRuleSet(nsPath string, rs RuleSet, families []Backend) error {
	what := "table " + TableName
	if !rs.Empty() {
		what = fmt.Sprintf("table %s %s", rs.Family, TableName)
	}
	return withNft(nsPath, func(c *nftables.Conn) error {
		if err := queueRuleSet(c, rs, families); err != nil {
			return err
		}
		err := c.Flush()
		if err != nil && errors.Is(err, unix.ENOENT) && hasDevices(rs) {
			// Kernels before 6.16 refuse a netdev chain for a device that does
			// not exist (a guest that is gone). Keep the chains of present ports.
			present, lerr := presentLinks(nsPath)
			if lerr != nil {
				return fmt.Errorf("commit nftables %s: %w (listing ports: %v)", what, err, lerr)
			}
			rs.Chains = slices.DeleteFunc(slices.Clone(rs.Chains), func(ch Chain) bool { return ch.Device != "" && !present[ch.Device] })
			if err = queueRuleSet(c, rs, families); err != nil {
				return err
			}
			err = c.Flush()
		}
		if err != nil {
			return fmt.Errorf("commit nftables %s in %q: %w", what, nsPath, err)
		}
		return nil
	})
}

func hasDevices(rs RuleSet) bool {
	for _, ch := range rs.Chains {
		if ch.Device != "" {
			return true
		}
	}
	return false
}

func presentLinks(nsPath string) (map[string]bool, error) {
	h, done, err := rtHandle(nsPath)
	if err != nil {
		return nil, err
	}
	defer done()
	links, err := listLinks(h)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, l := range links {
		out[l.Attrs().Name] = true
	}
	return out, nil
}

// queueRuleSet adds the replacement of the partition table to c's batch:
// the table is deleted in every family of families and in rs's, then rs is
// created.
func queueRuleSet(c *nftables.Conn, rs RuleSet, families []Backend) error {
	if !rs.Empty() && !rs.Backend.valid() {
		return fmt.Errorf("rule set for backend %q: want %q or %q", rs.Backend, BackendNetdev, BackendBridge)
	}
	if !rs.Empty() && !slices.Contains(families, rs.Backend) {
		families = append(slices.Clone(families), rs.Backend)
	}
	for _, b := range families {
		// "add" never fails on an existing table, so the following delete
		// always has something to delete: together they mean "delete if
		// present".
		t := nftTable(b)
		c.AddTable(t)
		c.DelTable(t)
	}
	if rs.Empty() {
		return nil
	}
	t := nftTable(rs.Backend)
	c.AddTable(t)
	sets := map[string]*nftables.Set{}
	for _, s := range rs.Sets {
		set := &nftables.Set{
			Table:         t,
			Name:          s.Name,
			KeyType:       nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeIPAddr),
			Concatenation: true,
		}
		if err := c.AddSet(set, nil); err != nil {
			return fmt.Errorf("queue set %s: %w", s.Name, err)
		}
		for chunk := range slices.Chunk(s.Elements, elemChunk) {
			els := make([]nftables.SetElement, len(chunk))
			for i, e := range chunk {
				src, dst := e.Src.As4(), e.Dst.As4()
				els[i] = nftables.SetElement{Key: append(src[:], dst[:]...)}
			}
			if err := c.SetAddElements(set, els); err != nil {
				return fmt.Errorf("queue elements of set %s: %w", s.Name, err)
			}
		}
		sets[s.Name] = set
	}
	chains := map[string]*nftables.Chain{}
	// Chains first, rules after: a jump must name a chain that already exists
	// in the batch.
	for _, ch := range rs.Chains {
		nc := &nftables.Chain{Name: ch.Name, Table: t}
		if ch.Hook != "" {
			hook, ok := chainHooks[ch.Hook]
			if !ok {
				return fmt.Errorf("chain %s: unknown hook %q", ch.Name, ch.Hook)
			}
			nc.Hooknum = hook
			nc.Priority = nftables.ChainPriorityRef(nftables.ChainPriority(ch.Priority))
			nc.Type = nftables.ChainTypeFilter
			nc.Device = ch.Device
		}
		chains[ch.Name] = c.AddChain(nc)
	}
	for _, ch := range rs.Chains {
		for i, r := range ch.Rules {
			exprs, err := ruleExprs(r, sets)
			if err != nil {
				return fmt.Errorf("chain %s rule %d (%s): %w", ch.Name, i, r, err)
			}
			c.AddRule(&nftables.Rule{Table: t, Chain: chains[ch.Name], Exprs: exprs})
		}
	}
	return nil
}

var chainHooks = map[string]*nftables.ChainHook{
	"ingress":     nftables.ChainHookIngress,
	"egress":      nftables.ChainHookEgress,
	"prerouting":  nftables.ChainHookPrerouting, // NF_BR_PRE_ROUTING == NF_INET_PRE_ROUTING
	"postrouting": nftables.ChainHookPostrouting,
}

// Registers as nft uses them: reg 1 is the first 16-byte register, whose
// second 32-bit word is reg 9; a concatenation of two IPv4 addresses is
// loaded into 1 and 9 and looked up as one 8-byte key from 1.
const (
	reg1      = 1
	reg32Word = 9
)

func ruleExprs(r Rule, sets map[string]*nftables.Set) ([]expr.Any, error) {
	var e []expr.Any
	ifMatch := func(key expr.MetaKey, name string) {
		// The kernel loads the whole IFNAMSIZ buffer; compare it with the
		// name padded with NULs, as nft does for an exact name.
		data := make([]byte, unix.IFNAMSIZ)
		copy(data, name)
		e = append(e,
			&expr.Meta{Key: key, Register: reg1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: data})
	}
	if r.Iifname != "" {
		ifMatch(expr.MetaKeyIIFNAME, r.Iifname)
	}
	if r.Oifname != "" {
		ifMatch(expr.MetaKeyOIFNAME, r.Oifname)
	}
	if r.IPv4 {
		e = append(e,
			&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: reg1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.BigEndian.PutUint16(unix.ETH_P_IP)})
	}
	ipMatch := func(off uint32, a [4]byte) {
		e = append(e,
			&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: a[:]})
	}
	if r.Saddr.IsValid() {
		ipMatch(12, r.Saddr.As4())
	}
	if r.Daddr.IsValid() {
		ipMatch(16, r.Daddr.As4())
	}
	if r.PairSet != "" {
		set, ok := sets[r.PairSet]
		if !ok {
			return nil, fmt.Errorf("set %q is not in the rule set", r.PairSet)
		}
		e = append(e,
			&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			&expr.Payload{DestRegister: reg32Word, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Lookup{SourceRegister: reg1, SetName: set.Name, SetID: set.ID})
	}
	if r.TCP {
		e = append(e,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{unix.IPPROTO_TCP}})
	}
	if r.NoSYN {
		if !r.TCP {
			return nil, errors.New("tcp flags match without meta l4proto tcp")
		}
		e = append(e,
			&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 1, Mask: []byte{0x02}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{0}})
	}
	if r.Chance != 0 {
		// numgen yields a host-order integer; cmp compares bytes, so convert
		// to network order first, as nft does.
		e = append(e,
			&expr.Numgen{Register: reg1, Modulus: LossScale, Type: unix.NFT_NG_RANDOM},
			&expr.Byteorder{SourceRegister: reg1, DestRegister: reg1, Op: expr.ByteorderHton, Len: 4, Size: 4},
			&expr.Cmp{Op: expr.CmpOpLt, Register: reg1, Data: binaryutil.BigEndian.PutUint32(r.Chance)})
	}
	switch r.Action {
	case ActionDrop:
		e = append(e, &expr.Verdict{Kind: expr.VerdictDrop})
	case ActionRejectTCPReset:
		e = append(e, &expr.Reject{Type: unix.NFT_REJECT_TCP_RST})
	case ActionRejectAdmin:
		e = append(e, &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED})
	case ActionJump:
		e = append(e, &expr.Verdict{Kind: expr.VerdictJump, Chain: r.Jump})
	default:
		return nil, fmt.Errorf("unknown action %q", r.Action)
	}
	return e, nil
}

// kernelBlocked reads the blocked set back from the kernel. present lists
// the backends whose family holds the partition table (normally at most
// one); the pairs are those of the first.
func kernelBlocked(nsPath string) (pairs []AddrPair, present []Backend, err error) {
	err = withNft(nsPath, func(c *nftables.Conn) error {
		tables, err := c.ListTables()
		if err != nil {
			return fmt.Errorf("list nftables tables in %q: %w", nsPath, err)
		}
		for _, b := range backends {
			if slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == TableName && t.Family == b.nftFamily() }) {
				present = append(present, b)
			}
		}
		if len(present) == 0 {
			return nil
		}
		set, err := c.GetSetByName(nftTable(present[0]), BlockedSet)
		if err != nil {
			return fmt.Errorf("read set %s of table %s %s: %w", BlockedSet, present[0].Family(), TableName, err)
		}
		els, err := c.GetSetElements(set)
		if err != nil {
			return fmt.Errorf("read elements of set %s: %w", BlockedSet, err)
		}
		for _, el := range els {
			if len(el.Key) == 8 {
				pairs = append(pairs, AddrPair{addr4(el.Key[:4]), addr4(el.Key[4:])})
			}
		}
		return nil
	})
	return pairs, present, err
}

// rtHandle returns a rtnetlink handle bound to the namespace at nsPath.
func rtHandle(nsPath string) (*netlink.Handle, func(), error) {
	nsh, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, nil, fmt.Errorf("open netns %q: %w", nsPath, err)
	}
	h, err := netlink.NewHandleAt(nsh, unix.NETLINK_ROUTE)
	if err != nil {
		nsh.Close()
		return nil, nil, fmt.Errorf("netlink handle in netns %q: %w", nsPath, err)
	}
	return h, func() { h.Close(); nsh.Close() }, nil
}

// listLinks dumps links, retrying when a concurrent change interrupts the dump.
func listLinks(h *netlink.Handle) ([]netlink.Link, error) {
	var err error
	for range 5 {
		var links []netlink.Link
		links, err = h.LinkList()
		if err == nil {
			return links, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	return nil, fmt.Errorf("list links: %w", err)
}
