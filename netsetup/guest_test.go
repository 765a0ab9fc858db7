package netsetup_test

import (
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/internal/advice"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"github.com/pontoon-dev/pontoon/netsetup/probe"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
)

// An existing namespace joins a bridge by path: it gets eth0 and reaches the other guests;
// leaving removes eth0 and nothing else (the namespace is not pontoon's).
func TestAttachByNetnsPath(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{})
	peer := mustGuest(t, s.Env, "b1", "peer", "172.18.0.1")
	own := newNetns(t, "own")
	g, err := netsetup.AddGuest(s.Env, "b1", "ext", netsetup.GuestOptions{IP: "172.18.0.5", Netns: own})
	if err != nil {
		t.Fatal(err)
	}
	if g.Owned || g.Netns != own || g.PortName() != "g5" {
		t.Errorf("guest %+v: want not owned, netns %s, port g5", g, own)
	}
	if _, found, err := netsetup.FindGuest(s.Env, "b1", "172.18.0.5"); err != nil || found.Name != "ext" {
		t.Errorf("FindGuest by IP: %+v, %v", found, err)
	}
	serve(t, own, addr("172.18.0.5"))
	serve(t, peer.Netns, addr(peer.IP))
	mustReach(t, peer.Netns, addr("172.18.0.5"))
	mustReach(t, own, addr(peer.IP))
	serve(t, s.Upstream, sandbox.UpstreamAddr.Addr())
	mustReach(t, own, sandbox.UpstreamAddr.Addr())

	for range 2 { // the second time there is nothing to delete: still success
		if err := netsetup.DelGuest(s.Env, "b1", "ext"); err != nil {
			t.Fatal(err)
		}
	}
	if !ns.IsPinned(own) {
		t.Error("DelGuest removed a namespace pontoon did not create")
	}
	if got := linkNames(t, own); fmt.Sprint(got) != "[lo]" {
		t.Errorf("links left in the detached namespace: %v", got)
	}
	if got := linkNames(t, peer.Netns); fmt.Sprint(got) != "[eth0 lo]" {
		t.Errorf("peer links: %v", got)
	}
	if _, _, err := netsetup.FindGuest(s.Env, "b1", "ext"); err == nil {
		t.Error("FindGuest still finds the deleted guest")
	}
	// The address is free again.
	if _, err := netsetup.AddGuest(s.Env, "b1", "ext", netsetup.GuestOptions{IP: "172.18.0.5", Netns: own}); err != nil {
		t.Errorf("re-attach: %v", err)
	}
}

// A running process's namespace joins by pid, as the OCI hook does for a container; the key
// removes it again.
func TestAttachByPID(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{})
	peer := mustGuest(t, s.Env, "b1", "peer", "172.18.0.1")
	proc := startIn(t, newNetns(t, "proc"))
	pid := proc.Process.Pid
	g, err := netsetup.AddGuest(s.Env, "b1", "ctr", netsetup.GuestOptions{IP: "172.18.0.7", PID: pid, Key: "container-1"})
	if err != nil {
		t.Fatal(err)
	}
	if g.Owned || g.Process == nil || g.Process.PID != pid || g.Netns != fmt.Sprintf("/proc/%d/ns/net", pid) {
		t.Errorf("guest %+v: want the namespace of pid %d, not owned", g, pid)
	}
	serve(t, g.Netns, addr(g.IP))
	serve(t, peer.Netns, addr(peer.IP))
	mustReach(t, peer.Netns, addr(g.IP))
	mustReach(t, g.Netns, addr(peer.IP))
	// What the process itself sees.
	out, err := exec.Command("nsenter", "--net", "-t", fmt.Sprint(pid), "ip", "-4", "-o", "addr", "show", "eth0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "172.18.0.7/24") {
		t.Errorf("eth0 of pid %d: %s %v", pid, out, err)
	}
	for range 2 {
		if err := netsetup.DelGuestByKey(s.Env, "container-1"); err != nil {
			t.Fatal(err)
		}
	}
	if b, _ := netsetup.GetBridge(s.Env, "b1"); len(b.Guests) != 1 || b.Guests[0].Name != "peer" {
		t.Errorf("guests after DelGuestByKey: %+v", b.Guests)
	}
	if got := linkNames(t, g.Netns); fmt.Sprint(got) != "[lo]" {
		t.Errorf("links left in the process's namespace: %v", got)
	}
	if _, err := netsetup.ProcessOf(pid); err != nil {
		t.Errorf("detaching affected the process: %v", err)
	}
}

