package selftest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/internal/testkit"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const (
	netemDelay = 100 * time.Millisecond
	// A round trip through a qdisc that holds every packet for netemDelay
	// cannot be shorter than that unless netem is not acting; the margin only
	// absorbs timer granularity. This checks that netem is active, it does not
	// measure performance.
	minRoundTrip = 90 * time.Millisecond
)

// TestNetemDelaysUDPEcho sends one UDP datagram across a veth pair between two
// fresh namespaces, with a 100 ms netem qdisc on the sending end, and expects
// the echo to take at least 90 ms.
func TestNetemDelaysUDPEcho(t *testing.T) {
	if os.Getenv("PONTOON_VM") != "1" {
		t.Skip("runs only inside the stock-kernel VM (vmtest/run.sh sets PONTOON_VM=1): this machine's kernel may lack netem")
	}
	testkit.NeedRoot(t, "creates network namespaces")

	pathA, nsA := newNetNS(t)
	pathB, nsB := newNetNS(t)
	hA, hB := handleAt(t, nsA), handleAt(t, nsB)

	attrs := netlink.NewLinkAttrs()
	attrs.Name = "vmst-a"
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: "vmst-b", PeerNamespace: netlink.NsFd(nsB)}
	if err := hA.LinkAdd(veth); err != nil {
		t.Fatalf("create veth pair vmst-a/vmst-b: %v", err)
	}
	linkA := configure(t, hA, "vmst-a", "10.231.0.1/30")
	configure(t, hB, "vmst-b", "10.231.0.2/30")

	qdisc := netlink.NewNetem(netlink.QdiscAttrs{
		LinkIndex: linkA.Attrs().Index,
		Handle:    netlink.MakeHandle(1, 0),
		Parent:    netlink.HANDLE_ROOT,
	}, netlink.NetemQdiscAttrs{Latency: uint32(netemDelay / time.Microsecond)})
	if err := hA.QdiscAdd(qdisc); err != nil {
		// The kernel answers ENOENT for a qdisc kind it neither has built in nor can load.
		if errors.Is(err, unix.ENOENT) {
			t.Skipf("netem is not available in this kernel (%s): %v", kernelRelease(), err)
		}
		t.Fatalf("add netem qdisc to vmst-a: %v", err)
	}

	server := listenUDPIn(t, pathB, "10.231.0.2:7007")
	go echo(server)
	client := listenUDPIn(t, pathA, "10.231.0.1:0")

	rtt, err := roundTrip(client, server.LocalAddr())
	if err != nil {
		t.Fatalf("UDP echo from 10.231.0.1 to %v: %v", server.LocalAddr(), err)
	}
	if rtt < minRoundTrip {
		t.Fatalf("UDP echo over a link with %v netem delay came back after %v, want >= %v: netem is not delaying packets", netemDelay, rtt, minRoundTrip)
	}
	t.Logf("UDP echo round trip with %v netem delay: %v", netemDelay, rtt)
}

// newNetNS creates a network namespace pinned in the test's temporary directory, removed at
// the end of the test, and returns its path and an open handle on it.
func newNetNS(t *testing.T) (string, netns.NsHandle) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "net")
	if err := ns.New(ns.Spec{Net: path}); err != nil {
		t.Fatalf("create network namespace: %v", err)
	}
	t.Cleanup(func() { ns.Remove(path) })
	h, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatalf("open network namespace %s: %v", path, err)
	}
	t.Cleanup(func() { h.Close() })
	return path, h
}

func handleAt(t *testing.T, ns netns.NsHandle) *netlink.Handle {
	t.Helper()
	// Route family only: a handle for every family would need xfrm_user too.
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatalf("open netlink handle in namespace %v: %v", ns, err)
	}
	t.Cleanup(h.Close)
	return h
}

// configure gives the named link an address and brings it and loopback up.
func configure(t *testing.T, h *netlink.Handle, name, cidr string) netlink.Link {
	t.Helper()
	link, err := h.LinkByName(name)
	if err != nil {
		t.Fatalf("find link %q: %v", name, err)
	}
	addr, err := netlink.ParseAddr(cidr)
	if err != nil {
		t.Fatalf("parse address %q: %v", cidr, err)
	}
	if err := h.AddrAdd(link, addr); err != nil {
		t.Fatalf("add address %s to %q: %v", cidr, name, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		t.Fatalf("bring up %q: %v", name, err)
	}
	return link
}

// listenUDPIn opens a UDP socket inside the namespace at nsPath. A socket belongs to the namespace
// it was created in, so it can be used from any goroutine afterwards.
func listenUDPIn(t *testing.T, nsPath string, addr string) *net.UDPConn {
	t.Helper()
	laddr, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		t.Fatalf("parse UDP address %q: %v", addr, err)
	}
	var conn *net.UDPConn
	err = ns.Do(nsPath, func() error {
		c, err := net.ListenUDP("udp4", laddr)
		conn = c
		return err
	})
	if err != nil {
		t.Fatalf("listen on UDP %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// echo sends every datagram back to its sender until conn is closed.
func echo(conn *net.UDPConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if _, err := conn.WriteToUDP(buf[:n], from); err != nil {
			return
		}
	}
}

// roundTrip sends one datagram to to and returns how long its echo took.
func roundTrip(conn *net.UDPConn, to net.Addr) (time.Duration, error) {
	msg := []byte("pontoon-vmtest")
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return 0, fmt.Errorf("set deadline: %w", err)
	}
	start := time.Now()
	if _, err := conn.WriteTo(msg, to); err != nil {
		return 0, fmt.Errorf("send: %w", err)
	}
	buf := make([]byte, 64)
	n, _, err := conn.ReadFrom(buf)
	if err != nil {
		return 0, fmt.Errorf("wait for echo: %w", err)
	}
	if string(buf[:n]) != string(msg) {
		return 0, fmt.Errorf("echo returned %q, want %q", buf[:n], msg)
	}
	return time.Since(start), nil
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown kernel"
	}
	return "kernel " + unix.ByteSliceToString(u.Release[:])
}
