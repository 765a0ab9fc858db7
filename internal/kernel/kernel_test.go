package kernel_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/internal/kernel"
	"github.com/pontoon-dev/pontoon/internal/testkit"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

func TestRetry(t *testing.T) {
	for _, c := range []struct {
		interrupted int
		want        error
	}{{0, nil}, {kernel.DumpAttempts - 1, nil}, {kernel.DumpAttempts, netlink.ErrDumpInterrupted}} {
		calls := 0
		v, err := kernel.Retry(func() (int, error) {
			calls++
			if calls <= c.interrupted {
				return calls, netlink.ErrDumpInterrupted
			}
			return calls, nil
		})
		if !errors.Is(err, c.want) || (c.want == nil && v != c.interrupted+1) || calls > kernel.DumpAttempts {
			t.Errorf("%d interruptions: %d calls, result %d, %v; want error %v", c.interrupted, calls, v, err, c.want)
		}
	}
}

func TestNSSysctlsAndDumps(t *testing.T) {
	n := newNS(t)
	// A new namespace takes IPv4 settings from the host's, whatever they are: set one and
	// read the value back as the old one of the next change.
	if _, err := n.Sysctl("net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	if old, err := n.Sysctl("net.ipv4.ip_forward", "1"); err != nil || old != "1" {
		t.Fatalf("Sysctl: old %q, %v; want the 1 just set", old, err)
	}
	if err := n.Sysctls("net.ipv4.conf.all.send_redirects", "0", "net.ipv4.ip_forward", "0"); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"net.ipv4.ip_forward": "0", "net.ipv4.conf.all.send_redirects": "0"} {
		if got, err := n.ReadSysctl(name); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
	if err := n.Sysctls("net.ipv4.ip_forward"); err == nil {
		t.Error("Sysctls with an odd number of words succeeded")
	}
	// Several files of one directory (opened once), then one of another directory again.
	if err := n.Sysctls("net.ipv4.conf.lo.forwarding", "1", "net.ipv4.conf.lo.rp_filter", "2", "net.ipv4.ip_forward", "1", "net.ipv4.conf.lo.accept_local", "1"); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"net.ipv4.conf.lo.forwarding": "1", "net.ipv4.conf.lo.rp_filter": "2", "net.ipv4.ip_forward": "1", "net.ipv4.conf.lo.accept_local": "1"} {
		if got, err := n.ReadSysctl(name); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
	// A sysctl the kernel does not have (a device that is not there) is an error naming it.
	for _, name := range []string{"net.ipv4.conf.nosuch0.forwarding", "net.ipv4.no_such_sysctl"} {
		if err := n.Sysctls(name, "1"); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), name) {
			t.Errorf("Sysctls(%s): %v; want a not-exist error naming it", name, err)
		}
	}
	links, err := n.LinkList()
	if err != nil || len(links) != 1 || links[0].Attrs().Name != "lo" {
		t.Errorf("LinkList in a fresh namespace: %v, %v; want only lo", links, err)
	}
}

// TestExecuteAnswersItsOwnRequest: a request for one link that asks for an acknowledgement
// gets the link, then the acknowledgement, which the library leaves unread. The next request
// on the namespace's socket must not take it for its answer: asking for a link that is not
// there fails, and asking for one that is answers with it, in any order.
func TestExecuteAnswersItsOwnRequest(t *testing.T) {
	n := newNS(t)
	get := func(name string) ([][]byte, error) {
		req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
		req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
		req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
		return n.Execute(req, unix.RTM_NEWLINK)
	}
	for i, name := range []string{"lo", "nosuch", "lo", "lo", "nosuch"} {
		msgs, err := get(name)
		if name == "nosuch" && (err == nil || len(msgs) > 0) || name == "lo" && (err != nil || len(msgs) != 1) {
			t.Errorf("request %d for %s: %d answers, %v", i, name, len(msgs), err)
		}
	}
	if ports, err := n.Ports(); err != nil || len(ports) != 1 || ports[0].Name != "lo" {
		t.Errorf("ports after: %+v, %v", ports, err)
	}
}

// newNS opens a network namespace of the test's own, removed when the test ends.
func newNS(t *testing.T) *kernel.NS {
	t.Helper()
	testkit.NeedRoot(t, "creates a network namespace")
	p := filepath.Join(t.TempDir(), "n")
	if err := ns.New(ns.Spec{Net: p}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Remove(p) })
	n, err := kernel.OpenNS(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

// TestDelLinks: the links named go in one request, the others of the namespace stay, and a
// link gone already is passed over.
func TestDelLinks(t *testing.T) {
	n := newNS(t)
	var doomed []int
	for _, name := range []string{"d1", "d2", "d3", "keep"} {
		if err := n.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}); err != nil {
			t.Fatal(err)
		}
		l, err := n.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if name != "keep" {
			doomed = append(doomed, l.Attrs().Index)
		}
	}
	if err := n.DelLinks(append(doomed, 99999)); err != nil {
		t.Fatal(err)
	}
	links, err := n.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	if strings.Join(names, " ") != "lo keepp keep" && strings.Join(names, " ") != "lo keep keepp" {
		t.Errorf("links after DelLinks: %v; want lo and the pair keep", names)
	}
}
