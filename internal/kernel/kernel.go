// Package kernel is pontoon's one way to talk to the kernel about a network namespace: an
// open namespace with a netlink handle bound to it (NS), whose dumps are retried when the
// kernel interrupts them, and the sysctls and nftables connection of that namespace.
//
// A namespace is opened once, by path, and the handle is passed around; nothing reopens the
// path, so a namespace removed or replaced meanwhile cannot be confused with the one opened.
package kernel

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pontoon-dev/pontoon/internal/nftwire"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// DumpAttempts bounds how often a netlink dump is tried. The kernel interrupts a dump
// (netlink.ErrDumpInterrupted) when the table changes while it is read, which happens under
// churn (links of other namespaces coming and going); a handful of tries is plenty, and a
// bound keeps a namespace that never settles from hanging its caller.
const DumpAttempts = 10

// Retry runs dump until it is not interrupted, at most DumpAttempts times, and returns the
// last result.
func Retry[T any](dump func() (T, error)) (T, error) {
	v, err := dump()
	for i := 1; i < DumpAttempts && errors.Is(err, netlink.ErrDumpInterrupted); i++ {
		v, err = dump()
	}
	return v, err
}

// NS is an open network namespace with a netlink handle bound to it. The embedded handle's
// dumps (LinkList, AddrList, RouteList, RouteListFiltered, NeighList, QdiscList, ClassList,
// FilterList) and LinkByName are replaced by versions that retry interrupted dumps.
type NS struct {
	*netlink.Handle
	fd   netns.NsHandle
	path string
	// route is Execute's socket, opened at its first use; one handle numbers its requests, so
	// an answer a request left unread (an acknowledgement after a reply) is not taken for the
	// next one's.
	route *nl.SocketHandle
}

// OpenNS opens the network namespace at path (a pinned namespace, /proc/PID/ns/net, ...).
func OpenNS(path string) (*NS, error) {
	fd, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", path, err)
	}
	h, err := netlink.NewHandleAt(fd, unix.NETLINK_ROUTE)
	if err != nil {
		fd.Close()
		return nil, fmt.Errorf("open netlink in %s: %w", path, err)
	}
	return &NS{Handle: h, fd: fd, path: path}, nil
}

// Close releases the handle; closing nil does nothing.
func (n *NS) Close() {
	if n == nil {
		return
	}
	n.Handle.Close()
	if n.route != nil {
		n.route.Socket.Close()
	}
	n.fd.Close()
}

// Execute runs a routing request the netlink library has no call for (a port's locking
// flags, a read of a port's state, a neighbour update that must create nothing) and returns
// the answers of type resType. One socket of the namespace serves all such requests of the
// handle, opened at the first.
func (n *NS) Execute(req *nl.NetlinkRequest, resType uint16) ([][]byte, error) {
	if n.route == nil {
		s, err := nl.GetNetlinkSocketAt(n.fd, netns.None(), unix.NETLINK_ROUTE)
		if err != nil {
			return nil, fmt.Errorf("open netlink in %s: %w", n.path, err)
		}
		n.route = &nl.SocketHandle{Socket: s}
	}
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: n.route}
	return req.Execute(unix.NETLINK_ROUTE, resType)
}

// PeerGoing reports whether l is a veth whose other end is in a namespace the kernel is
// removing, so that l goes by itself shortly. Such a namespace has no id for others any more
// (the link's IFLA_LINK_NETNSID says "not assigned"), or its id no longer leads to it: a
// request naming it as the target answers EINVAL. A link with its other end in this
// namespace, or in one that lives, is not going.
func (n *NS) PeerGoing(l netlink.Link) bool {
	a := l.Attrs()
	switch {
	case a.NetNsID == -1: // no IFLA_LINK_NETNSID: its other end is here, or it has none
		return false
	case uint32(a.NetNsID) == 0xffffffff: // NETNSA_NSID_NOT_ASSIGNED
		return true
	}
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_TARGET_NETNSID, nl.Uint32Attr(uint32(a.NetNsID))))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated("lo")))
	_, err := n.Execute(req, unix.RTM_NEWLINK)
	return errors.Is(err, unix.EINVAL)
}