// A guest attached by the pid of a process that exits ends with it: the bridge's listing and
// check say so, its address is refused to another guest with why and what frees it, and gc
// frees it, taking eth0 out of the namespace when something else still holds that. (It used to show as ready and pass the check, its address taken, until gc.)
func TestGuestOfExitedProcess(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{})
	held := newNetns(t, "proc") // held by its pin too, as a pod's namespace by its infra container
	proc := startIn(t, held)
	pid := proc.Process.Pid
	if _, err := netsetup.AddGuest(s.Env, "b1", "ctr", netsetup.GuestOptions{IP: "172.18.0.7", PID: pid}); err != nil {
		t.Fatal(err)
	}
	problem := func() string {
		b, err := netsetup.GetBridge(s.Env, "b1")
		if err != nil || len(b.Guests) != 1 {
			t.Fatalf("bridge b1: %+v, %v", b, err)
		}
		return b.Guests[0].Problem
	}
	if p := problem(); p != "" {
		t.Errorf("problem of a guest whose process runs: %s", p)
	}
	proc.Process.Kill()
	proc.Wait()
	if p := problem(); !strings.Contains(p, fmt.Sprintf("process (pid %d) has exited", pid)) {
		t.Errorf("problem of a guest whose process exited: %q", p)
	}
	if ps, err := netsetup.BridgeProblems(s.Env, "b1"); err != nil || len(ps) != 1 || !strings.Contains(ps[0], "guest ctr: its process") {
		t.Errorf("bridge check: %q, %v; want the exited process's guest", ps, err)
	}
	_, err := netsetup.AddGuest(s.Env, "b1", "x", netsetup.GuestOptions{IP: "172.18.0.7"})
	var taken *netsetup.TakenError
	if !errors.As(err, &taken) || !strings.Contains(err.Error(), "has exited") || !strings.Contains(err.Error(), "pontoon gc") {
		t.Errorf("add at the address of the exited process's guest: %v", err)
	}
	if _, err := netsetup.GC(s.Env); err != nil {
		t.Fatal(err)
	}
	// The namespace lives on: gc takes eth0 out of it, as it frees the address.
	if got := linkNames(t, held); fmt.Sprint(got) != "[lo]" {
		t.Errorf("links of the held namespace after gc: %v; want lo alone", got)
	}
	mustGuest(t, s.Env, "b1", "x", "172.18.0.7")
}

