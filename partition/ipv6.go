package partition

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/pontoon-dev/pontoon/internal/kernel"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// sockDestroy is SOCK_DESTROY, the sock_diag request that closes a socket.
const sockDestroy = 21

// destroyTCP6 closes the IPv6 TCP socket id (as a dump listed it) in the namespace nsh: the
// netlink library's SocketDestroy knows IPv4 only. The request is an inet_diag_req_v2 for
// exactly that socket, its cookie included.
func destroyTCP6(nsh netns.NsHandle, id netlink.SocketID) error {
	s, err := nl.GetNetlinkSocketAt(nsh, netns.None(), unix.NETLINK_INET_DIAG)
	if err != nil {
		return fmt.Errorf("sock_diag socket: %w", err)
	}
	defer s.Close()
	b := make([]byte, 56)
	b[0], b[1] = unix.AF_INET6, unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(b[4:], 0xffffffff) // every state
	binary.BigEndian.PutUint16(b[8:], id.SourcePort)
	binary.BigEndian.PutUint16(b[10:], id.DestinationPort)
	copy(b[12:28], id.Source.To16())
	copy(b[28:44], id.Destination.To16())
	binary.NativeEndian.PutUint32(b[44:], id.Interface)
	binary.NativeEndian.PutUint32(b[48:], id.Cookie[0])
	binary.NativeEndian.PutUint32(b[52:], id.Cookie[1])
	req := nl.NewNetlinkRequest(sockDestroy, unix.NLM_F_ACK)
	req.AddRawData(b)
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_INET_DIAG: {Socket: s}}
	_, err = req.Execute(unix.NETLINK_INET_DIAG, 0)
	return err
}

// addFilter6 sorts the IPv6 packets of a pair class's source into its class, as the IPv4
// filter does by ip saddr: u32 matches on the four words of the IPv6 source (offset 8 of the
// IPv6 header), one for its address and one for its link-local address, which reaches its
// peers as well, at a priority of their own since tc keeps one protocol per priority.
func addFilter6(h *kernel.NS, idx int, c Class, at string) error {
	for _, src := range c.sources6() {
		f := &netlink.U32{
			FilterAttrs: netlink.FilterAttrs{LinkIndex: idx, Parent: netlink.MakeHandle(QdiscMajor, 0), Priority: 2, Protocol: netlinkProtoIPv6},
			ClassId:     ClassID(c.Minor),
			Sel:         &netlink.TcU32Sel{Flags: netlink.TC_U32_TERMINAL, Keys: srcKeys6(src)},
		}
		if err := h.FilterAdd(f); err != nil {
			return fmt.Errorf("add u32 filter ip6 src %s -> class %x:%x on %s: %w", src, QdiscMajor, c.Minor, at, err)
		}
	}
	return nil
}

// sources6 are the IPv6 sources of a pair class: its guest's address and link-local one.
func (c Class) sources6() []netip.Addr {
	if !c.Src6.IsValid() {
		return nil
	}
	if ll := linkLocalOf(c.Src, c.Src6); ll.IsValid() {
		return []netip.Addr{c.Src6, ll}
	}
	return []netip.Addr{c.Src6}
}

// ip6Col is ip6 when the kernel's IPv6 map blocks it from row class row too, else nothing:
// status shows a pair's IPv6 addresses only where the kernel blocks them.
func (kt kernelTable) ip6Col(ip6 netip.Addr, row uint32) netip.Addr {
	if !ip6.IsValid() {
		return netip.Addr{}
	}
	for _, d := range kt.Classes.Dests {
		if d.IP6 == ip6 && kt.Classes.blocks(row, d.Col) {
			return ip6
		}
	}
	return netip.Addr{}
}
