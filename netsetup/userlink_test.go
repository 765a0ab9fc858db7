package netsetup_test

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
)

// TestUserLinkAllocation: user links take /30s that neither a host route nor another user
// has, a second up of the same space changes nothing, a full block is refused without a
// change, and down removes one user's link and rules and, with the last, the host table.
// Stand-in spaces are plain processes in network namespaces of the test's own.
func TestUserLinkAllocation(t *testing.T) {
	needRoot(t)
	s := newSandbox(t)
	gw := netip.MustParseAddr("172.18.255.2")
	// A firewall that drops forwarded traffic (as Docker's FORWARD policy does).
	inNetns(t, s.Host, "nft", "add table ip filter; add chain ip filter FORWARD { type filter hook forward priority 0; policy drop; }")
	// The host routes the block's first /30 already.
	inNetns(t, s.Host, "ip", "route", "add", "10.199.0.0/30", "dev", "lo")
	spaceA := userSpace(t, 5001)
	spaceB := userSpace(t, 5002)
	spaceC := userSpace(t, 5003)
	block := netip.MustParsePrefix("10.199.0.0/28")

	a, already, err := netsetup.UserLinkUp(s.Env, netsetup.UserLinkRequest{User: "a", UID: 5001, SpacePID: spaceA.Process.Pid, Gateway: gw, Block: block})
	if err != nil || already || a.Link != netip.MustParsePrefix("10.199.0.4/30") {
		t.Fatalf("first link: %+v, already %v, %v; want 10.199.0.4/30", a, already, err)
	}
	if _, already, err := netsetup.UserLinkUp(s.Env, netsetup.UserLinkRequest{User: "a", UID: 5001, SpacePID: spaceA.Process.Pid, Gateway: gw, Block: block}); err != nil || !already {
		t.Errorf("second up of the same space: already %v, %v", already, err)
	}
	b, _, err := netsetup.UserLinkUp(s.Env, netsetup.UserLinkRequest{User: "b", UID: 5002, SpacePID: spaceB.Process.Pid, Gateway: gw, Block: block})
	if err != nil || b.Link != netip.MustParsePrefix("10.199.0.8/30") {
		t.Fatalf("second user's link: %+v, %v; want 10.199.0.8/30", b, err)
	}
	if got := inNetns(t, "/proc/"+strconv.Itoa(spaceA.Process.Pid)+"/ns/net", "ip", "-br", "addr", "show", netsetup.UserLinkName); !strings.Contains(got, "10.199.0.6/30") {
		t.Errorf("space a's end: %q", got)
	}
	ruleset := inNetns(t, s.Host, "nft", "list", "table", "ip", "pontoon-users")
	forward := inNetns(t, s.Host, "nft", "list", "chain", "ip", "filter", "FORWARD")
	for _, want := range []string{`iifname "pu5001" accept`, `oifname "pu5002" ct state related,established accept`} {
		if !strings.Contains(forward, want) {
			t.Errorf("the drop chain lacks %s:\n%s", want, forward)
		}
	}
	for _, want := range []string{"10.199.0.4/30", "10.199.0.8/30"} {
		if !strings.Contains(ruleset, want) {
			t.Errorf("host table lacks %s:\n%s", want, ruleset)
		}
	}

	// 10.199.0.12/30 is the last of the block: take it by a host address, and the block is full.
	inNetns(t, s.Host, "ip", "addr", "add", "10.199.0.13/30", "dev", "lo")
	before := snapshot(t, s)
	_, _, err = netsetup.UserLinkUp(s.Env, netsetup.UserLinkRequest{User: "c", UID: 5003, SpacePID: spaceC.Process.Pid, Gateway: gw, Block: block})
	wantErr(t, "full block", err, "no free /30", "--link")
	unchanged(t, s, before, "a refused link", "the host")
	// A link that fails halfway (the space has an interface of the link's name) is rolled back.
	cNet := "/proc/" + strconv.Itoa(spaceC.Process.Pid) + "/ns/net"
	inNetns(t, cNet, "ip", "link", "add", netsetup.UserLinkName, "type", "veth", "peer", "name", "other")
	_, _, err = netsetup.UserLinkUp(s.Env, netsetup.UserLinkRequest{User: "c", UID: 5003, SpacePID: spaceC.Process.Pid, Gateway: gw, Block: netip.MustParsePrefix("10.198.0.0/30")})
	wantErr(t, "name clash in the space", err, "user c", "ip link add pu5003")
	unchanged(t, s, before, "a link failed halfway", "the host")

	// A space that ends leaves its link to gc, which removes that one only.
	if users, err := netsetup.GCUserLinks(s.Env); err != nil || len(users) != 0 {
		t.Errorf("gc with every space alive: %v, %v", users, err)
	}
	spaceA.Process.Kill()
	spaceA.Wait()
	if users, err := netsetup.GCUserLinks(s.Env); err != nil || !slices.Equal(users, []string{"a"}) {
		t.Errorf("gc after space a ended removed %v, %v; want a", users, err)
	}
	if err := netsetup.UserLinkDown(s.Env, 5001); err != nil {
		t.Fatal(err)
	}
	if got := linkNames(t, s.Host); strings.Contains(strings.Join(got, " "), "pu5001") || !strings.Contains(strings.Join(got, " "), "pu5002") {
		t.Errorf("host links after a's down: %v", got)
	}
	if err := netsetup.UserLinkDown(s.Env, 5002); err != nil {
		t.Fatal(err)
	}
	if err := netsetup.UserLinkDown(s.Env, 5002); err != nil {
		t.Errorf("second down: %v", err)
	}
	if got := inNetns(t, s.Host, "nft", "list", "tables"); strings.Contains(got, "pontoon-users") {
		t.Errorf("host table left after the last down: %s", got)
	}
	if forward := inNetns(t, s.Host, "nft", "list", "chain", "ip", "filter", "FORWARD"); strings.Contains(forward, "pu50") {
		t.Errorf("exceptions left in the drop chain:\n%s", forward)
	}
	if links, err := netsetup.UserLinks(s.Env); err != nil || len(links) != 0 {
		t.Errorf("records after down: %v, %v", links, err)
	}
}