// A guest attached by the pin of a namespace the user made (--netns, a CNI pod's) whose pin
// is removed without a guest del: `bridge show` says so (it showed ready), its address is
// refused saying why, and gc frees it once the namespace has ended (its port goes with it).
// One whose namespace something still holds keeps working and is kept, as is one whose pin
// file is there but not mounted in sight (pinned in another mount namespace).
func TestGuestOfRemovedPin(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{})
	problem := func(name string) string {
		b, err := netsetup.GetBridge(s.Env, "b1")
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range b.Guests {
			if g.Name == name {
				return g.Problem
			}
		}
		t.Fatalf("bridge b1 has no guest %s: %+v", name, b.Guests)
		return ""
	}
	attach := func(name, ip string) string {
		p := newNetns(t, name)
		if _, err := netsetup.AddGuest(s.Env, "b1", name, netsetup.GuestOptions{IP: ip, Netns: p}); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pod := attach("pod", "172.18.0.7")
	held := attach("held", "172.18.0.9")
	hidden := attach("hidden", "172.18.0.8")
	peer := mustGuest(t, s.Env, "b1", "peer", "172.18.0.1")
	serve(t, peer.Netns, guestIP(peer))
	holder := startIn(t, held)
	if err := unix.Unmount(hidden, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{pod, held} {
		if err := ns.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"pod", "held"} {
		if p := problem(name); !strings.Contains(p, "the pin of its namespace") || !strings.Contains(p, "was removed outside pontoon") {
			t.Errorf("problem of guest %s, whose pin was removed: %q", name, p)
		}
	}
	if p := problem("hidden"); p != "" {
		t.Errorf("problem of a guest whose pin is not in sight: %q", p)
	}
	_, err := netsetup.AddGuest(s.Env, "b1", "x", netsetup.GuestOptions{IP: "172.18.0.7"})
	if !strings.Contains(fmt.Sprint(err), "though the pin of its namespace "+pod+" was removed") {
		t.Errorf("add at the address of the guest whose pin was removed: %v", err)
	}
	// The pod's namespace ends (nothing holds it) and its port with it: gc frees the guest.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		rep, err := netsetup.GC(s.Env)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(rep.Guests, "b1/held") || slices.Contains(rep.Guests, "b1/hidden") {
			t.Fatalf("gc removed %v; a guest whose namespace lives on must stay", rep.Guests)
		}
		if slices.Contains(rep.Guests, "b1/pod") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("10s after the pod's pin was removed gc still keeps its guest")
		}
	}
	mustGuest(t, s.Env, "b1", "x", "172.18.0.7")
	// The held one still works, through its holder.
	mustReach(t, fmt.Sprintf("/proc/%d/ns/net", holder.Process.Pid), guestIP(peer))
}

// Destroying a bridge takes its eth0 out of a namespace pontoon did not make at once, as a
// guest del would, instead of leaving it to the kernel's release of the bridge's namespace
// (seconds later on a busy host); the namespace attaches again right away.
func TestDestroyLeavesOthersNamespaceBare(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{})
	mustGuest(t, s.Env, "b1", "mine", "172.18.0.1")
	var others []string
	for i := range 3 {
		p := newNetns(t, fmt.Sprintf("own%d", i))
		if _, err := netsetup.AddGuest(s.Env, "b1", fmt.Sprintf("ext%d", i), netsetup.GuestOptions{IP: fmt.Sprintf("172.18.0.%d", 5+i), Netns: p}); err != nil {
			t.Fatal(err)
		}
		others = append(others, p)
	}
	if err := netsetup.DestroyBridge(s.Env, "b1"); err != nil {
		t.Fatal(err)
	}
	for _, p := range others {
		if got := linkNames(t, p); fmt.Sprint(got) != "[lo]" {
			t.Errorf("links of %s right after the destroy: %v; want lo alone", p, got)
		}
	}
	own := others[0]
	mustBridge(t, s.Env, "b2", netsetup.BridgeOptions{})
	if _, err := netsetup.AddGuest(s.Env, "b2", "ext", netsetup.GuestOptions{IP: "172.18.0.5", Netns: own}); err != nil {
		t.Errorf("attach to another bridge after the destroy: %v", err)
	}
}

// Destroy and delete succeed when there is nothing (left) to remove.
func TestDestroyIdempotent(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{Ports: mustPorts(t, "8080:g:80")})
	g := mustGuest(t, s.Env, "b1", "g", "172.18.0.1")
	for range 2 {
		if err := netsetup.DestroyBridge(s.Env, "b1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := netsetup.DestroyBridge(s.Env, "never-was"); err != nil {
		t.Errorf("destroy of an unknown bridge: %v", err)
	}
	if err := netsetup.DelGuest(s.Env, "b1", "g"); err != nil {
		t.Errorf("delete guest of a destroyed bridge: %v", err)
	}
	if _, err := os.Stat(g.Netns); err == nil {
		t.Errorf("guest namespace %s left", g.Netns)
	}
	if _, err := netsetup.GetBridge(s.Env, "b1"); !errors.Is(err, netsetup.ErrNoBridge) {
		t.Errorf("GetBridge after destroy: %v", err)
	}
	assertOnlyGateway(t, s)
	// The name and the host port are free again.
	mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{Ports: mustPorts(t, "8080:g:80")})
}

