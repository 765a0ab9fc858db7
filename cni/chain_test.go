package cni_test

import (
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/cni"
	"github.com/pontoon-dev/pontoon/netsetup/probe"
	"github.com/pontoon-dev/pontoon/partition"
)

// TestChainedWithPortmap puts Debian's portmap after pontoon-cni, as runtimes' stock network
// lists do: portmap receives pontoon's result as prevResult, installs its DNAT for the
// container's address, and the chain's result, CHECK and DEL work end to end. (Its host
// ports cannot reach the pod, which the host has no route to: docs/kubernetes.md says to
// publish ports with the bridge's forwards.)
func TestChainedWithPortmap(t *testing.T) {
	if _, err := os.Stat("/usr/lib/cni/portmap"); err != nil {
		t.Skip("needs Debian's containernetworking-plugins (make deps installs it)")
	}
	r := newRig(t)
	l := r.listV("1.0.0", nil, map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}})
	a := rtConf("chained-a", r.netns("a"))
	a.CapabilityArgs = map[string]any{"portMappings": []map[string]any{{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}}}
	res, err := r.add(l, a)
	if err != nil {
		t.Fatalf("ADD through the chain: %v", err)
	}
	if len(res.IPs) != 2 || res.IPs[0].Address.String() != "172.18.0.1/24" || res.Interfaces[0].Sandbox != a.NetNS {
		t.Fatalf("chain result %v: want pontoon's address and interfaces passed on", res)
	}
	nat := func() string {
		var out []byte
		err := r.inHost(func() (err error) {
			out, err = exec.Command("iptables-save", "-t", "nat").CombinedOutput()
			return err
		})
		if err != nil {
			t.Fatalf("iptables-save: %v %s", err, out)
		}
		return string(out)
	}
	if rules := nat(); !strings.Contains(rules, "172.18.0.1:80") || !strings.Contains(rules, "18080") {
		t.Fatalf("portmap did not map 18080 to pontoon's address 172.18.0.1:80:\n%s", rules)
	}
	// Debian's portmap 1.1.1 checks an ip6tables DNAT chain even for an IPv4-only
	// container, so CHECK of the whole chain fails there; pontoon-cni is checked against
	// the chain's cached result (its prevResult) on its own.
	if err := r.check(l, a); err != nil && !strings.Contains(err.Error(), "could not check ipv6 dnat") {
		t.Fatalf("CHECK through the chain: %v", err)
	}
	if err := r.check(r.listV("1.0.0", nil), a); err != nil {
		t.Fatalf("CHECK of pontoon-cni against the chain's result: %v", err)
	}
	if err := r.del(l, a); err != nil {
		t.Fatalf("DEL through the chain: %v", err)
	}
	if rules := nat(); strings.Contains(rules, "172.18.0.1:80") {
		t.Fatalf("portmap's DNAT outlived DEL:\n%s", rules)
	}
	if len(r.guests("pods")) != 0 {
		t.Fatal("DEL through the chain left the guest")
	}
}

// TestPartitionBetweenCNIGuests isolates one CNI-attached container from another with a
// pontoon partition: packets pass before, not during (either way), and again after healing;
// a container attached while the partition is in force is put under it.
func TestPartitionBetweenCNIGuests(t *testing.T) {
	r := newRig(t)
	l := r.list(nil)
	a, b := rtConf("parta", r.netns("a")), rtConf("partb", r.netns("b"))
	if _, err := r.add(l, a); err != nil {
		t.Fatal(err)
	}
	if _, err := r.add(l, b); err != nil {
		t.Fatal(err)
	}
	gs := r.guests("pods")
	ga, gb := gs[cni.Key("pontoon-test", "parta", "eth0")], gs[cni.Key("pontoon-test", "partb", "eth0")]
	reach := func(from string, to netip.Addr) error { return probe.Ping(from, to, 2*time.Second) }
	if err := reach(a.NetNS, gb.IP); err != nil {
		t.Fatalf("before the partition, a cannot reach b: %v", err)
	}
	target, err := partition.ForBridge(r.sb.Env, "pods")
	if err != nil {
		t.Fatal(err)
	}
	_, err = partition.Update(target, func(s partition.State) (partition.State, error) {
		p, err := partition.Isolate(target.Guests, ga.Name)
		s.Partition = p
		return s, err
	})
	if err != nil {
		t.Fatalf("isolate %s: %v", ga.Name, err)
	}
	if err := reach(a.NetNS, gb.IP); err == nil {
		t.Fatal("a reached b across the partition")
	}
	if err := reach(b.NetNS, ga.IP); err == nil {
		t.Fatal("b reached a across the partition")
	}
	rec, err := partition.Status(target)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rec.Description, ga.Name) || len(rec.Blocked) == 0 {
		t.Fatalf("status %+v: want the isolation of %s", rec, ga.Name)
	}
	// a restarts: DEL and ADD again (a new port). The partition must cover it.
	if err := r.del(l, a); err != nil {
		t.Fatal(err)
	}
	if _, err := r.add(l, a); err != nil {
		t.Fatal(err)
	}
	ga = r.guests("pods")[cni.Key("pontoon-test", "parta", "eth0")]
	if err := reach(b.NetNS, ga.IP); err == nil {
		t.Fatal("b reached a after a was attached again under the partition")
	}
	if err := partition.Heal(target); err != nil {
		t.Fatal(err)
	}
	if err := reach(a.NetNS, gb.IP); err != nil {
		t.Fatalf("after healing, a cannot reach b: %v", err)
	}
}