// userSpace starts a stand-in for uid's space: a process of uid in a user namespace that
// uid made (so uid owns it) with a network namespace of its own, as a real space is.
func userSpace(t *testing.T, uid int) *exec.Cmd {
	t.Helper()
	id := strconv.Itoa(uid)
	cmd := exec.Command("setpriv", "--reuid", id, "--regid", id, "--clear-groups", "unshare", "--user", "--map-root-user", "--net", "sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	self, _ := os.Readlink("/proc/self/ns/net")
	deadline := time.Now().Add(10 * time.Second)
	for {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid))
		net, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid))
		if strings.TrimSpace(string(comm)) == "sleep" && net != "" && net != self {
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("uid %d's stand-in space did not start (comm %q, net %q)", uid, comm, net)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestUserLinkForeignSpace: the holder's pid comes from the user (their own record, their
// own command's output), so root links only a network namespace that the user's own user
// namespace owns: not one of root's, not another user's. A refused request changes
// nothing, not even the user's existing link.
func TestUserLinkForeignSpace(t *testing.T) {
	needRoot(t)
	s := newSandbox(t)
	gw := netip.MustParseAddr("172.18.255.2")
	block := netip.MustParsePrefix("10.199.0.0/28")
	own := userSpace(t, 5011)
	other := userSpace(t, 5012)
	rootOwned := startIn(t, newNetns(t, "root.net"))
	hostProc := exec.Command("sleep", "600")
	if err := hostProc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hostProc.Process.Kill(); hostProc.Wait() })

	if _, _, err := netsetup.UserLinkUp(s.Env, netsetup.UserLinkRequest{User: "a", UID: 5011, SpacePID: own.Process.Pid, Gateway: gw, Block: block}); err != nil {
		t.Fatalf("link of a's own space: %v", err)
	}
	before := snapshot(t, s)
	for _, c := range []struct {
		what string
		pid  int
	}{
		{"another user's space", other.Process.Pid},
		{"a namespace of root's", rootOwned.Process.Pid},
		{"the test's own network namespace", hostProc.Process.Pid},
	} {
		_, _, err := netsetup.UserLinkUp(s.Env, netsetup.UserLinkRequest{User: "a", UID: 5011, SpacePID: c.pid, Gateway: gw, Block: block})
		wantErr(t, c.what, err, "user a", "not owned by uid 5011")
		unchanged(t, s, before, "a link to "+c.what, "the host")
	}
	if got := linkNames(t, fmt.Sprintf("/proc/%d/ns/net", other.Process.Pid)); slices.Contains(got, netsetup.UserLinkName) {
		t.Errorf("another user's space got a's link: %v", got)
	}
	_, _, err := netsetup.UserLinkUp(s.Env, netsetup.UserLinkRequest{User: "root", UID: 0, SpacePID: rootOwned.Process.Pid, Gateway: gw, Block: block})
	wantErr(t, "uid 0", err, "uid 0")
	unchanged(t, s, before, "a link for uid 0", "the host")
	if err := netsetup.UserLinkDown(s.Env, 5011); err != nil {
		t.Fatal(err)
	}
}

