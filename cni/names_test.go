package cni_test

import (
	"net"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/pontoon-dev/pontoon/cni"
	"github.com/pontoon-dev/pontoon/names"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
)

// askIn sends one A query for name to server, port 53, from inside the network namespace
// nsPath (a pod's), and returns the answer. Only the test's own namespaces are asked.
func askIn(t *testing.T, nsPath string, server netip.Addr, name string) (*dns.Msg, error) {
	t.Helper()
	var conn net.Conn
	if err := ns.Do(nsPath, func() (err error) {
		// The socket is made on this thread, in the pod's namespace, and stays there.
		conn, err = net.Dial("udp4", netip.AddrPortFrom(server, names.Port).String())
		return err
	}); err != nil {
		return nil, err
	}
	defer conn.Close()
	must(t, conn.SetDeadline(time.Now().Add(5*time.Second)))
	c := &dns.Conn{Conn: conn}
	q := new(dns.Msg).SetQuestion(dns.Fqdn(name), dns.TypeA)
	if err := c.WriteMsg(q); err != nil {
		return nil, err
	}
	return c.ReadMsg()
}

// resolvesTo asks server from nsPath for name and fails the test unless the answer is want.
func resolvesTo(t *testing.T, nsPath string, server netip.Addr, name string, want netip.Addr) {
	t.Helper()
	m, err := askIn(t, nsPath, server, name)
	if err != nil {
		t.Fatalf("query %s from %s to %s: %v", name, nsPath, server, err)
	}
	var got []string
	for _, rr := range m.Answer {
		if a, ok := rr.(*dns.A); ok {
			got = append(got, a.A.String())
		}
	}
	if m.Rcode != dns.RcodeSuccess || !slices.Equal(got, []string{want.String()}) {
		t.Fatalf("query %s from %s to %s: %s %v; want %s", name, nsPath, server, dns.RcodeToString[m.Rcode], got, want)
	}
}

// runningServer returns the bridge's name server, failing the test when none runs.
func runningServer(t *testing.T, env netsetup.Env, bridge string) names.Record {
	t.Helper()
	st, err := names.Status(env, bridge)
	if err != nil || !st.Running || !st.Record.Detached {
		t.Fatalf("name server of bridge %s: %+v, %v; want a detached one running", bridge, st, err)
	}
	return *st.Record
}

// TestCreatedBridgeServesNames: a bridge pontoon-cni creates gets its name server, as one
// `pontoon bridge create` makes does. ADD's result names it, and from inside a pod it answers
// for the bridge's guests, pods and others, and DNS faults reach the pods.
func TestCreatedBridgeServesNames(t *testing.T) {
	r := newRig(t)
	l := r.list(nil) // createBridge
	a, b := rtConf("dns-a", r.netns("a")), rtConf("dns-b", r.netns("b"))
	resA, err := r.add(l, a)
	if err != nil {
		t.Fatal(err)
	}
	runningServer(t, r.sb.Env, "pods")
	resB, err := r.add(l, b)
	if err != nil {
		t.Fatal(err)
	}
	server := r.plan().BridgeAddr().Addr()
	for _, res := range [][]string{resA.DNS.Nameservers, resB.DNS.Nameservers} {
		if !slices.Equal(res, []string{server.String()}) {
			t.Fatalf("result DNS %v; want the bridge's name server %s", res, server)
		}
	}
	// A guest attached the CLI's way, with an alias.
	db, err := netsetup.AddGuest(r.sb.Env, "pods", "db", netsetup.GuestOptions{IP: "172.18.0.50", Aliases: []string{"primary"}})
	if err != nil {
		t.Fatal(err)
	}
	ipB := netip.MustParsePrefix(resB.IPs[0].Address.String()).Addr()
	resolvesTo(t, a.NetNS, server, cni.GuestName(b.ContainerID, "eth0"), ipB)
	resolvesTo(t, a.NetNS, server, "primary", db.IP)
	resolvesTo(t, b.NetNS, server, "db", db.IP)

	// `pontoon partition dns servfail --name primary` reaches the pods.
	f, err := names.ParseFault([]string{"servfail"})
	must(t, err)
	f.Names = []string{"primary"}
	if _, err := names.AddFault(r.sb.Env, "pods", f, "test"); err != nil {
		t.Fatal(err)
	}
	m, err := askIn(t, a.NetNS, server, "primary")
	if err != nil || m.Rcode != dns.RcodeServerFailure {
		t.Fatalf("query primary under a servfail fault: %v %v; want SERVFAIL", m, err)
	}
	resolvesTo(t, a.NetNS, server, "db", db.IP) // other names still answer
}

// TestExistingBridgeGetsItsNameServer: an ADD to a bridge whose name server does not run
// (never started, or killed) starts it, as `pontoon guest add` does, and the result names it;
// one that runs is kept.
func TestExistingBridgeGetsItsNameServer(t *testing.T) {
	r := newRig(t)
	l := r.list(map[string]any{"createBridge": false})
	if _, err := netsetup.GatewayUp(r.sb.Env, netsetup.GatewayOptions{}); err != nil {
		t.Fatal(err)
	}
	// Created without a server, as the library does.
	if _, err := netsetup.CreateBridge(r.sb.Env, "pods", netsetup.BridgeOptions{}); err != nil {
		t.Fatal(err)
	}
	server := r.plan().BridgeAddr().Addr()
	a := rtConf("plain", r.netns("a"))
	resA, err := r.add(l, a)
	if err != nil {
		t.Fatal(err)
	}
	first := runningServer(t, r.sb.Env, "pods")
	if !slices.Equal(resA.DNS.Nameservers, []string{server.String()}) {
		t.Fatalf("result DNS %v; want the bridge's name server %s", resA.DNS.Nameservers, server)
	}
	ipA := netip.MustParsePrefix(resA.IPs[0].Address.String()).Addr()
	resolvesTo(t, a.NetNS, server, cni.GuestName(a.ContainerID, "eth0"), ipA)

	b := rtConf("kept", r.netns("b"))
	if _, err := r.add(l, b); err != nil {
		t.Fatal(err)
	}
	if got := runningServer(t, r.sb.Env, "pods"); got.Process != first.Process {
		t.Fatalf("ADD replaced the running name server %+v by %+v", first.Process, got.Process)
	}

	// Killed with kill -9: the next ADD starts another.
	must(t, syscall.Kill(first.Process.PID, syscall.SIGKILL))
	deadline := time.Now().Add(5 * time.Second)
	for first.Process.Alive() {
		if time.Now().After(deadline) {
			t.Fatal("the killed name server is still there")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st, err := names.Status(r.sb.Env, "pods"); err != nil || st.Running {
		t.Fatalf("status after kill -9: %+v %v; want not running", st, err)
	}
	c := rtConf("after-kill", r.netns("c"))
	resC, err := r.add(l, c)
	if err != nil {
		t.Fatal(err)
	}
	if got := runningServer(t, r.sb.Env, "pods"); got.Process == first.Process {
		t.Fatal("no new name server after the kill")
	}
	if !slices.Equal(resC.DNS.Nameservers, []string{server.String()}) {
		t.Fatalf("result DNS %v; want the bridge's name server %s", resC.DNS.Nameservers, server)
	}
	resolvesTo(t, c.NetNS, server, cni.GuestName(a.ContainerID, "eth0"), ipA)
}
