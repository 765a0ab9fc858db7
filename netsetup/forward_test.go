package netsetup_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/internal/nftpool"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
)

// The host reaches guests' ports through x.y.255.2:HOSTPORT, TCP and UDP, each forward landing
// on the right bridge even when guests of both bridges share an address.
func TestPortForwards(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	gwAddr := netsetup.DefaultPlan().GatewayAddr().Addr()
	mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{Ports: mustPorts(t, "8080:web:7000/tcp", "8053:web:7000/udp")})
	mustBridge(t, s.Env, "b2", netsetup.BridgeOptions{Ports: mustPorts(t, "8081:172.18.0.10:7000/tcp", "8054:172.18.0.10:7000/udp")})
	// Guests arrive after their bridges: the forwards must follow them.
	web1 := mustGuest(t, s.Env, "b1", "web", "172.18.0.10")
	web2 := mustGuest(t, s.Env, "b2", "web", "172.18.0.10")
	serveIdentity(t, web1.Netns, addr(web1.IP), 7000, "b1/web")
	serveIdentity(t, web2.Netns, addr(web2.IP), 7000, "b2/web")
	check := func(port int, proto, want string) {
		t.Helper()
		got, err := ask(s.Host, gwAddr, port, proto, okTimeout)
		if err != nil || got != want {
			t.Errorf("host -> %s:%d/%s: got %q, %v; want %q", gwAddr, port, proto, got, err, want)
		}
	}
	check(8080, "tcp", "b1/web")
	check(8053, "udp", "b1/web")
	check(8081, "tcp", "b2/web")
	check(8054, "udp", "b2/web")
	// Only the forwarded protocol is forwarded.
	if got, err := ask(s.Host, gwAddr, 8080, "udp", failTimeout); err == nil {
		t.Errorf("8080/udp is not forwarded but answered %q", got)
	}

	// A guest that leaves takes its forward along; one that comes back gets it again.
	if err := netsetup.DelGuest(s.Env, "b1", "web"); err != nil {
		t.Fatal(err)
	}
	if got, err := ask(s.Host, gwAddr, 8080, "tcp", failTimeout); err == nil {
		t.Errorf("8080/tcp still answers (%q) after its guest left", got)
	}
	back := mustGuest(t, s.Env, "b1", "web", "172.18.0.10")
	serveIdentity(t, back.Netns, addr(back.IP), 7000, "b1/web again")
	check(8080, "tcp", "b1/web again")

	// A host port another bridge forwards is refused, naming that bridge, and nothing of the
	// new bridge is left behind.
	before := snapshot(t, s)
	_, err := netsetup.CreateBridge(s.Env, "b3", netsetup.BridgeOptions{Ports: mustPorts(t, "9000:x:1/tcp", "8081:x:1/tcp")})
	wantErr(t, "conflicting port", err, `"b3"`, "8081/tcp", `"b2"`)
	unchanged(t, s, before, "refused bridge", "chain")
	if _, err := netsetup.GetBridge(s.Env, "b3"); !errors.Is(err, netsetup.ErrNoBridge) {
		t.Errorf("GetBridge(b3) after refusal: %v, want ErrNoBridge", err)
	}
	// Same number, other protocol: no conflict. And once b2 is gone its ports are free.
	mustBridge(t, s.Env, "b4", netsetup.BridgeOptions{Ports: mustPorts(t, "8081:x:1/udp")})
	if err := netsetup.DestroyBridge(s.Env, "b2"); err != nil {
		t.Fatal(err)
	}
	if got, err := ask(s.Host, gwAddr, 8081, "tcp", failTimeout); err == nil {
		t.Errorf("8081/tcp still answers (%q) after its bridge was destroyed", got)
	}
	mustBridge(t, s.Env, "b3", netsetup.BridgeOptions{Ports: mustPorts(t, "8081:web:7000/tcp")})
	web3 := mustGuest(t, s.Env, "b3", "web", "172.18.0.10")
	serveIdentity(t, web3.Netns, addr(web3.IP), 7000, "b3/web")
	check(8081, "tcp", "b3/web")
}

// A guest's own outbound connection to a port number that is forwarded is not captured by
// the forward: it reaches the upstream server on that port. Neither is the host's.
func TestPortForwardDoesNotCaptureOutbound(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{Ports: mustPorts(t, "8080:web:8080/tcp", "8080:web:8080/udp")})
	web := mustGuest(t, s.Env, "b1", "web", "172.18.0.10")
	other := mustGuest(t, s.Env, "b1", "other", "172.18.0.11")
	serveIdentity(t, web.Netns, addr(web.IP), 8080, "web")
	serveIdentity(t, s.Upstream, sandbox.UpstreamAddr.Addr(), 8080, "upstream")
	up := sandbox.UpstreamAddr.Addr()
	mustAnswer(t, s.Host, netsetup.DefaultPlan().GatewayAddr().Addr(), 8080, "web")
	for _, from := range []string{web.Netns, other.Netns, s.Host} {
		mustAnswer(t, from, up, 8080, "upstream")
	}
}