// Bad input is refused with a message naming the value and the fix, and changes nothing.
func TestBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "b", netsetup.BridgeOptions{Ports: mustPorts(t, "8080:a:80")})
	mustGuest(t, s.Env, "b", "a", "172.18.0.1")
	withEth0 := newNetns(t, "with-eth0")
	inNetns(t, withEth0, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
	const rng = "172.18.0.1-172.18.0.253"
	add := func(name, ip string) func() error {
		return func() error {
			_, err := netsetup.AddGuest(s.Env, "b", name, netsetup.GuestOptions{IP: ip})
			return err
		}
	}
	hostProc := startIn(t, s.Host) // a process in the host's network namespace
	for _, c := range []struct {
		what string
		do   func() error
		want []string
	}{
		{"guest IP outside the /24", add("x", "172.18.1.1"), []string{"172.18.1.1", rng}},
		{"guest IP of the bridge", add("x", "172.18.0.254"), []string{"172.18.0.254", rng}},
		{"guest IP .0", add("x", "172.18.0.0"), []string{"172.18.0.0", rng}},
		{"guest IP not IPv4", add("x", "fd00::1"), []string{`"fd00::1"`, rng}},
		{"guest IP missing", add("x", ""), []string{`""`, rng}},
		{"duplicate IP", add("x", "172.18.0.1"), []string{"172.18.0.1", `"a"`, "another address"}},
		{"duplicate name", add("a", "172.18.0.2"), []string{`"a"`, "already exists", "another name"}},
		{"bad guest name", add("-x", "172.18.0.2"), []string{`"-x"`, "guest name", "letters, digits"}},
		{"guest named localhost", add("localhost", "172.18.0.2"), []string{`guest name "localhost" names the loopback`}},
		{"alias of the loopback", func() error {
			_, err := netsetup.AddGuest(s.Env, "b", "x", netsetup.GuestOptions{IP: "172.18.0.2", Aliases: []string{"db", "Web.localhost"}})
			return err
		}, []string{`"Web.localhost" names the loopback`}},
		{"hostname of the loopback", func() error {
			_, err := netsetup.AddGuest(s.Env, "b", "x", netsetup.GuestOptions{IP: "172.18.0.2", Hostname: "ip6-localhost"})
			return err
		}, []string{`hostname "ip6-localhost" names the loopback`}},
		{"bad hostname", func() error {
			_, err := netsetup.AddGuest(s.Env, "b", "x", netsetup.GuestOptions{IP: "172.18.0.2", Hostname: "a b"})
			return err
		}, []string{`"a b"`, "hostname"}},
		{"unknown bridge", func() error {
			_, err := netsetup.AddGuest(s.Env, "nope", "x", netsetup.GuestOptions{IP: "172.18.0.2"})
			if !errors.Is(err, netsetup.ErrNoBridge) {
				return fmt.Errorf("not ErrNoBridge: %w", err)
			}
			return withAdvice(err)
		}, []string{`"nope"`, "no such bridge", "pontoon bridge create"}},
		{"netns and pid", func() error {
			_, err := netsetup.AddGuest(s.Env, "b", "x", netsetup.GuestOptions{IP: "172.18.0.2", Netns: withEth0, PID: os.Getpid()})
			return err
		}, []string{"either"}},
		{"missing netns", func() error {
			_, err := netsetup.AddGuest(s.Env, "b", "x", netsetup.GuestOptions{IP: "172.18.0.2", Netns: "/nonexistent/ns"})
			return err
		}, []string{"/nonexistent/ns", "does not exist"}},
		{"key too long", func() error {
			_, err := netsetup.AddGuest(s.Env, "b", "x", netsetup.GuestOptions{IP: "172.18.0.2", Key: strings.Repeat("k", 1<<20)})
			return err
		}, []string{"key is 1048576 bytes", "at most 256"}},
		{"dead pid", func() error {
			_, err := netsetup.AddGuest(s.Env, "b", "x", netsetup.GuestOptions{IP: "172.18.0.2", PID: deadProcess(t).PID})
			return err
		}, []string{"no such process"}},
		// Refused only once pontoon looks inside the namespace: the record must be rolled back.
		{"netns already has eth0", func() error {
			_, err := netsetup.AddGuest(s.Env, "b", "x", netsetup.GuestOptions{IP: "172.18.0.2", Netns: withEth0})
			return err
		}, []string{withEth0, "eth0"}},
		{"bad bridge name", func() error {
			_, err := netsetup.CreateBridge(s.Env, "a/b", netsetup.BridgeOptions{})
			return err
		}, []string{`"a/b"`, "bridge name", "letters, digits"}},
		{"empty bridge name", func() error {
			_, err := netsetup.CreateBridge(s.Env, "", netsetup.BridgeOptions{})
			return err
		}, []string{`""`, "bridge name"}},
		{"long bridge name", func() error {
			_, err := netsetup.CreateBridge(s.Env, strings.Repeat("b", 64), netsetup.BridgeOptions{})
			return err
		}, []string{"bridge name", "1-63"}},
		{"duplicate bridge", func() error {
			_, err := netsetup.CreateBridge(s.Env, "b", netsetup.BridgeOptions{})
			return withAdvice(err)
		}, []string{`"b"`, "already exists", "pontoon bridge destroy"}},
		{"port forwarded twice", func() error {
			_, err := netsetup.CreateBridge(s.Env, "c", netsetup.BridgeOptions{Ports: mustPorts(t, "9000:a:80", "9000:b:81")})
			return err
		}, []string{"9000/tcp", "twice"}},
		{"port of another bridge", func() error {
			_, err := netsetup.CreateBridge(s.Env, "c", netsetup.BridgeOptions{Ports: mustPorts(t, "8080:a:80")})
			return err
		}, []string{"8080/tcp", `"b"`}},
		{"port to an address outside the guest range", func() error {
			_, err := netsetup.CreateBridge(s.Env, "c", netsetup.BridgeOptions{Ports: mustPorts(t, "9001:10.0.0.5:80")})
			return err
		}, []string{"10.0.0.5", "172.18.0.1-172.18.0.253"}},
		{"bad subnet", func() error {
			_, err := netsetup.ParsePlan("10.77.0.0/24")
			return err
		}, []string{"10.77.0.0/24", "/16"}},
		{"another subnet while up", func() error {
			moved, _ := netsetup.ParsePlan("10.77.0.0/16")
			_, err := netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{Plan: moved})
			return withAdvice(err)
		}, []string{"10.77.0.0/16", "172.18.0.0/16", "gateway down"}},
		{"bad bridge name on destroy", func() error { return netsetup.DestroyBridge(s.Env, "../b") }, []string{`"../b"`, "bridge name"}},
		{"bad guest name on delete", func() error { return netsetup.DelGuest(s.Env, "b", "a/../a") }, []string{"guest name"}},
		{"the host's namespace by path", func() error {
			_, err := netsetup.AddGuest(s.Env, "b", "h", netsetup.GuestOptions{IP: "172.18.0.9", Netns: s.Host})
			return err
		}, []string{s.Host, "host's network namespace", "of its own"}},
		{"the host's namespace by pid", func() error {
			_, err := netsetup.AddGuest(s.Env, "b", "h", netsetup.GuestOptions{IP: "172.18.0.9", PID: hostProc.Process.Pid})
			return err
		}, []string{fmt.Sprintf("/proc/%d/ns/net", hostProc.Process.Pid), "host's network namespace"}},
	} {
		before := snapshot(t, s)
		wantErr(t, c.what, c.do(), c.want...)
		unchanged(t, s, before, c.what, "chain")
	}
	// Everything still works.
	g := mustGuest(t, s.Env, "b", "x", "172.18.0.2")
	serve(t, g.Netns, addr(g.IP))
	b, _ := netsetup.GetBridge(s.Env, "b")
	mustReach(t, b.Guests[0].Netns, addr(g.IP))
}

