package cni_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/cni"
	"golang.org/x/sys/unix"
)

// crictlVersion is the cri-tools release the CRI test builds crictl from.
const crictlVersion = "v1.37.0"

// crictlBinary returns crictl from the cache directory, building it there with the Go
// module proxy the first time.
func crictlBinary(t *testing.T) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cache, "pontoon", "crictl-"+crictlVersion)
	bin := filepath.Join(dir, "crictl")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("go", "install", "sigs.k8s.io/cri-tools/cmd/crictl@"+crictlVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("cannot build crictl %s (needs the Go module proxy once): %v\n%s", crictlVersion, err, out)
	}
	return bin
}

// criHost is a private containerd (own root, state and socket, CRI on) whose CNI
// configuration is pontoon-cni, running in the sandbox's host namespace.
type criHost struct {
	t      *testing.T
	r      *rig
	dir    string
	sock   string
	crictl string
	cfg    string // crictl's configuration
}

func newCRIHost(t *testing.T, r *rig) *criHost {
	t.Helper()
	if _, err := exec.LookPath("containerd"); err != nil {
		t.Skip("needs Debian's containerd (make deps installs it)")
	}
	c := &criHost{t: t, r: r, crictl: crictlBinary(t)}
	// Short: the socket path must fit a sockaddr_un.
	dir, err := os.MkdirTemp("", "pcri-")
	if err != nil {
		t.Fatal(err)
	}
	c.dir, c.sock = dir, filepath.Join(dir, "containerd.sock")
	confDir := filepath.Join(dir, "net.d")
	must(t, os.MkdirAll(confDir, 0o755))
	// containerd 1.6's CNI library speaks CNI up to 1.0.0.
	must(t, os.WriteFile(filepath.Join(confDir, "10-pontoon.conflist"), []byte(`{"cniVersion":"1.0.0","name":"pontoon-pods",
		"plugins":[{"type":"pontoon-cni","bridge":"pods","createBridge":true}]}`), 0o644))
	config := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = %[3]q
[plugins."io.containerd.internal.v1.opt"]
  path = %[4]q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "pontoon.test/pause:1"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # Without CAP_SYS_RESOURCE (as on the machines pontoon is tested on) runc cannot lower a
  # process's oom_score_adj below its parent's, which CRI asks for the pause process.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = %[7]q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[5]q
    conf_dir = %[6]q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.sock, filepath.Join(dir, "opt"), r.bin, confDir, filepath.Join(dir, "runc"))
	cfgPath := filepath.Join(dir, "config.toml")
	must(t, os.WriteFile(cfgPath, []byte(config), 0o644))
	c.cfg = filepath.Join(dir, "crictl.yaml")
	must(t, os.WriteFile(c.cfg, []byte(fmt.Sprintf("runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 60\n", c.sock, c.sock)), 0o644))

	// containerd's CNI library caches results in /var/lib/cni: removed afterwards if the
	// test made it (os.Remove leaves it when anything is left inside).
	if _, err := os.Stat("/var/lib/cni"); errors.Is(err, os.ErrNotExist) {
		t.Cleanup(func() {
			os.Remove("/var/lib/cni/results")
			os.Remove("/var/lib/cni")
		})
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	must(t, err)
	// containerd runs in the sandbox's host namespace (its stream server for exec listens
	// on that namespace's loopback); the plugin inherits PONTOON_* from it.
	cmd := exec.Command("nsenter", "--net="+r.sb.Host, "containerd", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	must(t, cmd.Start())
	t.Cleanup(func() { c.stop(cmd, logf) })
	c.waitReady()
	return c
}

// stop removes every pod, stops containerd and its shims, and removes what is left of its
// directories, also when the test failed halfway.
func (c *criHost) stop(cmd *exec.Cmd, logf *os.File) {
	c.run("rmp", "--force", "--all")
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
	}
	for _, pid := range c.shims() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	logf.Close()
	if c.t.Failed() {
		if b, err := os.ReadFile(logf.Name()); err == nil {
			c.t.Logf("containerd log (last 3000 bytes):\n%s", tail(b, 3000))
		}
	}
	unmountBelow(c.dir)
	os.RemoveAll(c.dir)
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// shims lists the shim processes serving this containerd (their command line names its socket).
func (c *criHost) shims() []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		b, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		args := strings.Split(string(b), "\x00")
		if len(args) > 0 && strings.Contains(args[0], "containerd-shim") && slices.Contains(args, c.sock) {
			out = append(out, pid)
		}
	}
	return out
}