// TestForwardRewritesKeepTheirSocket: rewriting a namespace's tables for a forward (its guest
// arriving or leaving, a bridge with forwards coming or going) replaces rules, and the close
// of a fresh nftables socket would then wait for the kernel to free them, 10 ms and more
// per family, in every such call. The rewrite goes through nftpool: this process still holds
// its socket in the namespace afterwards, marked for nftpool.Linger at a command's exit.
func TestForwardRewritesKeepTheirSocket(t *testing.T) {
	s := newChain(t, netsetup.GatewayOptions{})
	t.Cleanup(nftpool.Release)
	mustBridge(t, s.Env, "fw", netsetup.BridgeOptions{Ports: mustPorts(t, "8090:web:7000/tcp")})
	for _, step := range []struct {
		what string
		do   func() error
	}{
		{"the forward's guest arrives", func() error {
			_, err := netsetup.AddGuest(s.Env, "fw", "web", netsetup.GuestOptions{IP: "172.18.0.10"})
			return err
		}},
		{"the forward's guest leaves", func() error { return netsetup.DelGuest(s.Env, "fw", "web") }},
	} {
		nftpool.Release()
		if err := step.do(); err != nil {
			t.Fatal(err)
		}
		if !nftpool.Pending() {
			t.Errorf("%s: no socket left for nftpool.Linger", step.what)
		}
		if !holdsNftSocketIn(t, mustBridgeNetns(t, s.Env, "fw")) {
			t.Errorf("%s: this process holds no nftables socket in the bridge namespace", step.what)
		}
	}
	nftpool.Release()
	if err := netsetup.DestroyBridge(s.Env, "fw"); err != nil {
		t.Fatal(err)
	}
	if !holdsNftSocketIn(t, s.Env.GatewayNetns()) {
		t.Error("destroying a bridge with forwards: this process holds no nftables socket in the gateway namespace")
	}
}

// holdsNftSocketIn reports whether this process has an nftables socket of the namespace at
// nsPath open: the kernel lists a namespace's netlink sockets in its /proc/net/netlink.
func holdsNftSocketIn(t *testing.T, nsPath string) bool {
	t.Helper()
	own := map[string]bool{}
	fds, _ := filepath.Glob("/proc/self/fd/*")
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && strings.HasPrefix(l, "socket:[") {
			own[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	for _, l := range strings.Split(inNetns(t, nsPath, "cat", "/proc/net/netlink"), "\n") {
		// sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode; Eth 12 is NETLINK_NETFILTER.
		f := strings.Fields(l)
		if len(f) >= 10 && f[1] == "12" && own[f[9]] {
			return true
		}
	}
	return false
}

// TestForwardHeldByKilledRun: a host port another bridge forwards is refused; when that
// bridge's owner (a run) was killed, the refusal says that gc frees the port, and after gc
// the port can be forwarded again.
func TestForwardHeldByKilledRun(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "live", netsetup.BridgeOptions{Ports: mustPorts(t, "18081:a:80")})
	_, err := netsetup.CreateBridge(s.Env, "b", netsetup.BridgeOptions{Ports: mustPorts(t, "18081:a:80")})
	wantErr(t, "forward of a live bridge's port", err, `already forwarded by bridge "live"; choose another host port or destroy that bridge`)
	if !errors.Is(err, netsetup.ErrInvalid) {
		t.Errorf("a taken host port: %v is no refused value (ErrInvalid: exit status 2)", err)
	}
	owner := exec.Command("true")
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	p, err := netsetup.ProcessOf(owner.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	owner.Wait()
	mustBridge(t, s.Env, "run", netsetup.BridgeOptions{Ports: mustPorts(t, "18082:a:80"), Owner: &p})
	_, err = netsetup.CreateBridge(s.Env, "b", netsetup.BridgeOptions{Ports: mustPorts(t, "18082:a:80")})
	wantErr(t, "forward of a killed run's port", err, "its run or creator was killed: run `pontoon gc`")
	if _, err := netsetup.GC(s.Env); err != nil {
		t.Fatal(err)
	}
	mustBridge(t, s.Env, "b", netsetup.BridgeOptions{Ports: mustPorts(t, "18082:a:80")})
}
