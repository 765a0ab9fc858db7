package hooks_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/pontoon-dev/pontoon/hooks"
	"github.com/pontoon-dev/pontoon/hooks/hooktest"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
	"github.com/pontoon-dev/pontoon/partition"
)

// TestDocker: a real dockerd runs containers through pontoon's runtime, registered by
// InstallDocker. Two containers on one bridge reach each other; the same address on another
// bridge does not interfere; bad settings make `docker run` fail with pontoon's line and leave
// nothing behind; `docker rm -f` leaves nothing attached; a container without pontoon
// settings gets its config.json as Docker wrote it.
func TestDocker(t *testing.T) {
	s := hooktest.Chain(t)
	d := startDockerd(t, s)
	for _, b := range []string{"pa", "pb"} {
		if _, err := netsetup.CreateBridge(s.Env, b, netsetup.BridgeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	servers := map[string]string{}
	for _, c := range []struct{ bridge, text string }{{"pa", "pong-a"}, {"pb", "pong-c"}} {
		out, err := d.run(append([]string{"-d"}, dockerEnv(c.bridge, "server", "172.18.0.1")...), serve(c.text)...)
		if err != nil {
			t.Fatalf("start server on %s: %v\n%s", c.bridge, err, out)
		}
		servers[c.bridge] = strings.TrimSpace(out)
	}
	for _, c := range []struct{ bridge, want string }{{"pa", "pong-a"}, {"pb", "pong-c"}} {
		out, err := d.run(append([]string{"--rm"}, dockerEnv(c.bridge, "client", "172.18.0.2")...), fetch("172.18.0.1")...)
		if err != nil || strings.TrimSpace(out) != c.want {
			t.Fatalf("client on %s got %q (%v), want %q", c.bridge, out, err, c.want)
		}
	}
	out, err := d.run(append([]string{"--rm"}, dockerEnv("pa", "pinger", "172.18.0.3")...), "ping", "-c", "1", "-W", "5", "172.18.0.1")
	if err != nil || !strings.Contains(out, "1 packets received") {
		t.Fatalf("ping from pa/pinger to pa/server: %v\n%s", err, out)
	}
	// The clients ran with --rm: poststop detached them.
	if got, _ := hooktest.Attached(s.Env); strings.Join(got, " ") != "pa/server pb/server" {
		t.Fatalf("attached after the clients exited: %v", got)
	}

	t.Run("restart", func(t *testing.T) {
		// A restarted container has a new process and namespace: the runtime prepares the new
		// bundle, and the hook attaches it again in place of the stale one.
		if out, err := d.docker("restart", "-t", "0", servers["pa"]); err != nil {
			t.Fatalf("docker restart: %v\n%s", err, out)
		}
		out, err := d.run(append([]string{"--rm"}, dockerEnv("pa", "client", "172.18.0.2")...), fetch("172.18.0.1")...)
		if err != nil || strings.TrimSpace(out) != "pong-a" {
			t.Fatalf("client on pa got %q (%v) from the restarted server, want \"pong-a\"", out, err)
		}
		if got, _ := hooktest.Attached(s.Env); strings.Join(got, " ") != "pa/server pb/server" {
			t.Fatalf("attached after the restart: %v", got)
		}
	})

	t.Run("files", func(t *testing.T) {
		out, err := d.run(append([]string{"--rm", "--hostname", "box"}, dockerEnv("pa", "files", "172.18.0.4")...), "cat", "/etc/hosts", "/etc/resolv.conf")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		want, err := netsetup.GuestResolvConf(s.Env)
		if err != nil {
			t.Fatal(err)
		}
		// Both of the guest's addresses, as `pontoon run` lists them for its children.
		lines := "172.18.0.4\tbox files\nfd70:6f6e::4\tbox files\n"
		if !strings.Contains(out, lines) || !strings.HasSuffix(out, string(want)) {
			t.Fatalf("the container's /etc/hosts and /etc/resolv.conf are not pontoon's; want the lines\n%sand then\n%s\ngot\n%s", lines, want, out)
		}
		// What the user gave Docker for these files stays: a resolv.conf of their own, and
		// --add-host lines beside the guest's.
		mine := filepath.Join(t.TempDir(), "myresolv")
		if err := os.WriteFile(mine, []byte("nameserver 192.0.2.53\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err = d.run(append([]string{"--rm", "-v", mine + ":/etc/resolv.conf:ro", "--add-host", "extra.example:10.1.2.3"},
			dockerEnv("pa", "own", "172.18.0.4")...), "cat", "/etc/hosts", "/etc/resolv.conf")
		if err != nil || !strings.Contains(out, "nameserver 192.0.2.53") || strings.Contains(out, string(want)) ||
			!strings.Contains(out, "10.1.2.3\textra.example") || !hasHostsLine(out, "172.18.0.4", "own") {
			t.Fatalf("a container with its own resolv.conf and an --add-host (%v): want both kept beside the guest's line; got\n%s", err, out)
		}
		// PONTOON_HOSTNAME is the container's hostname, as --hostname would make it.
		out, err = d.run(append([]string{"--rm"}, dockerEnv("pa", "named", "172.18.0.4", "PONTOON_HOSTNAME=dbhost")...), "sh", "-c", "hostname; cat /etc/hostname")
		if err != nil || out != "dbhost\ndbhost\n" {
			t.Fatalf("hostname and /etc/hostname of a container with PONTOON_HOSTNAME=dbhost: %q (%v)", out, err)
		}
		// The IPv6 line names the address the container has.
		out, err = d.run(append([]string{"--rm"}, dockerEnv("pa", "files6", "172.18.0.4", "PONTOON_IP6=fd70:6f6e::4:1")...), "sh", "-c", "cat /etc/hosts; ip -6 -o addr show dev eth0 scope global")
		if err != nil || !hasHostsLine(out, "fd70:6f6e::4:1", "files6") || !strings.Contains(out, "inet6 fd70:6f6e::4:1/64") {
			t.Fatalf("a container with PONTOON_IP6=fd70:6f6e::4:1 (%v): want a hosts line for fd70:6f6e::4:1 and files6, and the address on eth0; got\n%s", err, out)
		}
	})

	t.Run("bad settings", func(t *testing.T) {
		before, _ := d.docker("ps", "-aq")
		portsBefore := map[string][]string{"pa": bridgePorts(t, s.Env, "pa"), "pb": bridgePorts(t, s.Env, "pb")}
		for _, c := range []struct {
			env  []string
			want string
		}{
			{dockerEnv("pa", "client", "172.18.0.300"), `PONTOON_IP="172.18.0.300" is not an IPv4 address`},
			{dockerEnv("pa", "bad/name", "172.18.0.5"), `PONTOON_GUEST="bad/name" is invalid`},
			{[]string{"-e", "PONTOON_BRIDGE=pa", "-e", "PONTOON_IP=172.18.0.5"}, "PONTOON_GUEST is missing; add -e PONTOON_GUEST=NAME"},
			{dockerEnv("pa", "client", "172.18.0.1"), "PONTOON_IP: address 172.18.0.1 is already used"},
			{dockerEnv("nosuch", "client", "172.18.0.5"), `bridge "nosuch"`},
			// Settings without the bridge: refused, not run without the network they ask for.
			{[]string{"-e", "PONTOON_GUEST=x9", "-e", "PONTOON_IP=172.18.0.17"}, "PONTOON_BRIDGE is missing; add -e PONTOON_BRIDGE=NAME (a bridge shown by `pontoon bridge list`), or remove PONTOON_GUEST, PONTOON_IP to run the container without pontoon's network"},
			{[]string{"-e", "PONTOON_IP=172.18.0.17"}, "PONTOON_BRIDGE is missing; add -e PONTOON_BRIDGE=NAME"},
			{[]string{"-e", "PONTOON_GUEST=x9", "-e", "PONTOON_IP6=fd70:6f6e::17"}, "PONTOON_BRIDGE is missing; add -e PONTOON_BRIDGE=NAME"},
			{[]string{"-e", "PONTOON_ALIASES=db"}, "PONTOON_BRIDGE is missing; add -e PONTOON_BRIDGE=NAME"},
			// A misspelled setting was dropped in silence.
			{dockerEnv("pa", "client", "172.18.0.5", "PONTOON_ALIAS=db"), "PONTOON_ALIAS is not one pontoon reads; did you mean PONTOON_ALIASES?"},
		} {
			out, err := d.run(append([]string{"--rm"}, c.env...), "true")
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 125 || !strings.Contains(out, c.want) {
				t.Errorf("docker run with %v: %v, want exit status 125 and an error with %q\n%s", c.env, err, c.want, out)
			}
		}
		if got, _ := hooktest.Attached(s.Env); strings.Join(got, " ") != "pa/server pb/server" {
			t.Errorf("attached after refused containers: %v", got)
		}
		if after, _ := d.docker("ps", "-aq"); after != before {
			t.Errorf("containers before the refused runs:\n%safter:\n%s", before, after)
		}
		// A refused container adds no port: the ports are those there were before, less
		// those of earlier containers whose namespaces the kernel has destroyed meanwhile.
		for _, b := range []string{"pa", "pb"} {
			for _, p := range bridgePorts(t, s.Env, b) {
				if !slices.Contains(portsBefore[b], p) {
					t.Errorf("bridge %s has a new port %s after refused containers (before: %v)", b, p, portsBefore[b])
				}
			}
		}
	})

	t.Run("untouched", func(t *testing.T) {
		// PONTOON_* variables that are no settings (a bridge child's chain locations) do not
		// make a container pontoon's.
		out, err := d.docker("run", "-d", "--runtime", "pontoon", "--network", "none", "-e", "PONTOON_STATE_DIR=/x", "-e", "PONTOON_DEBUG=x", dockerImage, "sleep", "600")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		id := strings.TrimSpace(out)
		data, err := os.ReadFile(d.bundle(id))
		if err != nil {
			t.Fatal(err)
		}
		var spec specs.Spec
		if err := json.Unmarshal(data, &spec); err != nil {
			t.Fatal(err)
		}
		if spec.Hooks == nil || len(spec.Hooks.CreateRuntime) != 0 || len(spec.Hooks.Poststop) != 0 || len(spec.Hooks.Prestart) != 1 {
			t.Errorf("hooks of a container without PONTOON_BRIDGE: %+v, want Docker's prestart hook alone", spec.Hooks)
		}
		for _, m := range spec.Mounts {
			if strings.HasPrefix(m.Destination, "/etc/") && !strings.HasPrefix(m.Source, d.dir+"/data/containers/"+id+"/") {
				t.Errorf("mount %s comes from %s, not from Docker", m.Destination, m.Source)
			}
		}
		if out, err := d.docker("rm", "-f", id); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	})

	netns := []string{d.netnsOf(servers["pa"]), d.netnsOf(servers["pb"])}
	if out, err := d.docker("rm", "-f", servers["pa"], servers["pb"]); err != nil {
		t.Fatalf("docker rm -f: %v\n%s", err, out)
	}
	if got, _ := hooktest.Attached(s.Env); len(got) != 0 {
		t.Fatalf("attached after docker rm -f: %v", got)
	}
	for _, b := range []string{"pa", "pb"} {
		if ports := waitPorts(t, s.Env, b, 0); len(ports) != 0 {
			t.Errorf("ports of bridge %s after docker rm -f: %v", b, ports)
		}
	}
	for _, ns := range netns {
		if held := netnsHeld(ns, d.dir, s.Env.NetnsDir); len(held) > 0 {
			t.Errorf("a removed server's network namespace %s is still held by %v", ns, held)
		}
	}
}

// TestDockerCompose runs examples/compose with Debian's docker-compose against a private
// dockerd: three services on one bridge reach each other by their fixed addresses, a
// partition from package partition (what `pontoon partition isolate db` applies) cuts db off
// and heal brings it back, and `docker-compose down` leaves nothing attached.
func TestDockerCompose(t *testing.T) {
	compose := hooktest.NeedCommand(t, "docker-compose", "docker-compose")
	s := hooktest.Chain(t)
	d := startDockerd(t, s)
	if _, err := netsetup.CreateBridge(s.Env, "compose", netsetup.BridgeOptions{}); err != nil {
		t.Fatal(err)
	}
	file, err := filepath.Abs("../examples/compose/docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		cmd := exec.Command(compose, append([]string{"-f", file, "-p", "pontoontest"}, args...)...)
		cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+d.sock, "IMAGE="+dockerImage)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		if out, err := run("down", "--timeout", "1"); err != nil {
			t.Errorf("docker-compose down: %v\n%s", err, out)
		}
	})
	if out, err := run("up", "-d"); err != nil {
		t.Fatalf("docker-compose up: %v\n%s", err, out)
	}
	// get fetches http://ip/ from service web; wait lets the servers start first.
	get := func(ip string, wait bool) (string, error) {
		// As the example's README has it. (busybox's wget -T crashes; timeout bounds it.)
		args := []string{"exec", "-T", "web", "timeout", "2", "wget", "-q", "-O-", "http://" + ip + "/"}
		if wait {
			args = []string{"exec", "-T", "web", "sh", "-c", fmt.Sprintf("for i in $(seq 100); do wget -q -O- http://%s/ 2>/dev/null && exit 0; sleep 0.1; done; exit 1", ip)}
		}
		out, err := run(args...)
		return strings.TrimSpace(out), err
	}
	for ip, want := range map[string]string{"172.18.0.10": "db", "172.18.0.11": "api"} {
		if got, err := get(ip, true); err != nil || got != want {
			logs, _ := run("logs")
			t.Fatalf("web fetched %q (%v) from %s, want %q\n%s", got, err, ip, want, logs)
		}
	}
	if got, _ := hooktest.Attached(s.Env); len(got) != 3 {
		t.Fatalf("attached: %v, want the three services", got)
	}

	target, err := partition.ForBridge(s.Env, "compose")
	if err != nil {
		t.Fatal(err)
	}
	p, err := partition.Isolate(target.Guests, "db")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := partition.Update(target, func(st partition.State) (partition.State, error) { st.Partition = p; return st, nil }); err != nil {
		t.Fatal(err)
	}
	if got, err := get("172.18.0.10", false); err == nil {
		t.Fatalf("web reached the isolated db: %q", got)
	}
	if got, err := get("172.18.0.11", false); err != nil || got != "api" {
		t.Fatalf("web fetched %q (%v) from api while db was isolated, want \"api\"", got, err)
	}
	if err := partition.Heal(target); err != nil {
		t.Fatal(err)
	}
	if got, err := get("172.18.0.10", false); err != nil || got != "db" {
		t.Fatalf("web fetched %q (%v) from db after heal, want \"db\"", got, err)
	}

	if out, err := run("down", "--timeout", "1"); err != nil {
		t.Fatalf("docker-compose down: %v\n%s", err, out)
	}
	if got, _ := hooktest.Attached(s.Env); len(got) != 0 {
		t.Fatalf("attached after docker-compose down: %v", got)
	}
}