// Fd returns the namespace's file descriptor, valid until Close.
func (n *NS) Fd() int { return int(n.fd) }

// Path returns the path the namespace was opened from, for messages.
func (n *NS) Path() string { return n.path }

// Nftables opens an nftables connection bound to the namespace; the caller closes it. Its
// Flush commits the queued batch as one transaction (see nftwire).
func (n *NS) Nftables() (*nftwire.Conn, error) {
	fd, err := ns.Socket(n.fdPath(), unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("open nftables in %s: %w", n.path, err)
	}
	c, err := nftwire.Open(fd)
	if err != nil {
		return nil, fmt.Errorf("open nftables in %s: %w", n.path, err)
	}
	return c, nil
}

// LinkByName looks a link up by name.
func (n *NS) LinkByName(name string) (netlink.Link, error) {
	return Retry(func() (netlink.Link, error) { return n.Handle.LinkByName(name) })
}

// LinkList lists the namespace's links.
func (n *NS) LinkList() ([]netlink.Link, error) {
	return Retry(n.Handle.LinkList)
}

// AddrList lists addresses of link (every link when nil) of family.
func (n *NS) AddrList(link netlink.Link, family int) ([]netlink.Addr, error) {
	return Retry(func() ([]netlink.Addr, error) { return n.Handle.AddrList(link, family) })
}

// RouteList lists routes of link (every link when nil) of family.
func (n *NS) RouteList(link netlink.Link, family int) ([]netlink.Route, error) {
	return Retry(func() ([]netlink.Route, error) { return n.Handle.RouteList(link, family) })
}

// RouteListFiltered lists the routes matching filter on the fields of mask.
func (n *NS) RouteListFiltered(family int, filter *netlink.Route, mask uint64) ([]netlink.Route, error) {
	return Retry(func() ([]netlink.Route, error) { return n.Handle.RouteListFiltered(family, filter, mask) })
}

// NeighList lists the neighbour entries of a link index (0: all) of family.
func (n *NS) NeighList(linkIndex, family int) ([]netlink.Neigh, error) {
	return Retry(func() ([]netlink.Neigh, error) { return n.Handle.NeighList(linkIndex, family) })
}

// QdiscList lists the qdiscs of link (every link when nil).
func (n *NS) QdiscList(link netlink.Link) ([]netlink.Qdisc, error) {
	return Retry(func() ([]netlink.Qdisc, error) { return n.Handle.QdiscList(link) })
}

// ClassList lists the classes of link under parent.
func (n *NS) ClassList(link netlink.Link, parent uint32) ([]netlink.Class, error) {
	return Retry(func() ([]netlink.Class, error) { return n.Handle.ClassList(link, parent) })
}

// FilterList lists the filters of link under parent.
func (n *NS) FilterList(link netlink.Link, parent uint32) ([]netlink.Filter, error) {
	return Retry(func() ([]netlink.Filter, error) { return n.Handle.FilterList(link, parent) })
}

// fdPath names the open namespace for code that needs a path (ns.Do): it stays this
// namespace as long as the handle is open, whatever happens to the path it was opened from.
func (n *NS) fdPath() string { return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), n.Fd()) }

// Sysctl sets a sysctl (dotted name, e.g. net.ipv4.ip_forward) in the namespace and returns
// its previous value; a value that is already set is not written again.
func (n *NS) Sysctl(name, value string) (old string, err error) {
	olds, err := n.sysctls(true, name, value)
	if len(olds) > 0 {
		old = olds[0]
	}
	return old, err
}

// Sysctls sets name/value pairs in the namespace, in order, with one namespace switch.
func (n *NS) Sysctls(kv ...string) error {
	if len(kv)%2 != 0 {
		return fmt.Errorf("set sysctls in %s: %d words are no name/value pairs", n.path, len(kv))
	}
	_, err := n.sysctls(false, kv...)
	return err
}