// withAdvice is err as the pontoon command shows it: followed by its advice.
func withAdvice(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w; %s", err, advice.For(err))
}

// Without a gateway, bridges and guests are refused with the way to fix it (the error says
// what is wrong, the advice the command line adds says what to do).
func TestNoGateway(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	before := snapshot(t, s)
	_, err := netsetup.CreateBridge(s.Env, "b", netsetup.BridgeOptions{})
	if !errors.Is(err, netsetup.ErrNoGateway) {
		t.Errorf("CreateBridge: %v, want ErrNoGateway", err)
	}
	wantErr(t, "create bridge", withAdvice(err), `"b"`, "pontoon gateway up")
	_, err = netsetup.AddGuest(s.Env, "b", "g", netsetup.GuestOptions{IP: "172.18.0.1"})
	if !errors.Is(err, netsetup.ErrNoGateway) {
		t.Errorf("AddGuest: %v, want ErrNoGateway", err)
	}
	if _, err := netsetup.GuestResolvConf(s.Env); !errors.Is(err, netsetup.ErrNoGateway) {
		t.Errorf("GuestResolvConf: %v, want ErrNoGateway", err)
	}
	unchanged(t, s, before, "refusals", "host")
}

// A guest is reachable as soon as AddGuest returns: its bridge port already forwards (the
// kernel enables a new port asynchronously) and a single packet, with no ARP retry to hide a
// loss, gets through.
func TestGuestReachableAtOnce(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	b := mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{})
	peer := mustGuest(t, s.Env, "b1", "peer", "172.18.0.1")
	// Namespaces and links coming and going keep the kernel's routing netlink lock busy,
	// which delays the port's enabling: the case a caller must not notice.
	stop := make(chan struct{})
	churned := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				churned <- nil
				return
			default:
			}
			if _, err := netsetup.CreateBridge(s.Env, "churn", netsetup.BridgeOptions{}); err != nil {
				churned <- err
				return
			}
			if _, err := netsetup.AddGuest(s.Env, "churn", "c", netsetup.GuestOptions{IP: "172.18.0.1"}); err != nil {
				churned <- err
				return
			}
			if err := netsetup.DestroyBridge(s.Env, "churn"); err != nil {
				churned <- err
				return
			}
		}
	}()
	defer func() {
		close(stop)
		if err := <-churned; err != nil {
			t.Errorf("churn: %v", err)
		}
	}()
	for i := range 40 {
		ip := fmt.Sprintf("172.18.0.%d", 10+i)
		g := mustGuest(t, s.Env, "b1", "g", ip)
		// Shorter than the 1s ARP retransmission: one lost ARP request fails the ping.
		if err := probe.Ping(peer.Netns, addr(ip), 500*time.Millisecond); err != nil {
			t.Fatalf("round %d: %v\n%s", i, err, inNetns(t, b.Netns(s.Env), "ip", "-d", "link", "show", "dev", g.PortName()))
		}
		if err := netsetup.DelGuest(s.Env, "b1", "g"); err != nil {
			t.Fatal(err)
		}
	}
}