func unmountBelow(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	slices.Sort(points)
	for i := len(points) - 1; i >= 0; i-- {
		unix.Unmount(points[i], unix.MNT_DETACH)
	}
}

func (c *criHost) run(args ...string) (string, error) {
	full := append([]string{"--net=" + c.r.sb.Host, c.crictl, "--config", c.cfg}, args...)
	cmd := exec.Command("nsenter", full...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("crictl %s: %w: %s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

func (c *criHost) must(args ...string) string {
	c.t.Helper()
	out, err := c.run(args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// waitReady polls until the CRI reports runtime and network ready (the CNI configuration
// loaded).
func (c *criHost) waitReady() {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := c.run("info")
		if err == nil {
			var info struct {
				Status struct {
					Conditions []struct {
						Type   string `json:"type"`
						Status bool   `json:"status"`
					} `json:"conditions"`
				} `json:"status"`
			}
			ready := 0
			if json.Unmarshal([]byte(out), &info) == nil {
				for _, cond := range info.Status.Conditions {
					if cond.Status && (cond.Type == "RuntimeReady" || cond.Type == "NetworkReady") {
						ready++
					}
				}
			}
			if ready == 2 {
				return
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("containerd's CRI not ready within 60s: %v %s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *criHost) importImage() {
	c.t.Helper()
	archive := filepath.Join(c.dir, "busybox.oci.tar")
	busyboxArchive(c.t, archive, "pontoon.test/busybox:1", "pontoon.test/pause:1")
	out, err := exec.Command("ctr", "--address", c.sock, "--namespace", "k8s.io", "images", "import", "--snapshotter", "native", archive).CombinedOutput()
	if err != nil {
		c.t.Fatalf("ctr images import: %v\n%s", err, out)
	}
}

// pod is a pod sandbox with one busybox container.
type pod struct {
	id, ctr, ip, netns string
}

func (c *criHost) startPod(name string) pod {
	c.t.Helper()
	podJSON := filepath.Join(c.dir, name+"-pod.json")
	ctrJSON := filepath.Join(c.dir, name+"-ctr.json")
	must(c.t, os.WriteFile(podJSON, []byte(fmt.Sprintf(`{"metadata":{"name":%q,"namespace":"pontoon","uid":"uid-%s","attempt":0},
		"hostname":%q,"log_directory":%q,"linux":{}}`, name, name, name, filepath.Join(c.dir, "logs", name))), 0o644))
	must(c.t, os.WriteFile(ctrJSON, []byte(`{"metadata":{"name":"box"},"image":{"image":"pontoon.test/busybox:1"},
		"command":["/bin/sleep","3600"],"log_path":"box.log","linux":{}}`), 0o644))
	p := pod{id: c.must("runp", podJSON)}
	p.ctr = c.must("create", "--no-pull", p.id, ctrJSON, podJSON)
	c.must("start", p.ctr)
	var insp struct {
		Status struct {
			Network struct {
				IP string `json:"ip"`
			} `json:"network"`
		} `json:"status"`
		Info struct {
			RuntimeSpec struct {
				Linux struct {
					Namespaces []struct {
						Type string `json:"type"`
						Path string `json:"path"`
					} `json:"namespaces"`
				} `json:"linux"`
			} `json:"runtimeSpec"`
		} `json:"info"`
	}
	if err := json.Unmarshal([]byte(c.must("inspectp", "-o", "json", p.id)), &insp); err != nil {
		c.t.Fatal(err)
	}
	p.ip = insp.Status.Network.IP
	for _, n := range insp.Info.RuntimeSpec.Linux.Namespaces {
		if n.Type == "network" {
			p.netns = n.Path
		}
	}
	return p
}

// reaches runs ping in a container of from towards to.
func (c *criHost) reaches(from, to pod) error {
	_, err := c.run("exec", from.ctr, "ping", "-c", "1", "-W", "2", to.ip)
	return err
}

// TestCRIPodsOnOneBridge runs two pod sandboxes through containerd's CRI with pontoon-cni
// as the network: both land on one pontoon bridge and reach each other from inside their
// containers, a partition between them holds, and removing the pods leaves nothing.
func TestCRIPodsOnOneBridge(t *testing.T) {
	r := newRig(t)
	c := newCRIHost(t, r)
	c.importImage()

	a := c.startPod("pod-a")
	b := c.startPod("pod-b")
	gs := r.guests("pods")
	ga, okA := gs[cni.Key("pontoon-pods", a.id, "eth0")]
	gb, okB := gs[cni.Key("pontoon-pods", b.id, "eth0")]
	if !okA || !okB {
		t.Fatalf("the pods are not guests of bridge pods: %v", gs)
	}
	if ga.IP.String() != a.ip || gb.IP.String() != b.ip || ga.Name != "pod-a.pontoon" || gb.Name != "pod-b.pontoon" {
		t.Fatalf("CRI reports %s and %s; pontoon has %+v and %+v", a.ip, b.ip, ga, gb)
	}
	if !sameFileTest(ga.Netns, a.netns) {
		t.Fatalf("guest %s is attached to %s, the pod's namespace is %s", ga.Name, ga.Netns, a.netns)
	}
	if err := c.reaches(a, b); err != nil {
		t.Fatalf("pod-a cannot reach pod-b: %v", err)
	}
	if err := c.reaches(b, a); err != nil {
		t.Fatalf("pod-b cannot reach pod-a: %v", err)
	}

	// The pods are guests like any other: the CLI shows them and partitions them by their
	// pods' names.
	pontoon := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(pontoonBinary(t), args...).CombinedOutput()
		if err != nil {
			t.Fatalf("pontoon %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	out := pontoon("bridge", "show", "pods")
	if !strings.Contains(out, ga.Name) || !strings.Contains(out, gb.Name) {
		t.Fatalf("bridge show lacks the pods' guests %s and %s:\n%s", ga.Name, gb.Name, out)
	}
	t.Logf("pontoon bridge show pods:\n%s", out)
	pontoon("partition", "isolate", ga.Name, "--bridge", "pods")
	if out = pontoon("partition", "status", "--bridge", "pods"); !strings.Contains(out, ga.Name) {
		t.Fatalf("partition status does not name %s:\n%s", ga.Name, out)
	}
	t.Logf("pontoon partition status --bridge pods:\n%s", out)
	if err := c.reaches(a, b); err == nil {
		t.Fatal("pod-a reached pod-b across the partition")
	}
	if err := c.reaches(b, a); err == nil {
		t.Fatal("pod-b reached pod-a across the partition")
	}
	// The pod made again (a new sandbox, so a new id) is the same guest, and stays isolated.
	c.must("stopp", a.id)
	c.must("rmp", a.id)
	a = c.startPod("pod-a")
	if err := c.reaches(a, b); err == nil {
		t.Fatal("pod-a, made again, reached pod-b across the partition")
	}
	if err := c.reaches(b, a); err == nil {
		t.Fatal("pod-b reached pod-a, made again, across the partition")
	}
	if out, err := exec.Command(pontoonBinary(t), "partition", "status", "--check", "--bridge", "pods").CombinedOutput(); err != nil || !strings.Contains(string(out), "pod-a") {
		t.Fatalf("partition status --check after pod-a was made again: %v\n%s", err, out)
	}
	pontoon("partition", "heal", "--bridge", "pods")
	if err := c.reaches(a, b); err != nil {
		t.Fatalf("after healing, pod-a cannot reach pod-b: %v", err)
	}

	for _, p := range []pod{a, b} {
		c.must("stopp", p.id)
		c.must("rmp", p.id)
	}
	if gs := r.guests("pods"); len(gs) != 0 {
		t.Fatalf("guests left after the pods were removed: %v", gs)
	}
	if got := links(t, r.sb.Env.BridgeNetns("pods")); len(got) != 3 {
		t.Fatalf("bridge namespace links after the pods were removed: %v; want lo, br0 and uplink", got)
	}
	for _, p := range []pod{a, b} {
		if _, err := os.Stat(p.netns); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("pod namespace %s outlived its pod: %v", p.netns, err)
		}
	}
	if out := c.must("pods", "-q"); out != "" {
		t.Fatalf("pods left: %s", out)
	}
	if out, err := exec.Command("ctr", "--address", c.sock, "--namespace", "k8s.io", "tasks", "ls", "-q").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("tasks left: %s %v", out, err)
	}
	if pids := c.shims(); len(pids) != 0 {
		t.Fatalf("shims left: %v", pids)
	}
}

func sameFileTest(a, b string) bool {
	var sa, sb unix.Stat_t
	return unix.Stat(a, &sa) == nil && unix.Stat(b, &sb) == nil && sa.Dev == sb.Dev && sa.Ino == sb.Ino
}