// TestUserLinkRelink: a link whose record outlived its veth (pontoon killed between the two,
// or the interface deleted by hand) is made again by the next up, not reported as linked.
func TestUserLinkRelink(t *testing.T) {
	needRoot(t)
	s := newSandbox(t)
	gw := netip.MustParseAddr("172.18.255.2")
	space := userSpace(t, 5021)
	req := netsetup.UserLinkRequest{User: "a", UID: 5021, SpacePID: space.Process.Pid, Gateway: gw, Block: netip.MustParsePrefix("10.199.0.0/28")}
	l, _, err := netsetup.UserLinkUp(s.Env, req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netsetup.UserLinkDown(s.Env, 5021) })
	inNetns(t, s.Host, "ip", "link", "del", l.HostIf())
	l2, already, err := netsetup.UserLinkUp(s.Env, req)
	if err != nil || already {
		t.Fatalf("up after the link was lost: already %v, %v; want it made again", already, err)
	}
	if got := inNetns(t, s.Host, "ip", "-br", "addr", "show", l2.HostIf()); !strings.Contains(got, l2.HostAddr().String()) {
		t.Errorf("host end after the second up: %q", got)
	}
	if got := inNetns(t, fmt.Sprintf("/proc/%d/ns/net", space.Process.Pid), "ip", "-br", "addr", "show", netsetup.UserLinkName); !strings.Contains(got, l2.SpaceAddr().String()) {
		t.Errorf("space end after the second up: %q", got)
	}
}

// TestUserLinkForwardingRestored: whichever order user links and the host's gateway come
// and go in, the host's net.ipv4.ip_forward ends as it was before the first of them.
func TestUserLinkForwardingRestored(t *testing.T) {
	needRoot(t)
	gw := netip.MustParseAddr("172.18.255.2")
	for _, order := range []string{"link gateway unlink down", "link gateway down unlink", "gateway link unlink down", "gateway link down unlink"} {
		t.Run(strings.ReplaceAll(order, " ", "-"), func(t *testing.T) {
			s := newSandbox(t)
			before := ipForward(t, s.Host)
			space := userSpace(t, 5031)
			for _, step := range strings.Fields(order) {
				var err error
				switch step {
				case "link":
					_, _, err = netsetup.UserLinkUp(s.Env, netsetup.UserLinkRequest{User: "a", UID: 5031, SpacePID: space.Process.Pid, Gateway: gw})
				case "gateway":
					_, err = netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{})
				case "unlink":
					err = netsetup.UserLinkDown(s.Env, 5031)
				case "down":
					err = netsetup.GatewayDown(s.Env, false)
				}
				if err != nil {
					t.Fatalf("%s: %v", step, err)
				}
			}
			if got := ipForward(t, s.Host); got != before {
				t.Errorf("after %s the host's ip_forward is %s; it was %s", order, got, before)
			}
		})
	}
}

// TestUserLinkNoSpoofing: the user is root of their space and may send from any source
// address; the host takes from a user link only what comes from the link's own /30 (and no
// IPv6 at all), so a user cannot put forged sources onto the host's network, nor before the
// host's own services, which they could not do as a plain user of the host.
func TestUserLinkNoSpoofing(t *testing.T) {
	needRoot(t)
	s := newSandbox(t)
	space := userSpace(t, 5041)
	l, _, err := netsetup.UserLinkUp(s.Env, netsetup.UserLinkRequest{User: "a", UID: 5041, SpacePID: space.Process.Pid, Gateway: netip.MustParseAddr("172.18.255.2")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netsetup.UserLinkDown(s.Env, 5041) })
	const forged = "192.0.2.77"
	upstream := sandbox.UpstreamAddr.Addr().String()
	inNetns(t, s.Upstream, "nft", "add table ip spy; add chain ip spy pre { type filter hook prerouting priority -300; }; add rule ip spy pre ip saddr "+forged+" counter; add rule ip spy pre icmp type echo-request counter")
	inNetns(t, s.Host, "nft", "add table ip spy; add chain ip spy in { type filter hook input priority -300; }; add rule ip spy in ip saddr "+forged+" counter")
	spaceNet := fmt.Sprintf("/proc/%d/ns/net", space.Process.Pid)
	inNetns(t, spaceNet, "ip", "addr", "add", forged+"/32", "dev", netsetup.UserLinkName)
	exec.Command("nsenter", "--net="+spaceNet, "ping", "-c1", "-W1", "-I", forged, upstream).Run()
	exec.Command("nsenter", "--net="+spaceNet, "ping", "-c1", "-W1", "-I", forged, l.HostAddr().Addr().String()).Run()
	// The link's own address gets through: the path is there.
	if out, err := exec.Command("nsenter", "--net="+spaceNet, "ping", "-c1", "-W2", "-I", l.SpaceAddr().Addr().String(), upstream).CombinedOutput(); err != nil {
		t.Fatalf("the space's own address does not reach the upstream: %v\n%s", err, out)
	}
	for _, c := range []struct{ ns, where string }{{s.Upstream, "the upstream"}, {s.Host, "the host's input"}} {
		out := inNetns(t, c.ns, "nft", "list", "table", "ip", "spy")
		if !strings.Contains(out, "ip saddr "+forged+" counter packets 0 ") {
			t.Errorf("a forged source from the space reached %s:\n%s", c.where, out)
		}
	}
	if out := inNetns(t, s.Host, "ip", "-6", "addr", "show", "dev", l.HostIf()); strings.TrimSpace(out) != "" {
		t.Errorf("the host's end of the link speaks IPv6:\n%s", out)
	}
}
