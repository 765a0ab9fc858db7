package cni_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/pontoon-dev/pontoon/cni"
	"github.com/pontoon-dev/pontoon/internal/testkit"
	"github.com/pontoon-dev/pontoon/names"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/probe"
)

// cnitoolBinary returns cnitool of the CNI module version go.mod requires, built once per test
// binary (CNITOOL names a binary to use instead). It is installed by version rather than built
// inside this module because its command-line library is no dependency of pontoon's.
func cnitoolBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CNITOOL"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	const pkg = "github.com/containernetworking/cni/cnitool"
	built.Lock()
	defer built.Unlock()
	if p, ok := built.paths[pkg]; ok {
		return p
	}
	if built.dir == "" {
		dir, err := os.MkdirTemp("", "pontoon-cni-bin-")
		if err != nil {
			t.Fatal(err)
		}
		built.dir, built.paths = dir, map[string]string{}
	}
	v, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/containernetworking/cni").Output()
	if err != nil {
		t.Fatalf("read the CNI module's version from go.mod: %v", err)
	}
	cmd := exec.Command("go", "install", pkg+"@"+strings.TrimSpace(string(v)))
	cmd.Env = append(os.Environ(), "GOBIN="+built.dir, "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("cannot build cnitool %s (needs the Go module proxy once): %v\n%s", v, err, out)
	}
	built.paths[pkg] = filepath.Join(built.dir, "cnitool")
	return built.paths[pkg]
}

// cnitool runs cnitool as a user would, with a network list in its own NETCONFPATH, in the
// sandbox's host namespace. The plugin finds the sandbox's chain from the PONTOON_* variables,
// which cnitool passes on to it with the rest of its environment.
type cnitool struct {
	r       *rig
	bin     string
	net     string // the network's name, unique so that cnitool's cache entries are ours alone
	confDir string
}

// cniCache is where cnitool's libcni keeps results; cnitool has no option to move it.
const cniCache = "/var/lib/cni"

func newCnitool(r *rig) *cnitool {
	r.t.Helper()
	var b [4]byte
	rand.Read(b[:])
	c := &cnitool{r: r, bin: cnitoolBinary(r.t), net: "pontoon-cnitool-" + hex.EncodeToString(b[:]), confDir: filepath.Join(r.sb.Dir, "net.d")}
	c.conf(c.confDir, `{"type": "pontoon-cni", "bridge": "pods", "createBridge": true}`)
	made := []string{}
	for _, d := range []string{cniCache, cniCache + "/results"} {
		if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
			made = append(made, d)
		}
	}
	r.t.Cleanup(func() {
		for _, f := range c.cached() {
			os.Remove(f)
		}
		// os.Remove leaves a directory something else has put files in since.
		for _, d := range slices.Backward(made) {
			os.Remove(d)
		}
	})
	return c
}

// conf writes a network list of c's network with one plugin into dir.
func (c *cnitool) conf(dir, plugin string) {
	c.r.t.Helper()
	must(c.r.t, os.MkdirAll(dir, 0o755))
	list := fmt.Sprintf(`{"cniVersion": "1.1.0", "name": %q, "plugins": [%s]}`, c.net, plugin)
	must(c.r.t, os.WriteFile(filepath.Join(dir, "10-pontoon.conflist"), []byte(list), 0o644))
}

// list is c's network list as libcni reads it.
func (c *cnitool) list() *libcni.NetworkConfigList {
	c.r.t.Helper()
	l, err := libcni.ConfListFromFile(filepath.Join(c.confDir, "10-pontoon.conflist"))
	must(c.r.t, err)
	return l
}

