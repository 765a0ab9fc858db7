package partition

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The passive half of Cut lives in the rule set: segments of open
// connections crossing a blocked pair are answered with a reset. That cannot
// reach a connection on which nobody sends (a client blocked in read), so
// when a guest's namespace is known, its sockets that cross the partition are
// also closed at once with sock_diag SOCK_DESTROY (CONFIG_INET_DIAG_DESTROY):
// the kernel aborts them, and local readers and writers get ECONNABORTED.
// The netlink handle is bound to the guest's namespace by vishvananda/netlink;
// this code never switches a thread's namespace itself.

// TCP states (include/net/tcp_states.h) that have no peer to cut from.
const (
	tcpTimeWait = 6
	tcpClose    = 7
	tcpListen   = 10
)

// cutPeers maps each guest to the addresses it must no longer have TCP
// connections with: a blocked pair in either direction breaks a connection.
func cutPeers(r *resolved) map[string][]netip.Addr {
	set := map[string]map[netip.Addr]bool{}
	add := func(g string, peer netip.Addr) {
		if set[g] == nil {
			set[g] = map[netip.Addr]bool{}
		}
		set[g][peer] = true
	}
	for _, p := range r.blocked {
		for _, pair := range [][2]string{{p.Src, p.Dst}, {p.Dst, p.Src}} {
			peer := r.guest(pair[1])
			add(pair[0], peer.IP)
			if peer.IP6.IsValid() {
				add(pair[0], peer.IP6)
				if ll := linkLocal6(peer); ll.IsValid() {
					add(pair[0], ll)
				}
			}
		}
	}
	out := map[string][]netip.Addr{}
	for g, peers := range set {
		for a := range peers {
			out[g] = append(out[g], a)
		}
		sort.Slice(out[g], func(i, j int) bool { return out[g][i].Less(out[g][j]) })
	}
	return out
}

// closeCrossing closes, in every guest that has a NetnsPath, the TCP sockets
// whose remote address is a peer the partition cuts it from. It returns how
// many sockets it closed.
func closeCrossing(r *resolved) (int, error) {
	total := 0
	var errs []error
	for name, peers := range cutPeers(r) {
		g := r.guest(name)
		if g.NetnsPath == "" {
			continue
		}
		n, err := DestroyTCP(g.NetnsPath, peers)
		total += n
		if err != nil {
			errs = append(errs, fmt.Errorf("close connections of guest %s: %w", name, err))
		}
	}
	return total, errors.Join(errs...)
}

// DestroyTCP closes every TCP socket in the network namespace at nsPath whose
// remote address is one of peers (listening and TIME_WAIT sockets are left
// alone) and returns how many it closed. A kernel without SOCK_DESTROY gives
// a FeatureError for "inet_diag_destroy".
func DestroyTCP(nsPath string, peers []netip.Addr) (int, error) {
	if len(peers) == 0 {
		return 0, nil
	}
	want := map[netip.Addr]bool{}
	for _, p := range peers {
		want[p] = true
	}
	nsh, err := netns.GetFromPath(nsPath)
	if err != nil {
		return 0, fmt.Errorf("open netns %q: %w", nsPath, err)
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh, unix.NETLINK_INET_DIAG)
	if err != nil {
		return 0, fmt.Errorf("sock_diag handle in netns %q: %w", nsPath, err)
	}
	defer h.Close()
	var socks []*netlink.Socket
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		var fs []*netlink.Socket
		for range 5 {
			fs, err = h.SocketDiagTCP(family)
			if !errors.Is(err, netlink.ErrDumpInterrupted) {
				break
			}
		}
		if err != nil {
			return 0, fmt.Errorf("list TCP sockets in netns %q: %w", nsPath, err)
		}
		socks = append(socks, fs...)
	}
	closed := 0
	for _, s := range socks {
		if s.State == tcpListen || s.State == tcpTimeWait || s.State == tcpClose {
			continue
		}
		remote, ok := netip.AddrFromSlice(s.ID.Destination)
		if !ok || !want[remote.Unmap()] {
			continue
		}
		local := &net.TCPAddr{IP: s.ID.Source, Port: int(s.ID.SourcePort)}
		peer := &net.TCPAddr{IP: s.ID.Destination, Port: int(s.ID.DestinationPort)}
		destroy := func() error { return h.SocketDestroy(local, peer) }
		if s.Family == unix.AF_INET6 {
			destroy = func() error { return destroyTCP6(nsh, s.ID) }
		}
		if err := destroy(); err != nil {
			switch {
			case errors.Is(err, unix.ENOENT):
				continue // closed meanwhile
			case errors.Is(err, unix.EOPNOTSUPP):
				return closed, &FeatureError{Feature: "inet_diag_destroy", Need: "closing open connections (cut)", Err: err}
			}
			return closed, fmt.Errorf("destroy TCP socket %s->%s: %w", local, peer, err)
		}
		closed++
	}
	return closed, nil
}
