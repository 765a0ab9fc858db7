package cni_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/pontoon-dev/pontoon/cni"
	"github.com/pontoon-dev/pontoon/internal/kernel"
	"github.com/pontoon-dev/pontoon/names"
	"github.com/pontoon-dev/pontoon/netsetup"
)

const pluginConf = `{"cniVersion":"1.1.0","name":"pontoon-test","type":"pontoon-cni","bridge":"pods","createBridge":true}`

// plugin prepares the plugin binary as a runtime runs it, in the sandbox's host namespace.
func (r *rig) plugin(command, id, netns, conf string) (*exec.Cmd, *bytes.Buffer) {
	cmd := exec.Command(pluginBinary(r.t))
	cmd.Env = append(os.Environ(), "CNI_COMMAND="+command, "CNI_CONTAINERID="+id, "CNI_NETNS="+netns, "CNI_IFNAME=eth0", "CNI_PATH="+r.bin)
	cmd.Stdin = strings.NewReader(conf)
	var out bytes.Buffer
	cmd.Stdout = &out
	return cmd, &out
}

// cniErr runs the plugin and decodes the error it prints; it fails the test if the plugin
// succeeds.
func (r *rig) cniErr(command, id, netns, conf string) types.Error {
	r.t.Helper()
	cmd, out := r.plugin(command, id, netns, conf)
	if err := r.inHost(cmd.Run); err == nil {
		r.t.Fatalf("%s %s succeeded; want an error", command, id)
	}
	var e types.Error
	if err := json.Unmarshal(out.Bytes(), &e); err != nil {
		r.t.Fatalf("%s %s: stdout %q is not a CNI error: %v", command, id, out, err)
	}
	return e
}