// run runs cnitool with the network lists of confDir and returns its stdout and stderr.
func (c *cnitool) run(confDir string, args ...string) (string, string, error) {
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(os.Environ(), "NETCONFPATH="+confDir, "CNI_PATH="+c.r.bin)
	cmd.Env = append(cmd.Env, c.r.sb.Env.Environ()...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := c.r.inHost(cmd.Run)
	return out.String(), errOut.String(), err
}

// must runs cnitool on c's network list and fails the test unless it succeeds.
func (c *cnitool) must(args ...string) string {
	c.r.t.Helper()
	out, errOut, err := c.run(c.confDir, args...)
	if err != nil {
		c.r.t.Fatalf("cnitool %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// fails runs cnitool, which must exit non-zero, and returns the error it reports. cnitool
// prints the error twice, "Error: " and the message, then its usage, then the message alone
// as the last line: the message is one line when the first and last lines agree.
func (c *cnitool) fails(confDir string, args ...string) string {
	c.r.t.Helper()
	_, errOut, err := c.run(confDir, args...)
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		c.r.t.Fatalf("cnitool %s: %v; want a non-zero exit", strings.Join(args, " "), err)
	}
	lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
	msg := lines[len(lines)-1]
	if msg == "" || lines[0] != "Error: "+msg {
		c.r.t.Fatalf("cnitool %s printed %q; want an error message of one line", strings.Join(args, " "), errOut)
	}
	return msg
}

// containerID is the id cnitool gives the attachment of a namespace.
func containerID(nsPath string) string {
	sum := sha512.Sum512([]byte(nsPath))
	return fmt.Sprintf("cnitool-%x", sum[:10])
}

// cached lists cnitool's cache entries of c's network.
func (c *cnitool) cached() []string {
	got, _ := filepath.Glob(filepath.Join(cniCache, "results", c.net+"-*"))
	return got
}

// snapshot is what the chain looks like to an administrator: the links of every namespace
// pontoon made, the pins, the state files, the firewall and cnitool's cache.
func (c *cnitool) snapshot() map[string]string {
	t := c.r.t
	t.Helper()
	env := c.r.sb.Env
	stateDir, netnsDir := env.Dirs()
	snap := map[string]string{"cnitool cache": strings.Join(c.cached(), " ")}
	for _, d := range []string{stateDir, netnsDir} {
		var names []string
		must(t, filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			// The plugin's lock file stays once made, as pontoon's own lock does.
			if !e.IsDir() && e.Name() != netsetup.CNILock {
				names = append(names, strings.TrimPrefix(p, d))
			}
			return nil
		}))
		snap["files under "+d] = strings.Join(names, " ")
	}
	for _, p := range []string{c.r.sb.Host, env.GatewayNetns(), env.BridgeNetns("pods")} {
		snap["links in "+p] = strings.Join(links(t, p), " ")
		// -s: counters would differ with every packet, and so would the asked sets.
		out, err := exec.Command("nsenter", "--net="+p, "nft", "-s", "list", "ruleset").CombinedOutput()
		if err != nil {
			t.Fatalf("nft list ruleset in %s: %v %s", p, err, out)
		}
		snap["ruleset in "+p] = testkit.StableRuleset(string(out))
	}
	var guests []string
	for k := range c.r.guests("pods") {
		guests = append(guests, k)
	}
	slices.Sort(guests)
	snap["guests"] = strings.Join(guests, " ")
	return snap
}

// TestCnitool drives pontoon-cni through cnitool, built from the CNI module, as a user would
// by hand: add prints a result of the specification's shape, two added namespaces reach each
// other, check passes and then reports an address removed by hand, del twice succeeds, a bad
// configuration is one line naming the field, and gc removes every attachment of the network,
// also one cnitool never made. Afterwards the chain is as it was before the first add.
func TestCnitool(t *testing.T) {
	r := newRig(t)
	tool := newCnitool(r)
	// The gateway and bridge are up first, as on a node where `pontoon gateway up` ran, so
	// that before and after compare the attachments alone.
	if _, err := netsetup.GatewayUp(r.sb.Env, netsetup.GatewayOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := netsetup.CreateBridge(r.sb.Env, "pods", netsetup.BridgeOptions{}); err != nil {
		t.Fatal(err)
	}
	// With its name server, as `pontoon bridge create` leaves it.
	if err := names.Start(r.sb.Env, "pods", pontoonBinary(t)); err != nil {
		t.Fatal(err)
	}
	before := tool.snapshot()
	a, b := r.netns("a"), r.netns("b")

	if out := tool.must("status", tool.net, a); out != "" {
		t.Errorf("cnitool status printed %q", out)
	}
	plan := netsetup.DefaultPlan()
	gw := plan.BridgeAddr().Addr().String()
	addr := map[string]netip.Prefix{}
	for _, nsPath := range []string{a, b} {
		out := tool.must("add", tool.net, nsPath)
		var keys map[string]json.RawMessage
		if err := json.Unmarshal([]byte(out), &keys); err != nil {
			t.Fatalf("cnitool add printed %q: %v", out, err)
		}
		if got := slices.Sorted(maps.Keys(keys)); !slices.Equal(got, []string{"cniVersion", "dns", "interfaces", "ips", "routes"}) {
			t.Fatalf("result keys %v; want cniVersion, dns, interfaces, ips, routes:\n%s", got, out)
		}
		var res current.Result
		must(t, json.Unmarshal([]byte(out), &res))
		if res.CNIVersion != "1.1.0" {
			t.Errorf("result cniVersion %q, want the list's 1.1.0", res.CNIVersion)
		}
		if len(res.Interfaces) != 2 || res.Interfaces[0].Name != "eth0" || res.Interfaces[0].Sandbox != nsPath ||
			res.Interfaces[1].Sandbox != r.sb.Env.BridgeNetns("pods") || res.Interfaces[1].Mac == "" {
			t.Fatalf("result interfaces %s: want eth0 in %s, then the port in the bridge's namespace", keys["interfaces"], nsPath)
		}
		plan6 := r.plan() // the IPv6 prefix the gateway came up with
		gw6 := plan6.BridgeAddr6().Addr().String()
		if len(res.IPs) != 2 || res.IPs[0].Interface == nil || *res.IPs[0].Interface != 0 || res.IPs[0].Gateway.String() != gw ||
			res.IPs[1].Interface == nil || *res.IPs[1].Interface != 0 || res.IPs[1].Gateway.String() != gw6 {
			t.Fatalf("result ips %s: want an IPv4 address via %s and an IPv6 one via %s, both on interface 0", keys["ips"], gw, gw6)
		}
		p := netip.MustParsePrefix(res.IPs[0].Address.String())
		if !plan.GuestNet().Contains(p.Addr()) || p.Bits() != plan.GuestNet().Bits() || res.Interfaces[0].Mac != netsetup.GuestMAC(p.Addr()).String() {
			t.Errorf("result address %s MAC %s: want one of %s with its MAC", p, res.Interfaces[0].Mac, plan.GuestNet())
		}
		if len(res.Routes) != 2 || res.Routes[0].Dst.String() != "0.0.0.0/0" || res.Routes[0].GW.String() != gw ||
			res.Routes[1].Dst.String() != "::/0" || res.Routes[1].GW.String() != gw6 {
			t.Errorf("result routes %s: want default via %s and ::/0 via %s", keys["routes"], gw, gw6)
		}
		if want6 := netip.PrefixFrom(plan6.GuestIP6(p.Addr()), 64).String(); res.IPs[1].Address.String() != want6 {
			t.Errorf("result IPv6 address %s, want %s", res.IPs[1].Address.String(), want6)
		}
		if !slices.Equal(res.DNS.Nameservers, []string{gw}) {
			t.Errorf("result dns %s: want the bridge's name server %s", keys["dns"], gw)
		}
		g, ok := r.guests("pods")[cni.Key(tool.net, containerID(nsPath), "eth0")]
		if !ok || g.Name != containerID(nsPath)[:12]+"-eth0" || g.IP != p.Addr() || g.Phase != netsetup.PhaseReady {
			t.Fatalf("guest of %s: %+v (present %v); want %s-eth0 with %s, ready", nsPath, g, ok, containerID(nsPath)[:12], p.Addr())
		}
		addr[nsPath] = p
	}
	if addr[a] == addr[b] {
		t.Fatalf("both namespaces got %s", addr[a])
	}
	if err := probe.Ping(a, addr[b].Addr(), 5*time.Second); err != nil {
		t.Fatalf("a cannot reach b: %v", err)
	}
	if err := probe.Ping(b, addr[a].Addr(), 5*time.Second); err != nil {
		t.Fatalf("b cannot reach a: %v", err)
	}

	tool.must("check", tool.net, a)
	ipIn(t, a, "addr", "del", addr[a].String(), "dev", "eth0")
	if line := tool.fails(tool.confDir, "check", tool.net, a); !strings.Contains(line, "lacks its address "+addr[a].String()) {
		t.Fatalf("cnitool check after the address was removed: %q; want the drift named", line)
	}

	tool.must("del", tool.net, a)
	tool.must("del", tool.net, a)
	if _, ok := r.guests("pods")[cni.Key(tool.net, containerID(a), "eth0")]; ok {
		t.Fatal("a is still a guest after del")
	}
	if got := links(t, a); !slices.Equal(got, []string{"lo"}) {
		t.Fatalf("a's namespace has %v after del; want only lo", got)
	}

	// Bad configurations: refused with one line naming the field, and nothing changes.
	c := r.netns("c")
	mid := tool.snapshot()
	for _, bad := range []struct{ plugin, field string }{
		{`{"type": "pontoon-cni", "bridge": "pods", "createBrige": true}`, `"createBrige"`},
		{`{"type": "pontoon-cni", "bridge": 7}`, `"bridge"`},
		{`{"type": "pontoon-cni", "bridge": "pods", "ipam": {"type": "host-local"}}`, `"ipam"`},
	} {
		dir := filepath.Join(r.sb.Dir, "bad.d")
		tool.conf(dir, bad.plugin)
		if line := tool.fails(dir, "add", tool.net, c); !strings.Contains(line, "config field "+bad.field) {
			t.Errorf("cnitool add with %s: %q; want the field %s named", bad.plugin, line, bad.field)
		}
	}
	if got := links(t, c); !slices.Equal(got, []string{"lo"}) {
		t.Fatalf("refused adds left %v in the namespace", got)
	}
	if got := tool.snapshot(); !maps.Equal(got, mid) {
		t.Fatalf("refused adds changed the chain:\n%s", snapDiff(mid, got))
	}

	// d is attached behind cnitool's back (another cache), so only the plugin's GC, not
	// libcni's DEL of cnitool's cached attachments, can remove it.
	d := r.netns("d")
	other := libcni.NewCNIConfigWithCacheDir([]string{r.bin}, filepath.Join(r.sb.Dir, "other-cache"), nil)
	l := tool.list()
	if err := r.inHost(func() error {
		_, err := other.AddNetworkList(t.Context(), l, rtConf("behind-cnitool", d))
		return err
	}); err != nil {
		t.Fatalf("ADD d through libcni: %v", err)
	}
	tool.must("gc", tool.net, b)
	for _, nsPath := range []string{b, d} {
		if got := links(t, nsPath); !slices.Equal(got, []string{"lo"}) {
			t.Errorf("%s has %v after gc; want only lo", nsPath, got)
		}
	}
	if after := tool.snapshot(); !maps.Equal(after, before) {
		t.Fatalf("the chain after gc differs from before the first add:\n%s", snapDiff(before, after))
	}
}

func snapDiff(before, after map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(before)) {
		if before[k] != after[k] {
			fmt.Fprintf(&b, "%s:\n  before: %q\n  after:  %q\n", k, before[k], after[k])
		}
	}
	return b.String()
}