// TestCheckFollowsTheChain puts Debian's tuning after pontoon-cni to give the container
// another MAC, as the specification's own example does: CHECK takes the MAC the chain's
// result lists as the one to expect, and still reports a MAC changed behind the chain's
// back. CHECK without prevResult is refused, naming it. A default route sbr moved to its
// own table still counts.
func TestCheckFollowsTheChain(t *testing.T) {
	if _, err := os.Stat("/usr/lib/cni/tuning"); err != nil {
		t.Skip("needs Debian's containernetworking-plugins (make deps installs it)")
	}
	r := newRig(t)
	must(t, os.Symlink("/usr/lib/cni/tuning", r.bin+"/tuning"))
	l := r.listV("1.0.0", nil, map[string]any{"type": "tuning", "capabilities": map[string]bool{"mac": true}})
	a := rtConf("tuned-a", r.netns("a"))
	const mac = "02:aa:bb:cc:dd:ee"
	a.CapabilityArgs = map[string]any{"mac": mac}
	res, err := r.add(l, a)
	if err != nil {
		t.Fatalf("ADD through the chain: %v", err)
	}
	if res.Interfaces[0].Mac != mac {
		t.Fatalf("chain result %v: want tuning's MAC %s on eth0", res.Interfaces[0], mac)
	}
	if err := r.check(r.listV("1.0.0", nil), a); err != nil {
		t.Fatalf("CHECK of pontoon-cni against the chain's result: %v", err)
	}
	ipIn(t, a.NetNS, "link", "set", "eth0", "address", "02:11:22:33:44:55")
	if err := r.check(r.listV("1.0.0", nil), a); err == nil || !strings.Contains(err.Error(), "not "+mac) {
		t.Fatalf("CHECK after the MAC changed behind the chain's back: %v; want drift naming %s", err, mac)
	}
	e := r.cniErr("CHECK", a.ContainerID, a.NetNS, pluginConf)
	if e.Code != 7 || !strings.Contains(e.Msg, "prevResult") {
		t.Fatalf("CHECK without prevResult: %+v; want code 7 naming prevResult", e)
	}
	must(t, r.del(l, a))

	// sbr moves the default route to a table of its own: still there for CHECK.
	must(t, os.Symlink("/usr/lib/cni/sbr", r.bin+"/sbr"))
	l = r.listV("1.0.0", nil, map[string]any{"type": "sbr"})
	b := rtConf("sbr-b", r.netns("b"))
	if _, err := r.add(l, b); err != nil {
		t.Fatalf("ADD through pontoon-cni and sbr: %v", err)
	}
	if err := r.check(r.listV("1.0.0", nil), b); err != nil {
		t.Fatalf("CHECK of pontoon-cni after sbr moved the default route: %v", err)
	}
	ipIn(t, b.NetNS, "route", "flush", "table", "all", "default")
	if err := r.check(r.listV("1.0.0", nil), b); err == nil || !strings.Contains(err.Error(), "default route") {
		t.Fatalf("CHECK after the default route was removed: %v; want drift naming it", err)
	}
	must(t, r.del(l, b))
}
