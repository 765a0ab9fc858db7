package runtime

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/pontoon-dev/pontoon/hooks"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/runtime/config"
)

func netns(s *specs.Spec) (specs.LinuxNamespace, bool) {
	for _, n := range s.Linux.Namespaces {
		if n.Type == specs.NetworkNamespace {
			return n, true
		}
	}
	return specs.LinuxNamespace{}, false
}

func mount(s *specs.Spec, dst string) (specs.Mount, bool) {
	for _, m := range s.Mounts {
		if m.Destination == dst {
			return m, true
		}
	}
	return specs.Mount{}, false
}

func TestSpec(t *testing.T) {
	env := netsetup.Env{StateDir: "/tmp/st", NetnsDir: "/tmp/nn"}
	guest := &Container{
		ID: "c1", Name: "n1", Args: []string{"kvnode"}, Net: NetGuest, Hostname: "n1", ProjectDir: "/src/p",
		Guest:   &Guest{Bridge: "br", Name: "n1", IP: netip.MustParseAddr("172.18.0.1"), Ports: []netsetup.Port{{HostPort: 7001, GuestPort: 7000, Proto: "tcp"}}},
		Pontoon: "/usr/bin/pontoon", ChainEnv: env, Hosts: []byte("h"), ResolvConf: []byte("r"),
	}
	s, err := guest.Spec("/b")
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := netns(s); !ok || n.Path != "" {
		t.Errorf("guest network namespace %+v %v, want a new one", n, ok)
	}
	wantHook := []string{"pontoon", "hook", "create-runtime", "--state-dir", "/tmp/st", "--netns-dir", "/tmp/nn"}
	if s.Hooks == nil || len(s.Hooks.CreateRuntime) != 1 || s.Hooks.CreateRuntime[0].Path != "/usr/bin/pontoon" || !slices.Equal(s.Hooks.CreateRuntime[0].Args, wantHook) {
		t.Errorf("createRuntime hooks %+v, want %q", s.Hooks, wantHook)
	}
	if len(s.Hooks.Poststop) != 1 || s.Hooks.Poststop[0].Args[2] != "poststop" {
		t.Errorf("poststop hooks %+v", s.Hooks.Poststop)
	}
	req, err := hooks.ParseRequest(s.Annotations)
	if err != nil || req.Bridge != "br" || req.Guest != "n1" || req.IP.String() != "172.18.0.1" || hooks.FormatPorts(req.Ports) != "7001:7000/tcp" {
		t.Errorf("annotations %v: %+v %v", s.Annotations, req, err)
	}
	if s.Process.Cwd != "/work" || s.Root.Path != "rootfs" || !s.Root.Readonly {
		t.Errorf("cwd %q, root %+v", s.Process.Cwd, s.Root)
	}
	if m, ok := mount(s, "/work"); !ok || m.Source != "/src/p" || !slices.Contains(m.Options, "rw") {
		t.Errorf("/work mount %+v", m)
	}
	for dst, src := range map[string]string{"/etc/hosts": "/b/hosts", "/etc/resolv.conf": "/b/resolv.conf"} {
		if m, ok := mount(s, dst); !ok || m.Source != src {
			t.Errorf("%s mount %+v", dst, m)
		}
	}
	if _, ok := mount(s, "/usr"); !ok {
		t.Error("host root without /usr")
	}
	if m, ok := mount(s, "/tmp"); !ok || m.Type != "tmpfs" {
		t.Errorf("/tmp mount %+v", m)
	}
	if slices.Contains(s.Process.Capabilities.Bounding, "CAP_SYS_ADMIN") || len(s.Linux.MaskedPaths) == 0 {
		t.Error("a guest is privileged")
	}

	bridge := &Container{ID: "c2", Name: "chaos", Args: []string{"sh"}, Net: NetBridge, BridgeNetns: "/tmp/nn/pontoon-br-br",
		Hostname: "chaos", Privileged: true, Pontoon: "/usr/bin/pontoon", ChainEnv: env}
	s, err = bridge.Spec("/b")
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := netns(s); !ok || n.Path != "/tmp/nn/pontoon-br-br" {
		t.Errorf("bridge child network namespace %+v", n)
	}
	if s.Hooks != nil {
		t.Errorf("bridge child has hooks %+v", s.Hooks)
	}
	for _, d := range []string{"/tmp/st", "/tmp/nn", PontoonBinDir + "/pontoon"} {
		if _, ok := mount(s, d); !ok {
			t.Errorf("bridge child lacks mount %s", d)
		}
	}
	if !strings.HasPrefix(s.Process.Env[0], "PATH="+PontoonBinDir+":") || len(s.Linux.MaskedPaths) != 0 {
		t.Errorf("bridge child env %q, masked %v", s.Process.Env, s.Linux.MaskedPaths)
	}

	host := &Container{Name: "t", Args: []string{"true"}, Net: NetHost, Root: config.Root{Kind: config.RootRootfs, Path: "rootfs/x"}, ProjectDir: "/src/p"}
	s, err = host.Spec("/b")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := netns(s); ok || s.Hostname != "" {
		t.Error("host network container has a network namespace or hostname")
	}
	if s.Root.Path != "/src/p/rootfs/x" || s.Root.Readonly {
		t.Errorf("rootfs root %+v", s.Root)
	}
	if _, ok := mount(s, "/usr"); ok {
		t.Error("rootfs root mounts the host's /usr")
	}

	for _, bad := range []*Container{
		{Name: "x", Net: NetHost},
		{Name: "x", Args: []string{"a"}, Net: NetHost, Hostname: "h"},
		{Name: "x", Args: []string{"a"}, Net: NetGuest},
		{Name: "x", Args: []string{"a"}, Net: NetBridge},
		{Name: "x", Args: []string{"a"}, Net: "wifi"},
	} {
		if _, err := bad.Spec("/b"); err == nil {
			t.Errorf("Spec accepted %+v", bad)
		}
	}
}