// linkIndex returns eth0's ifindex in a namespace, 0 when it has none.
func linkIndex(t *testing.T, nsPath string) int {
	t.Helper()
	h, err := kernel.OpenNS(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName("eth0")
	if err != nil {
		return 0
	}
	return l.Attrs().Index
}

func ipIn(t *testing.T, nsPath string, args ...string) {
	t.Helper()
	if out, err := exec.Command("nsenter", append([]string{"--net=" + nsPath, "ip"}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v %s", args, err, out)
	}
}

// TestAddRefusesWhatItCannotAttach gives ADD namespaces it must refuse: one with eth0
// already (the specification requires an error), a missing one, and the same attachment
// twice. Nothing may change: no gateway on a fresh node, and the first attachment keeps its
// interface.
func TestAddRefusesWhatItCannotAttach(t *testing.T) {
	r := newRig(t)
	taken := r.netns("taken")
	ipIn(t, taken, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
	before := linkIndex(t, taken)
	if e := r.cniErr("ADD", "taken1", taken, pluginConf); !strings.Contains(e.Msg, "eth0") {
		t.Fatalf("ADD into a namespace with eth0: %+v; want an error saying so", e)
	}
	if _, err := os.Stat(r.sb.Env.GatewayNetns()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ADD into a namespace with eth0 brought the gateway up: %v", err)
	}
	if linkIndex(t, taken) != before {
		t.Fatal("the refused ADD replaced the namespace's eth0")
	}
	missing := filepath.Join(r.sb.Dir, "no-such.net")
	if e := r.cniErr("ADD", "missing1", missing, pluginConf); e.Code != types.ErrInvalidEnvironmentVariables || !strings.Contains(e.Msg, "CNI_NETNS") {
		t.Fatalf("ADD with a missing namespace: %+v; want code 4 naming CNI_NETNS", e)
	}
	notNetns := filepath.Join(r.sb.Dir, "plain-file")
	must(t, os.WriteFile(notNetns, nil, 0o644))
	if e := r.cniErr("ADD", "plain1", notNetns, pluginConf); e.Code != types.ErrInvalidEnvironmentVariables || !strings.Contains(e.Msg, "CNI_NETNS") {
		t.Fatalf("ADD with a plain file as namespace: %+v; want code 4 naming CNI_NETNS", e)
	}
	if _, err := os.Stat(r.sb.Env.GatewayNetns()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("refused ADDs brought the gateway up: %v", err)
	}

	long := strings.Repeat("x", 300)
	if e := r.cniErr("ADD", long, r.netns("long"), pluginConf); e.Code != types.ErrInvalidEnvironmentVariables || !strings.Contains(e.Msg, "CNI_CONTAINERID") {
		t.Fatalf("ADD with a 300-byte container id: %+v; want code 4 naming CNI_CONTAINERID", e)
	}

	l := r.list(nil)
	a := rtConf("twice-a", r.netns("a"))
	res, err := r.add(l, a)
	if err != nil {
		t.Fatal(err)
	}
	first := linkIndex(t, a.NetNS)
	if e := r.cniErr("ADD", a.ContainerID, a.NetNS, pluginConf); !strings.Contains(e.Msg, "already has an interface eth0") {
		t.Fatalf("second ADD of the same attachment: %+v; want an error", e)
	}
	if linkIndex(t, a.NetNS) != first {
		t.Fatal("the second ADD replaced the first attachment's eth0")
	}
	g, ok := r.guests("pods")[cni.Key("pontoon-test", a.ContainerID, "eth0")]
	if !ok || g.IP.String()+"/24" != res.IPs[0].Address.String() || g.Phase != netsetup.PhaseReady {
		t.Fatalf("after the refused second ADD the guest is %+v (present %v); want it as the first ADD left it", g, ok)
	}
	if err := r.check(l, a); err != nil {
		t.Fatalf("CHECK after the refused second ADD: %v", err)
	}
	// The same container again, into another namespace: the first attachment's eth0 was
	// taken from a live pod, without a DEL.
	other := r.netns("a-other")
	if e := r.cniErr("ADD", a.ContainerID, other, pluginConf); !strings.Contains(e.Msg, "is attached as eth0 already, in namespace "+a.NetNS) {
		t.Fatalf("ADD of the same container into another namespace: %+v; want an error", e)
	}
	if linkIndex(t, a.NetNS) != first {
		t.Fatal("an ADD of the same container into another namespace took the first attachment's eth0")
	}
	if err := r.check(l, a); err != nil {
		t.Fatalf("CHECK after the refused ADD into another namespace: %v", err)
	}
	// The runtime tears the failed sandbox down with a DEL naming its namespace: that DEL
	// leaves the first attachment, alive in its own, as it is.
	refused := *a
	refused.NetNS = other
	if err := r.del(l, &refused); err != nil {
		t.Fatalf("DEL after the refused ADD: %v", err)
	}
	if linkIndex(t, a.NetNS) != first {
		t.Fatal("the DEL after a refused ADD took the first attachment's eth0")
	}
	if g, ok := r.guests("pods")[cni.Key("pontoon-test", a.ContainerID, "eth0")]; !ok || g.Netns != a.NetNS || g.Phase != netsetup.PhaseReady {
		t.Fatalf("after the DEL of the refused ADD the guest is %+v (present %v); want the first attachment", g, ok)
	}
	// Once the first namespace is gone (its pod torn down without a DEL), the same
	// container may be attached again elsewhere: the stale guest is replaced.
	if err := ns.Remove(a.NetNS); err != nil {
		t.Fatal(err)
	}
	again := *a
	again.NetNS = other
	if _, err := r.add(l, &again); err != nil {
		t.Fatalf("ADD of the same container once its first namespace is gone: %v", err)
	}
	if g := r.guests("pods")[cni.Key("pontoon-test", a.ContainerID, "eth0")]; g.Netns != other {
		t.Fatalf("the container's guest after it was attached again: %+v; want it in %s", g, other)
	}
	// The host's and pontoon's own namespaces are refused before anything is created.
	for _, own := range []string{r.sb.Env.HostNetns, r.sb.Env.GatewayNetns(), r.sb.Env.BridgeNetns("pods")} {
		e := r.cniErr("ADD", "own1", own, pluginConf)
		if e.Code != types.ErrInvalidEnvironmentVariables || !strings.Contains(e.Msg, "CNI_NETNS "+own) ||
			!(strings.Contains(e.Msg, "host's network namespace") || strings.Contains(e.Msg, "pontoon's own network namespaces")) {
			t.Fatalf("ADD into %s: %+v; want code 4 saying whose namespace it is", own, e)
		}
	}
	if n := len(r.guests("pods")); n != 1 {
		t.Fatalf("the refused ADDs left %d guests; want the first attachment alone", n)
	}
}

// TestFailedAddRemovesWhatItCreated makes an ADD fail after it brought the gateway up and
// created the bridge (the resolvers for its result cannot be read): both go again, and the
// host is as before. Once a container uses the bridge, a failing ADD leaves it alone.
func TestFailedAddRemovesWhatItCreated(t *testing.T) {
	r := newRig(t)
	hostBefore := links(t, r.sb.Host)
	_, netnsDir := r.sb.Env.Dirs()
	pins := func() []string {
		es, _ := os.ReadDir(netnsDir)
		var out []string
		for _, e := range es {
			out = append(out, e.Name())
		}
		return out
	}
	ruleset := func() string {
		var out []byte
		must(t, r.inHost(func() (err error) {
			out, err = exec.Command("nft", "list", "ruleset").CombinedOutput()
			return err
		}))
		return string(out)
	}
	pinsBefore, rulesBefore := pins(), ruleset()
	good := os.Getenv("PONTOON_RESOLV_CONF")
	t.Setenv("PONTOON_RESOLV_CONF", t.TempDir()) // a directory: reading it fails
	l := r.list(nil)
	a := rtConf("fail-a", r.netns("a"))
	if _, err := r.add(l, a); err == nil {
		t.Fatal("ADD succeeded with unreadable resolvers")
	}
	if _, err := os.Stat(r.sb.Env.GatewayNetns()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the failed ADD left the gateway it brought up: %v", err)
	}
	if bs, err := netsetup.Bridges(r.sb.Env); err != nil || len(bs) != 0 {
		t.Fatalf("the failed ADD left bridges %v (%v)", bs, err)
	}
	// The bridge's name server went before the bridge, as `pontoon bridge destroy` stops it.
	if st, err := names.Status(r.sb.Env, "pods"); err != nil || st.Record != nil {
		t.Fatalf("the failed ADD left the name server of the bridge it created: %+v %v", st.Record, err)
	}
	if got := links(t, r.sb.Host); !slices.Equal(got, hostBefore) {
		t.Fatalf("host links %v after the failed ADD, %v before", got, hostBefore)
	}
	if got := pins(); !slices.Equal(got, pinsBefore) {
		t.Fatalf("namespace pins %v after the failed ADD, %v before", got, pinsBefore)
	}
	if got := ruleset(); got != rulesBefore {
		t.Fatalf("host nftables after the failed ADD:\n%s\nbefore:\n%s", got, rulesBefore)
	}
	if got := links(t, a.NetNS); !slices.Equal(got, []string{"lo"}) {
		t.Fatalf("the failed ADD left %v in the container", got)
	}

	t.Setenv("PONTOON_RESOLV_CONF", good)
	b := rtConf("fail-b", r.netns("b"))
	if _, err := r.add(l, b); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PONTOON_RESOLV_CONF", t.TempDir())
	c := rtConf("fail-c", r.netns("c"))
	if _, err := r.add(l, c); err == nil {
		t.Fatal("ADD succeeded with unreadable resolvers")
	}
	gs := r.guests("pods")
	if _, ok := gs[cni.Key("pontoon-test", b.ContainerID, "eth0")]; !ok || len(gs) != 1 {
		t.Fatalf("after a failed ADD next to b the guests are %v; want b alone", gs)
	}
}

// TestDelIsBestEffort deletes with what a runtime may send long after the ADD: a
// configuration with a key this version does not know, or with no bridge, and a namespace
// that is gone or never was one. Each DEL detaches; GC with such a configuration works too.
func TestDelIsBestEffort(t *testing.T) {
	r := newRig(t)
	l := r.list(nil)
	a, b := rtConf("del-a", r.netns("a")), rtConf("del-b", r.netns("b"))
	for _, rt := range []*libcni.RuntimeConf{a, b} {
		if _, err := r.add(l, rt); err != nil {
			t.Fatal(err)
		}
	}
	garbage := filepath.Join(r.sb.Dir, "no-such.net")
	for _, c := range []struct {
		id, conf string
	}{
		{a.ContainerID, `{"cniVersion":"1.1.0","name":"pontoon-test","type":"pontoon-cni","bridge":"pods","futureKey":{"x":1},"createBridge":"yes"}`},
		{b.ContainerID, `{"cniVersion":"1.1.0","name":"pontoon-test","type":"pontoon-cni"}`},
	} {
		cmd, out := r.plugin("DEL", c.id, garbage, c.conf)
		if err := r.inHost(cmd.Run); err != nil {
			t.Fatalf("DEL %s with %s: %v %s", c.id, c.conf, err, out)
		}
		if _, ok := r.guests("pods")[cni.Key("pontoon-test", c.id, "eth0")]; ok {
			t.Fatalf("DEL %s with %s left the guest", c.id, c.conf)
		}
	}
	// GC too reads only what it needs, and finds this network's guests on any bridge.
	c := rtConf("gc-c", r.netns("c"))
	if _, err := r.add(l, c); err != nil {
		t.Fatal(err)
	}
	cmd, out := r.plugin("GC", "", "", `{"cniVersion":"1.1.0","name":"pontoon-test","type":"pontoon-cni","futureKey":1,"cni.dev/valid-attachments":[]}`)
	if err := r.inHost(cmd.Run); err != nil {
		t.Fatalf("GC without a bridge and with an unknown key: %v %s", err, out)
	}
	if gs := r.guests("pods"); len(gs) != 0 {
		t.Fatalf("GC left %v", gs)
	}
	if got := links(t, r.sb.Env.BridgeNetns("pods")); slices.ContainsFunc(got, func(n string) bool { return strings.HasPrefix(n, "g") }) {
		t.Fatalf("ports left on the bridge: %v", got)
	}
}

// startKill starts an ADD of the plugin binary and kills it with SIGKILL as soon as
// caught(bridge record) holds, polling the state with a deadline. It reports whether the
// kill came while caught still held; false means the ADD got past that point first.
func (r *rig) startKill(id, netns string, caught func(b *netsetup.BridgeState) bool) bool {
	r.t.Helper()
	cmd, _ := r.plugin("ADD", id, netns, pluginConf)
	if err := r.inHost(cmd.Start); err != nil {
		r.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	r.t.Cleanup(func() { cmd.Process.Kill(); <-done })
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return false
		default:
		}
		b, err := netsetup.GetBridge(r.sb.Env, "pods")
		if err == nil && caught(b) {
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
			b, err := netsetup.GetBridge(r.sb.Env, "pods")
			return err == nil && caught(b)
		}
	}
	r.t.Fatalf("ADD %s neither finished nor reached the point to kill it within 20s", id)
	return false
}

// TestKilledAddLeavesNothing kills the plugin with SIGKILL halfway through an ADD: while it
// creates the bridge, and while it attaches a container. The next ADD still works, DEL and
// GC remove what the killed one left, and in the end the bridge, its namespace and the
// containers' namespaces are as before.
func TestKilledAddLeavesNothing(t *testing.T) {
	r := newRig(t)
	if _, err := netsetup.GatewayUp(r.sb.Env, netsetup.GatewayOptions{}); err != nil {
		t.Fatal(err)
	}
	l := r.list(nil)
	creating := func(b *netsetup.BridgeState) bool { return b.Phase == netsetup.PhaseCreating }
	k1 := rtConf("killed-bridge", r.netns("k1"))
	for !r.startKill(k1.ContainerID, k1.NetNS, creating) {
		// The ADD created the bridge before it was seen: start over without it.
		must(t, r.del(l, k1))
		r.destroyBridge("pods")
	}
	if err := r.del(l, k1); err != nil {
		t.Fatalf("DEL after ADD was killed creating the bridge: %v", err)
	}
	a := rtConf("after-a", r.netns("a"))
	start := time.Now()
	if _, err := r.add(l, a); err != nil {
		t.Fatalf("ADD after another was killed creating the bridge: %v", err)
	}
	t.Logf("ADD after the killed bridge creation took %s", time.Since(start))
	portsBefore := links(t, r.sb.Env.BridgeNetns("pods"))

	attaching := func(key string) func(b *netsetup.BridgeState) bool {
		return func(b *netsetup.BridgeState) bool {
			return slices.ContainsFunc(b.Guests, func(g netsetup.Guest) bool { return g.Key == key && g.Phase == netsetup.PhaseCreating })
		}
	}
	kill := func(rt *libcni.RuntimeConf) {
		t.Helper()
		key := cni.Key("pontoon-test", rt.ContainerID, "eth0")
		for !r.startKill(rt.ContainerID, rt.NetNS, attaching(key)) {
			must(t, r.del(l, rt))
		}
	}
	// Killed while attaching, then the runtime's DEL.
	k2 := rtConf("killed-attach-del", r.netns("k2"))
	kill(k2)
	if err := r.del(l, k2); err != nil {
		t.Fatalf("DEL after ADD was killed attaching: %v", err)
	}
	// Killed while attaching, and no DEL (the runtime crashed too): the next ADD sweeps it.
	k3 := rtConf("killed-attach-sweep", r.netns("k3"))
	kill(k3)
	b := rtConf("after-b", r.netns("b"))
	if _, err := r.add(l, b); err != nil {
		t.Fatalf("ADD after another was killed attaching: %v", err)
	}
	if _, ok := r.guests("pods")[cni.Key("pontoon-test", k3.ContainerID, "eth0")]; ok {
		t.Fatal("the next ADD left the guest whose ADD was killed")
	}
	// Killed while attaching, then GC with the survivors as the valid list.
	k4 := rtConf("killed-attach-gc", r.netns("k4"))
	kill(k4)
	if err := r.gc(l, a, b); err != nil {
		t.Fatalf("GC after ADD was killed attaching: %v", err)
	}
	gs := r.guests("pods")
	if len(gs) != 2 {
		t.Fatalf("guests after GC: %v; want a and b", gs)
	}
	for _, rt := range []*libcni.RuntimeConf{k1, k2, k3, k4} {
		if got := links(t, rt.NetNS); !slices.Equal(got, []string{"lo"}) {
			t.Errorf("namespace of %s has %v; want only lo", rt.ContainerID, got)
		}
	}
	must(t, r.del(l, b))
	if got := links(t, r.sb.Env.BridgeNetns("pods")); !slices.Equal(got, portsBefore) {
		t.Errorf("bridge namespace has %v; want %v as with a alone", got, portsBefore)
	}
}

// TestFailedAddsBesideGoodOnes starts ADDs on a fresh node at once, half of which fail after
// the attach (their result needs the unreadable resolvers; the others' configuration names
// its DNS): whichever of them created the gateway and bridge, the good ADDs all succeed and
// keep both, and the failed ones leave no guest.
func TestFailedAddsBesideGoodOnes(t *testing.T) {
	r := newRig(t)
	t.Setenv("PONTOON_RESOLV_CONF", t.TempDir())
	bad := r.list(nil)
	good := r.list(map[string]any{"dns": map[string]any{"nameservers": []string{"192.0.2.53"}}})
	for round := range 4 {
		const n = 8
		errs := make([]error, n)
		rts := make([]*libcni.RuntimeConf, n)
		for i := range rts {
			rts[i] = rtConf(fmt.Sprintf("mixed%d-%d", round, i), r.netns(fmt.Sprintf("m%d-%d", round, i)))
		}
		var wg sync.WaitGroup
		for i := range rts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l := good
				if i%2 == 1 {
					l = bad
				}
				_, errs[i] = r.add(l, rts[i])
			}()
		}
		wg.Wait()
		gs := r.guests("pods")
		for i, rt := range rts {
			_, attached := gs[cni.Key("pontoon-test", rt.ContainerID, "eth0")]
			if i%2 == 0 && (errs[i] != nil || !attached) {
				t.Fatalf("round %d: good ADD %s: %v (attached %v)", round, rt.ContainerID, errs[i], attached)
			}
			if i%2 == 1 && (errs[i] == nil || attached) {
				t.Fatalf("round %d: failing ADD %s: %v (attached %v); want an error and no guest", round, rt.ContainerID, errs[i], attached)
			}
		}
		r.gatewayDownForce()
	}
}