// A guest's MAC follows from its address, so a guest that comes back with the same address is
// the same host to every ARP cache.
func TestGuestMACFollowsIP(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{})
	peer := mustGuest(t, s.Env, "b1", "peer", "172.18.0.1")
	g := mustGuest(t, s.Env, "b1", "g", "172.18.0.7")
	serve(t, g.Netns, addr(g.IP))
	mustReach(t, peer.Netns, addr(g.IP)) // peer and bridge now cache g's MAC
	want := netsetup.GuestMAC(addr(g.IP)).String()
	if got := macOf(t, g.Netns); got != want {
		t.Errorf("eth0 MAC %s, want %s", got, want)
	}
	if err := netsetup.DelGuest(s.Env, "b1", "g"); err != nil {
		t.Fatal(err)
	}
	again := mustGuest(t, s.Env, "b1", "g", "172.18.0.7")
	if got := macOf(t, again.Netns); got != want {
		t.Errorf("re-added guest's MAC %s, want %s", got, want)
	}
	serve(t, again.Netns, addr(again.IP))
	mustReach(t, peer.Netns, addr(again.IP))
}

func macOf(t *testing.T, nsPath string) string {
	t.Helper()
	out := inNetns(t, nsPath, "ip", "-o", "link", "show", "eth0")
	f := strings.Fields(out)
	for i, w := range f {
		if w == "link/ether" && i+1 < len(f) {
			return f[i+1]
		}
	}
	t.Fatalf("no MAC in %q", out)
	return ""
}