func TestHostsFile(t *testing.T) {
	entries := []HostEntry{
		{IP: netip.MustParseAddr("172.18.0.1"), Names: []string{"n1"}},
		{IP: netip.MustParseAddr("172.18.0.2"), Names: []string{"second", "n2"}},
	}
	tests := []struct {
		self string
		want string
	}{
		{"n1", "172.18.0.1\tn1\n172.18.0.2\tsecond n2\n"},
		{"chaos", "172.18.0.1\tn1\n172.18.0.2\tsecond n2\n127.0.1.1\tchaos\n"},
		{"", "172.18.0.1\tn1\n172.18.0.2\tsecond n2\n"},
	}
	for _, tt := range tests {
		got := string(HostsFile(tt.self, entries))
		if !strings.HasPrefix(got, "# written by pontoon\n127.0.0.1\tlocalhost\n") || !strings.HasSuffix(got, tt.want) {
			t.Errorf("HostsFile(%q) =\n%s\nwant it to end with\n%s", tt.self, got, tt.want)
		}
	}
}

func TestPrefixedOutput(t *testing.T) {
	p := prefixes([]string{"n1", "chaos"})
	if p["n1"] != "n1    | " || p["chaos"] != "chaos | " {
		t.Fatalf("prefixes %q", p)
	}
	var out bytes.Buffer
	lw := &lineWriter{}
	lw.copyPrefixed(&out, strings.NewReader("a\nb\n\nlast"), "x | ")
	if got := out.String(); got != "x | a\nx | b\nx | \nx | last\n" {
		t.Fatalf("copy %q", got)
	}
	out.Reset()
	long := strings.Repeat("y", 70<<10)
	lw.copyPrefixed(&out, strings.NewReader(long+"\nz\n"), "x | ")
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "x | y") || lines[2] != "x | z" {
		t.Fatalf("overlong line split into %d lines", len(lines))
	}
}

func TestBridgeName(t *testing.T) {
	a, b := bridgeName(strings.Repeat("c", 63)), bridgeName("cluster")
	if len(a) > 63 || a == b || !strings.HasPrefix(b, "cluster-") {
		t.Fatalf("bridge names %q %q", a, b)
	}
}

// TestSweepBundles: bundle directories of dead runs go, those of live runs and whatever is
// not a run's stay.
func TestSweepBundles(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	dead, _ := netsetup.ProcessOf(cmd.Process.Pid)
	cmd.Wait()
	for name, owner := range map[string]netsetup.Process{"dead": dead, "alive": netsetup.Self()} {
		if err := os.MkdirAll(filepath.Join(dir, name, "bundle"), 0o700); err != nil {
			t.Fatal(err)
		}
		data, _ := json.Marshal(runRecord{Owner: owner})
		os.WriteFile(filepath.Join(dir, name, recordFile), data, 0o600)
	}
	os.MkdirAll(filepath.Join(dir, "unknown"), 0o700) // not a run's: left alone
	// Directories still being created, by a dead and by a live process.
	os.MkdirAll(filepath.Join(dir, fmt.Sprintf(".new-%d-%d-1", dead.PID, dead.Start)), 0o700)
	self := netsetup.Self()
	os.MkdirAll(filepath.Join(dir, fmt.Sprintf(".new-%d-%d-2", self.PID, self.Start)), 0o700)
	var rep GCReport
	if err := collectDir(dir, &rep); err != nil || len(rep.Containers) != 0 {
		t.Fatalf("collectDir = %v, %v; want no containers", rep, err)
	}
	for name, want := range map[string]bool{"dead": false, "alive": true, "unknown": true,
		fmt.Sprintf(".new-%d-%d-1", dead.PID, dead.Start): false, fmt.Sprintf(".new-%d-%d-2", self.PID, self.Start): true} {
		if _, err := os.Stat(filepath.Join(dir, name)); (err == nil) != want {
			t.Errorf("%s: exists=%v, want %v", name, err == nil, want)
		}
	}
}

// A dual-stack guest is listed under both of its addresses.
func TestHostsFileBothFamilies(t *testing.T) {
	got := string(HostsFile("n1", []HostEntry{
		{IP: netip.MustParseAddr("172.18.0.1"), Names: []string{"n1"}},
		{IP: netip.MustParseAddr("fd70:6f6e::1"), Names: []string{"n1"}},
	}))
	if !strings.HasSuffix(got, "172.18.0.1\tn1\nfd70:6f6e::1\tn1\n") {
		t.Errorf("HostsFile =\n%s\nwant both addresses of n1 listed", got)
	}
}