// TestPrepareBundle: a bundle asking by annotations (as Docker >= 24 passes --annotation)
// gets pontoon's hooks after the engine's, pontoon's files over the engine's mounts, and
// keeps every field pontoon does not know; preparing it again adds nothing.
func TestPrepareBundle(t *testing.T) {
	s := hooktest.Chain(t)
	dir := t.TempDir()
	// The engine's hosts file, as Docker keeps it: containers/ID/hosts, with an --add-host.
	engineHosts := filepath.Join(t.TempDir(), "containers", filepath.Base(dir), "hosts")
	if err := os.MkdirAll(filepath.Dir(engineHosts), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(engineHosts, []byte("127.0.0.1\tlocalhost\n10.1.2.3\textra.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	config := `{"ociVersion":"1.0.2","hostname":"box","annotations":{"pontoon.bridge":"dev","pontoon.guest":"web","pontoon.ip":"172.18.0.7","other":"x"},` +
		`"hooks":{"prestart":[{"path":"/proc/1/exe","args":["libnetwork-setkey"]}],"poststop":[{"path":"/bin/engine"}]},` +
		`"mounts":[{"destination":"/etc/hosts","type":"bind","source":"` + engineHosts + `","options":["rbind","rprivate"]}],"x-future":{"a":[1,2]}}`
	path := filepath.Join(dir, "config.json")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if asks, err := hooks.PrepareBundle(dir, "/usr/bin/pontoon", s.Env); !asks || err != nil {
			t.Fatalf("PrepareBundle = %v, %v", asks, err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		specs.Spec
		Future json.RawMessage `json:"x-future"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	hookArgs := func(stage string) []string { return append([]string{"pontoon"}, hooks.Args(stage, s.Env)...) }
	h := got.Hooks
	if len(h.Prestart) != 1 || len(h.CreateRuntime) != 1 || len(h.Poststop) != 2 || h.Poststop[0].Path != "/bin/engine" ||
		h.CreateRuntime[0].Path != "/usr/bin/pontoon" || strings.Join(h.CreateRuntime[0].Args, " ") != strings.Join(hookArgs(hooks.StageCreateRuntime), " ") ||
		strings.Join(h.Poststop[1].Args, " ") != strings.Join(hookArgs(hooks.StagePoststop), " ") {
		t.Errorf("hooks after PrepareBundle twice: %+v", h)
	}
	if got.Annotations["other"] != "x" || string(got.Future) != `{"a":[1,2]}` || got.Hostname != "box" {
		t.Errorf("fields pontoon does not own changed:\n%s", data)
	}
	mounts := map[string]string{}
	for _, m := range got.Mounts {
		mounts[m.Destination] = m.Source
	}
	if len(got.Mounts) != 2 || mounts["/etc/hosts"] != filepath.Join(dir, "pontoon-hosts") || mounts["/etc/resolv.conf"] != filepath.Join(dir, "pontoon-resolv.conf") {
		t.Errorf("mounts: %+v", got.Mounts)
	}
	if hosts, _ := os.ReadFile(filepath.Join(dir, "pontoon-hosts")); string(hosts) != "127.0.0.1\tlocalhost\n10.1.2.3\textra.example\n172.18.0.7\tbox web\nfd70:6f6e::7\tbox web\n" {
		t.Errorf("pontoon-hosts, the engine's with the guest's lines:\n%s", hosts)
	}
	want, err := netsetup.GuestResolvConf(s.Env)
	if err != nil {
		t.Fatal(err)
	}
	if resolv, _ := os.ReadFile(filepath.Join(dir, "pontoon-resolv.conf")); string(resolv) != string(want) {
		t.Errorf("pontoon-resolv.conf:\n%s\nwant\n%s", resolv, want)
	}
}

// TestPrepareBundleLeavesUserFiles: a hosts file or resolv.conf the user mounted (docker run
// -v x:/etc/hosts) stays the container's; pontoon's took its place before.
func TestPrepareBundleLeavesUserFiles(t *testing.T) {
	s := hooktest.Chain(t)
	dir := t.TempDir()
	config := `{"ociVersion":"1.0.2","annotations":{"pontoon.bridge":"dev","pontoon.guest":"web","pontoon.ip":"172.18.0.7"},` +
		`"mounts":[{"destination":"/etc/hosts","type":"bind","source":"/home/u/myhosts","options":["rbind","ro"]},` +
		`{"destination":"/etc/resolv.conf","type":"bind","source":"/home/u/myresolv","options":["rbind","ro"]}]}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	if asks, err := hooks.PrepareBundle(dir, "/usr/bin/pontoon", s.Env); !asks || err != nil {
		t.Fatalf("PrepareBundle = %v, %v", asks, err)
	}
	var got specs.Spec
	data, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Mounts) != 2 || got.Mounts[0].Source != "/home/u/myhosts" || got.Mounts[1].Source != "/home/u/myresolv" {
		t.Errorf("the user's mounts became %+v", got.Mounts)
	}
	if len(got.Hooks.CreateRuntime) != 1 {
		t.Errorf("the container is not attached: hooks %+v", got.Hooks)
	}
}

// TestPrepareBundleHosts: the /etc/hosts the runtime wrapper writes lists the guest's IPv6
// address beside its IPv4 one, as `pontoon run` writes it for its children: the one given
// (pontoon.ip6), else the one derived from the IPv4 address; on an IPv4-only chain only the
// IPv4 one.
func TestPrepareBundleHosts(t *testing.T) {
	dual := hooktest.Chain(t)
	v4 := sandbox.ForTest(t, "")
	if _, err := netsetup.GatewayUp(v4.Env, netsetup.GatewayOptions{IPv4Only: true}); err != nil {
		t.Fatal(err)
	}
	const head = "# written by pontoon\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	for _, c := range []struct {
		name string
		env  netsetup.Env
		ann  string
		want string
	}{
		{"derived", dual.Env, `"pontoon.ip":"172.18.0.42"`, "172.18.0.42\tbox web db\nfd70:6f6e::42\tbox web db\n"},
		{"given", dual.Env, `"pontoon.ip":"172.18.0.42","pontoon.ip6":"fd70:6f6e::beef"`, "172.18.0.42\tbox web db\nfd70:6f6e::beef\tbox web db\n"},
		{"IPv4 only", v4.Env, `"pontoon.ip":"172.18.0.42"`, "172.18.0.42\tbox web db\n"},
	} {
		dir := t.TempDir()
		config := `{"ociVersion":"1.0.2","hostname":"box","annotations":{"pontoon.bridge":"dev","pontoon.guest":"web","pontoon.aliases":"db",` + c.ann + `}}`
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		if asks, err := hooks.PrepareBundle(dir, "/usr/bin/pontoon", c.env); !asks || err != nil {
			t.Fatalf("%s: PrepareBundle = %v, %v", c.name, asks, err)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "pontoon-hosts")); string(got) != head+c.want {
			t.Errorf("%s: pontoon-hosts:\n%s\nwant:\n%s%s", c.name, got, head, c.want)
		}
	}
}
