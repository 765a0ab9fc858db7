package cni_test

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup/probe"

	"github.com/containernetworking/cni/libcni"
	"github.com/pontoon-dev/pontoon/cni"
	"github.com/pontoon-dev/pontoon/netsetup"
)

// TestHundredPodsOneBridge attaches 100 containers to one bridge, eight ADDs at a time,
// then removes half by DEL and the rest by a GC with an empty valid list. A guest added by
// pontoon itself and one of another CNI network on the same bridge outlive the GC; every
// DEL repeated afterwards succeeds, and the bridge's namespace ends as it began.
func TestHundredPodsOneBridge(t *testing.T) {
	r := newRig(t)
	l := r.list(nil)
	other := r.list(nil)
	other.Name = "other-net"
	for _, p := range other.Plugins {
		p.Network.Name = "other-net"
	}
	if _, err := netsetup.GatewayUp(r.sb.Env, netsetup.GatewayOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := netsetup.CreateBridge(r.sb.Env, "pods", netsetup.BridgeOptions{}); err != nil {
		t.Fatal(err)
	}
	portsBefore := links(t, r.sb.Env.BridgeNetns("pods"))
	if _, err := netsetup.AddGuest(r.sb.Env, "pods", "cli", netsetup.GuestOptions{IP: "172.18.0.200"}); err != nil {
		t.Fatal(err)
	}
	stranger := rtConf("stranger", r.netns("stranger"))
	if _, err := r.add(other, stranger); err != nil {
		t.Fatalf("ADD on the other network: %v", err)
	}

	const n = 100
	rts := make([]*libcni.RuntimeConf, n)
	for i := range rts {
		rts[i] = rtConf(fmt.Sprintf("pod%03d", i), r.netns(fmt.Sprintf("p%d", i)))
	}
	each := func(fn func(i int) error) {
		t.Helper()
		work := make(chan int)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					errs[i] = fn(i)
				}
			}()
		}
		for i := range rts {
			work <- i
		}
		close(work)
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
	}
	addrs := make([]string, n)
	each(func(i int) error {
		res, err := r.add(l, rts[i])
		if err != nil {
			return fmt.Errorf("ADD %s: %w", rts[i].ContainerID, err)
		}
		addrs[i] = res.IPs[0].Address.String()
		return nil
	})
	seen := map[string]bool{"172.18.0.200/24": true}
	for i, a := range addrs {
		if seen[a] {
			t.Fatalf("%s got %s, which is taken", rts[i].ContainerID, a)
		}
		seen[a] = true
	}
	gs := r.guests("pods")
	if len(gs) != n+2 {
		t.Fatalf("bridge has %d guests, want %d", len(gs), n+2)
	}
	ports := 0
	for _, name := range links(t, r.sb.Env.BridgeNetns("pods")) {
		if strings.HasPrefix(name, "g") && !slices.Contains(portsBefore, name) {
			ports++
		}
	}
	if ports != n+2 {
		t.Fatalf("bridge namespace has %d ports, want %d", ports, n+2)
	}
	last := gs[cni.Key("pontoon-test", rts[n-1].ContainerID, "eth0")]
	if err := probe.Ping(rts[0].NetNS, last.IP, 5*time.Second); err != nil {
		t.Fatalf("first pod cannot reach the last: %v", err)
	}

	for _, rt := range rts[:n/2] {
		if err := r.del(l, rt); err != nil {
			t.Fatalf("DEL %s: %v", rt.ContainerID, err)
		}
	}
	if err := r.gc(l); err != nil {
		t.Fatalf("GC with an empty valid list: %v", err)
	}
	gs = r.guests("pods")
	if _, ok := gs[cni.Key("other-net", "stranger", "eth0")]; !ok || len(gs) != 2 {
		t.Fatalf("after GC the guests are %v; want the CLI's and the other network's", gs)
	}
	each(func(i int) error { return r.del(l, rts[i]) })
	for _, rt := range rts {
		if got := links(t, rt.NetNS); !slices.Equal(got, []string{"lo"}) {
			t.Fatalf("namespace of %s has %v after DEL", rt.ContainerID, got)
		}
	}
	must(t, r.del(other, stranger))
	must(t, netsetup.DelGuest(r.sb.Env, "pods", "cli"))
	// The port of a guest whose namespace pontoon removed goes with the namespace, which
	// the kernel destroys a moment later (seconds while other tests churn namespaces).
	got := links(t, r.sb.Env.BridgeNetns("pods"))
	for deadline := time.Now().Add(30 * time.Second); !slices.Equal(got, portsBefore) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		got = links(t, r.sb.Env.BridgeNetns("pods"))
	}
	if !slices.Equal(got, portsBefore) {
		t.Fatalf("bridge namespace has %v; want %v as before the pods", got, portsBefore)
	}
	if _, err := os.Stat(r.sb.Env.BridgeNetns("pods")); err != nil {
		t.Fatal(err)
	}
}