// A guest namespace pontoon makes has a TCP table of its own (made in the bridge's
// namespace, which asks for one), so that listing its sockets, as --cut does in every guest
// it cuts, does not walk the host's; and it still reaches its peers over TCP.
func TestGuestHasItsOwnTCPTable(t *testing.T) {
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "b", netsetup.BridgeOptions{})
	g1 := mustGuest(t, s.Env, "b", "g1", "172.18.0.1")
	mustGuest(t, s.Env, "b", "g2", "172.18.0.2")
	v, err := handleAt(t, g1.Netns).ReadSysctl("net.ipv4.tcp_ehash_entries")
	if err != nil {
		t.Skipf("this kernel does not say how big a namespace's TCP table is (before 6.1): %v", err)
	}
	if v != "4096" {
		t.Errorf("guest g1's net.ipv4.tcp_ehash_entries is %s; want 4096, a table of its own (negative: the host's)", v)
	}
	// Its limits are the host's (as the bridge's namespace, which shares the host's table,
	// has them), not those of a table of 4096 (2048 in TIME_WAIT, 128 half-open).
	for _, name := range []string{"net.ipv4.tcp_max_tw_buckets", "net.ipv4.tcp_max_syn_backlog"} {
		host, err := handleAt(t, s.Env.BridgeNetns("b")).ReadSysctl(name)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := handleAt(t, g1.Netns).ReadSysctl(name); err != nil || got != host {
			t.Errorf("guest g1's %s is %s (%v); want the host's, %s", name, got, err, host)
		}
	}
	serve(t, s.Env.GuestNetns("b", "g2"), addr("172.18.0.2"))
	mustReach(t, g1.Netns, addr("172.18.0.2"))
}

// A bridge on its way out (a destroy running, or one killed halfway) does not list its guests
// as usable: their namespaces and ports may be gone already.
func TestGuestsOfABridgeBeingRemoved(t *testing.T) {
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "b", netsetup.BridgeOptions{})
	mustGuest(t, s.Env, "b", "g1", "172.18.0.1")
	if err := netsetup.BeginDestroy(s.Env, "b"); err != nil {
		t.Fatal(err)
	}
	b, err := netsetup.GetBridge(s.Env, "b")
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Guests) != 1 || !strings.Contains(b.Guests[0].Problem, "its bridge is being removed") {
		t.Errorf("guests of a bridge being removed: %+v; want g1 with its bridge's removal as its problem", b.Guests)
	}
	if err := netsetup.DestroyBridge(s.Env, "b"); err != nil {
		t.Fatal(err)
	}
}