// Socket opens a socket in the namespace: it stays the namespace's whichever thread uses it.
func (n *NS) Socket(domain, typ, proto int) (int, error) {
	fd := -1
	err := ns.Visit(n.fdPath(), func() (err error) {
		fd, err = unix.Socket(domain, typ|unix.SOCK_CLOEXEC, proto)
		return err
	})
	if err != nil {
		return -1, fmt.Errorf("open a socket in %s: %w", n.path, err)
	}
	return fd, nil
}

// ReadSysctl reads a sysctl in the namespace, through its directory as sysctls does: a status
// reads one per bridge, and a full path's walk costs more the more namespaces the host has.
func (n *NS) ReadSysctl(name string) (string, error) {
	var v string
	err := ns.Visit(n.fdPath(), func() error {
		file := sysctlFile(name)
		d, err := unix.Open(filepath.Dir(file), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return &os.PathError{Op: "open", Path: filepath.Dir(file), Err: err}
		}
		defer unix.Close(d)
		v, err = readAt(d, filepath.Base(file))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("read sysctl %s in %s: %w", name, n.path, err)
	}
	return v, nil
}

// ReadNetFile reads a file of /proc/net (ip_tables_names, say) as the namespace shows it.
func (n *NS) ReadNetFile(name string) (string, error) {
	var v string
	err := ns.Visit(n.fdPath(), func() error {
		// thread-self: /proc/net is the thread group leader's, not this thread's.
		b, err := os.ReadFile("/proc/thread-self/net/" + name)
		v = string(b)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("read /proc/net/%s in %s: %w", name, n.path, err)
	}
	return v, nil
}

// sysctls writes pairs; /proc/sys/net shows the namespace of the thread that opens it, hence
// the switch. With read, each old value is read first and an unchanged one not written.
//
// Each directory is looked up once and its files opened relative to it: the kernel keeps the
// entries of every namespace's /proc/sys/net/ipv4 and ipv6 side by side, so a full path
// costs a walk past those of all other namespaces (~20 µs each with 270 guests here, and
// more on a fuller host), where a file opened in its directory costs ~2 µs.
func (n *NS) sysctls(read bool, kv ...string) (olds []string, err error) {
	err = ns.Visit(n.fdPath(), func() error {
		dirs := map[string]int{}
		defer func() {
			for _, fd := range dirs {
				unix.Close(fd)
			}
		}()
		for i := 0; i+1 < len(kv); i += 2 {
			name, value := kv[i], kv[i+1]
			file := sysctlFile(name)
			dir, base := filepath.Dir(file), filepath.Base(file)
			d, ok := dirs[dir]
			if !ok {
				var oerr error
				if d, oerr = unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); oerr != nil {
					return fmt.Errorf("set sysctl %s in %s: %w", name, n.path, &os.PathError{Op: "open", Path: dir, Err: oerr})
				}
				dirs[dir] = d
			}
			if read {
				old, err := readAt(d, base)
				if err != nil {
					return fmt.Errorf("read sysctl %s in %s: %w", name, n.path, err)
				}
				olds = append(olds, old)
				if old == value {
					continue
				}
			}
			if err := writeAt(d, base, value); err != nil {
				return fmt.Errorf("set sysctl %s=%s in %s: %w", name, value, n.path, err)
			}
		}
		return nil
	})
	return olds, err
}

// readAt reads the file base of the directory d, trimmed.
func readAt(d int, base string) (string, error) {
	fd, err := unix.Openat(d, base, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", &os.PathError{Op: "open", Path: base, Err: err}
	}
	defer unix.Close(fd)
	var b [4096]byte // a sysctl reads as at most a page
	k, err := unix.Read(fd, b[:])
	if err != nil {
		return "", &os.PathError{Op: "read", Path: base, Err: err}
	}
	return strings.TrimSpace(string(b[:k])), nil
}

// writeAt writes value to the file base of the directory d, in one write as a sysctl wants.
func writeAt(d int, base, value string) error {
	fd, err := unix.Openat(d, base, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: base, Err: err}
	}
	_, werr := unix.Write(fd, []byte(value))
	if cerr := unix.Close(fd); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return &os.PathError{Op: "write", Path: base, Err: werr}
	}
	return nil
}

func sysctlFile(name string) string { return "/proc/sys/" + strings.ReplaceAll(name, ".", "/") }
