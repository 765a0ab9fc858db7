package cni_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/pontoon-dev/pontoon/internal/kernel"
	"github.com/pontoon-dev/pontoon/names"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
)

// built holds the binaries the tests build once per test binary (cmd/pontoon-cni and
// cmd/pontoon), so they always drive the code of this tree; PONTOON_CNI and PONTOON_BIN
// name binaries to test instead (e.g. bin/pontoon-cni and bin/pontoon of `make build`).
var built struct {
	sync.Mutex
	dir   string
	paths map[string]string
}

func buildOnce(t *testing.T, pkg, override string) string {
	t.Helper()
	if p := os.Getenv(override); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
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
	path := filepath.Join(built.dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-tags", "urfave_cli_no_docs", "-o", path, "../"+pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./%s: %v\n%s", pkg, err, out)
	}
	built.paths[pkg] = path
	return path
}

func pluginBinary(t *testing.T) string { return buildOnce(t, "cmd/pontoon-cni", "PONTOON_CNI") }

func pontoonBinary(t *testing.T) string { return buildOnce(t, "cmd/pontoon", "PONTOON_BIN") }

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// rig is a sandboxed host with pontoon-cni and Debian's plugins in one CNI bin directory.
// The plugins run in the sandbox's host namespace, so a chained portmap writes its rules
// there and not on the real host.
type rig struct {
	t   *testing.T
	sb  *sandbox.Sandbox
	cni *libcni.CNIConfig
	bin string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	sb := sandbox.ForTest(t, "")
	// Before the sandbox goes (cleanups run last first): the name servers ADDs started, as
	// `pontoon gateway down --force` stops them, so that none outlives the test.
	t.Cleanup(func() { stopNameServers(t, sb.Env) })
	bin := filepath.Join(sb.Dir, "cni-bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(pluginBinary(t), filepath.Join(bin, "pontoon-cni")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"portmap", "loopback"} {
		if _, err := os.Stat("/usr/lib/cni/" + p); err == nil {
			os.Symlink("/usr/lib/cni/"+p, filepath.Join(bin, p))
		}
	}
	// The plugin finds the sandbox's chain as the CLI would: from PONTOON_* variables.
	for _, kv := range sb.Env.Environ() {
		k, v, _ := cutEq(kv)
		t.Setenv(k, v)
	}
	return &rig{t: t, sb: sb, bin: bin, cni: libcni.NewCNIConfigWithCacheDir([]string{bin}, filepath.Join(sb.Dir, "cni-cache"), nil)}
}

func cutEq(kv string) (string, string, bool) {
	for i := range kv {
		if kv[i] == '=' {
			return kv[:i], kv[i+1:], true
		}
	}
	return kv, "", false
}

// netns creates a network namespace for a "container", removed when the test ends.
func (r *rig) netns(name string) string {
	r.t.Helper()
	p := filepath.Join(r.sb.Dir, name+".net")
	if err := ns.New(ns.Spec{Net: p}); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { ns.Remove(p) })
	return p
}

// list builds a network configuration list: pontoon-cni with extra keys, then more plugins.
func (r *rig) list(pontoon map[string]any, more ...map[string]any) *libcni.NetworkConfigList {
	r.t.Helper()
	return r.listV("1.1.0", pontoon, more...)
}

// listV is list for a given CNI version (Debian's plugins speak up to 1.0.0).
func (r *rig) listV(version string, pontoon map[string]any, more ...map[string]any) *libcni.NetworkConfigList {
	r.t.Helper()
	conf := map[string]any{"type": "pontoon-cni", "bridge": "pods", "createBridge": true}
	for k, v := range pontoon {
		conf[k] = v
	}
	plugins := append([]map[string]any{conf}, more...)
	data, err := json.Marshal(map[string]any{"cniVersion": version, "name": "pontoon-test", "plugins": plugins})
	if err != nil {
		r.t.Fatal(err)
	}
	l, err := libcni.NetworkConfFromBytes(data)
	if err != nil {
		r.t.Fatal(err)
	}
	return l
}

// inHost runs fn on a thread in the sandbox's host namespace: the plugins it executes start
// there.
func (r *rig) inHost(fn func() error) error { return ns.Do(r.sb.Host, fn) }

func (r *rig) add(l *libcni.NetworkConfigList, rt *libcni.RuntimeConf) (*current.Result, error) {
	var res types.Result
	err := r.inHost(func() (err error) {
		res, err = r.cni.AddNetworkList(context.Background(), l, rt)
		return err
	})
	if err != nil {
		return nil, err
	}
	return current.NewResultFromResult(res)
}

func (r *rig) check(l *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	return r.inHost(func() error { return r.cni.CheckNetworkList(context.Background(), l, rt) })
}

func (r *rig) del(l *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	return r.inHost(func() error { return r.cni.DelNetworkList(context.Background(), l, rt) })
}

func (r *rig) gc(l *libcni.NetworkConfigList, valid ...*libcni.RuntimeConf) error {
	args := &libcni.GCArgs{}
	for _, rt := range valid {
		args.ValidAttachments = append(args.ValidAttachments, types.GCAttachment{ContainerID: rt.ContainerID, IfName: rt.IfName})
	}
	return r.inHost(func() error { return r.cni.GCNetworkList(context.Background(), l, args) })
}

func (r *rig) status(l *libcni.NetworkConfigList) error {
	return r.inHost(func() error { return r.cni.GetStatusNetworkList(context.Background(), l) })
}

func rtConf(id, netns string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: id, NetNS: netns, IfName: "eth0"}
}

// guests returns the bridge's guests by key.
func (r *rig) guests(bridge string) map[string]netsetup.Guest {
	r.t.Helper()
	b, err := netsetup.GetBridge(r.sb.Env, bridge)
	if err != nil {
		r.t.Fatal(err)
	}
	out := map[string]netsetup.Guest{}
	for _, g := range b.Guests {
		out[g.Key] = g
	}
	return out
}

// links lists the interface names in a namespace.
func links(t *testing.T, nsPath string) []string {
	t.Helper()
	h, err := kernel.OpenNS(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ls, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range ls {
		out = append(out, l.Attrs().Name)
	}
	return out
}

// stopNameServers stops every detached name server the sandbox's state records.
func stopNameServers(t *testing.T, env netsetup.Env) {
	t.Helper()
	state, _ := env.Dirs()
	recs, _ := filepath.Glob(filepath.Join(state, "names", "*.json"))
	for _, p := range recs {
		if err := names.Stop(env, strings.TrimSuffix(filepath.Base(p), ".json")); err != nil {
			t.Errorf("stop name server %s: %v", p, err)
		}
	}
}

// destroyBridge destroys a bridge as `pontoon bridge destroy` does: its name server first.
func (r *rig) destroyBridge(name string) {
	r.t.Helper()
	if err := names.Stop(r.sb.Env, name); err != nil {
		r.t.Fatal(err)
	}
	if err := netsetup.DestroyBridge(r.sb.Env, name); err != nil {
		r.t.Fatal(err)
	}
}

// gatewayDownForce takes the chain down as `pontoon gateway down --force` does: the bridges'
// name servers first.
func (r *rig) gatewayDownForce() {
	r.t.Helper()
	stopNameServers(r.t, r.sb.Env)
	if err := netsetup.GatewayDown(r.sb.Env, true); err != nil {
		r.t.Fatal(err)
	}
}
