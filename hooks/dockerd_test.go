package hooks_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/hooks"
	"github.com/pontoon-dev/pontoon/hooks/hooktest"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
)

// dockerImage is the tiny image every Docker test imports from hooktest.Rootfs.
const dockerImage = "pontoon-test/busybox:1"

// dockerd is a private Docker daemon: its own data, exec root, socket and containerd, the
// pontoon runtime registered by hooks.InstallDocker in a daemon.json of its own, and an
// environment that selects the test's sandbox. A shared dockerd cannot serve the tests: the
// runtime learns where pontoon's state is from dockerd's environment, and each test has its
// own. It leaves the host's firewall and forwarding alone (--iptables=false, --ip-forward=false, no default bridge), and
// touches none of the host's containers, images or daemon.json.
type dockerd struct {
	t    *testing.T
	dir  string
	sock string
	cli  string // the docker client
	cmd  *exec.Cmd
}

// startDockerd starts a private dockerd for s, with the dockerImage imported, and stops it,
// removing its containers, when the test ends (also on failure).
func startDockerd(t *testing.T, s *sandbox.Sandbox) *dockerd {
	t.Helper()
	bin := hooktest.NeedCommand(t, "dockerd", "docker.io")
	cli := hooktest.NeedCommand(t, "docker", "docker.io")
	hooktest.NeedCommand(t, "runc", "runc")
	// Unix socket paths are short (108 bytes): containerd's lives under the exec root.
	dir, err := os.MkdirTemp("", "pontoon-dockerd-")
	if err != nil {
		t.Fatal(err)
	}
	d := &dockerd{t: t, dir: dir, sock: filepath.Join(dir, "docker.sock"), cli: cli}
	t.Cleanup(func() {
		unmountUnder(dir)
		os.RemoveAll(dir)
	})
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(config, []byte(`{"log-level": "warn"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := hooks.InstallDocker(config, self); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	d.cmd = exec.Command(bin, "--config-file", config, "--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "x"),
		"--pidfile", filepath.Join(dir, "dockerd.pid"), "-H", "unix://"+d.sock,
		"--iptables=false", "--ip-masq=false", "--ip-forward=false", "--bridge=none", "--storage-driver=vfs")
	d.cmd.Env = append(os.Environ(), s.Env.Environ()...)
	d.cmd.Stdout, d.cmd.Stderr = log, log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start dockerd: %v", err)
	}
	t.Cleanup(d.stop)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := d.docker("version"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dockerd did not answer within 60s:\n%s", d.log())
		}
	}
	d.importImage()
	return d
}

// imageTar is the image's root filesystem as a tar archive, made once per test binary.
var imageTar []byte

// importImage makes dockerImage from hooktest.Rootfs: no registry is reachable.
func (d *dockerd) importImage() {
	d.t.Helper()
	if imageTar == nil {
		out, err := exec.Command("tar", "-C", hooktest.Rootfs(d.t, d.t.TempDir()), "-c", ".").Output()
		if err != nil {
			d.t.Fatalf("tar the image's root filesystem: %v", err)
		}
		imageTar = out
	}
	imp := exec.Command(d.cli, "-H", "unix://"+d.sock, "import", "-", dockerImage)
	imp.Stdin = bytes.NewReader(imageTar)
	if out, err := imp.CombinedOutput(); err != nil {
		d.t.Fatalf("docker import: %v\n%s", err, out)
	}
}

// docker runs the client against this daemon and returns its combined output.
func (d *dockerd) docker(args ...string) (string, error) {
	out, err := exec.Command(d.cli, append([]string{"-H", "unix://" + d.sock}, args...)...).CombinedOutput()
	return string(out), err
}

// run is `docker run` with pontoon's runtime, no Docker network, the test image and argv.
func (d *dockerd) run(opts []string, argv ...string) (string, error) {
	args := append([]string{"run", "--runtime", hooks.DockerRuntime, "--network", "none"}, opts...)
	return d.docker(append(append(args, dockerImage), argv...)...)
}

// bundle returns the config.json containerd handed the runtime for container id.
func (d *dockerd) bundle(id string) string {
	return filepath.Join(d.dir, "x", "containerd", "daemon", "io.containerd.runtime.v2.task", "moby", id, "config.json")
}

func (d *dockerd) log() string {
	data, _ := os.ReadFile(filepath.Join(d.dir, "dockerd.log"))
	return string(data)
}

// stop removes every container and stops the daemon (and the containerd it started).
func (d *dockerd) stop() {
	if out, err := d.docker("ps", "-aq"); err == nil && strings.TrimSpace(out) != "" {
		if out, err := d.docker(append([]string{"rm", "-f"}, strings.Fields(out)...)...); err != nil {
			d.t.Errorf("docker rm -f: %v\n%s", err, out)
		}
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-done
		d.t.Errorf("dockerd did not stop within 30s of SIGTERM; killed it")
	}
}

// unmountUnder detaches whatever is still mounted below dir (the namespace files of a
// daemon that was killed).
func unmountUnder(dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			points = append(points, fields[4])
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		syscall.Unmount(points[i], syscall.MNT_DETACH)
	}
}

// dockerEnv is `-e` options asking for guest on bridge with ip.
func dockerEnv(bridge, guest, ip string, more ...string) []string {
	out := []string{"-e", "PONTOON_BRIDGE=" + bridge, "-e", "PONTOON_GUEST=" + guest, "-e", "PONTOON_IP=" + ip}
	for _, m := range more {
		out = append(out, "-e", m)
	}
	return out
}

// netnsOf returns the network namespace ("net:[INODE]") of container id's process.
func (d *dockerd) netnsOf(id string) string {
	d.t.Helper()
	out, err := d.docker("inspect", "-f", "{{.State.Pid}}", id)
	if err != nil {
		d.t.Fatalf("docker inspect %s: %v\n%s", id, err, out)
	}
	ns, err := os.Readlink("/proc/" + strings.TrimSpace(out) + "/ns/net")
	if err != nil {
		d.t.Fatal(err)
	}
	return ns
}

// netnsHeld reports who still holds network namespace ns ("net:[INODE]"): processes of
// Docker's in it (the daemon, containerd, a shim or what they started), and bind mounts of
// it under dirs (nsfs mounts show the namespace as their root). Once a namespace is gone its
// inode number may name a new one made by anyone, hence only Docker's processes and this
// test's directories.
func netnsHeld(ns string, dirs ...string) []string {
	var held []string
	procs, _ := filepath.Glob("/proc/[0-9]*/ns/net")
	for _, p := range procs {
		if l, err := os.Readlink(p); err == nil && l == ns && dockers(filepath.Dir(filepath.Dir(p))) {
			held = append(held, p)
		}
	}
	data, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) <= 4 || f[3] != ns {
			continue
		}
		for _, d := range dirs {
			if strings.HasPrefix(f[4], d+"/") {
				held = append(held, f[4])
				break
			}
		}
	}
	return held
}

// dockers tells whether the process at /proc/PID or one of its ancestors is Docker's.
func dockers(proc string) bool {
	for range 64 {
		comm, err := os.ReadFile(proc + "/comm")
		if err != nil {
			return false
		}
		switch c := strings.TrimSpace(string(comm)); {
		case c == "dockerd", c == "containerd", strings.HasPrefix(c, "containerd-shim"), c == "runc", c == "docker-init":
			return true
		}
		stat, err := os.ReadFile(proc + "/stat")
		if err != nil {
			return false
		}
		i := strings.LastIndexByte(string(stat), ')')
		f := strings.Fields(string(stat)[i+1:])
		if len(f) < 2 || f[1] == "0" || f[1] == "1" {
			return false
		}
		proc = "/proc/" + f[1]
	}
	return false
}

// bridgePorts lists the ports of bridge: each attached guest has one, and it goes when the
// guest's namespace goes.
func bridgePorts(t *testing.T, env netsetup.Env, bridge string) []string {
	t.Helper()
	out, err := exec.Command("nsenter", "--net="+env.BridgeNetns(bridge), "ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("list the links of bridge %s: %v\n%s", bridge, err, out)
	}
	var ports []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.Contains(line, " master ") {
			ports = append(ports, strings.TrimSuffix(f[1], ":"))
		}
	}
	return ports
}

// waitPorts returns the ports of bridge once there are n, or after 30s. The kernel destroys
// a container's namespace, and the veth in it, some time after the container is gone: well
// under a second on a quiet machine, many seconds while other tests churn namespaces.
func waitPorts(t *testing.T, env netsetup.Env, bridge string, n int) []string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ports := bridgePorts(t, env, bridge)
		if len(ports) == n || time.Now().After(deadline) {
			return ports
		}
	}
}
