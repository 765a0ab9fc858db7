package config

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/netsetup"
)

const clusterSrc = `[commands.test]
description = "unit tests"
run = ["go", "test", "./..."]

[commands.cluster]
description = "three kv nodes"
supervise = true
[commands.cluster.children.n1]
description = "first node"
run = ["kvnode", "--id", "1"]
ip = "172.18.0.1"
[commands.cluster.children.n2]
run = ["kvnode", "--id", "2"]
ip = "172.18.0.2"
[commands.cluster.children.n3]
run = ["kvnode", "--id", "3"]
ip = "172.18.0.3"
[commands.cluster.children.chaos]
run = ["sh", "-c", "sleep 1; pontoon partition isolate n1"]
bridge = true
`

func mustParse(t *testing.T, src string) *Project {
	t.Helper()
	p, err := Parse("pontoon.toml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

func childNames(cs []Child) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func TestSelectChildren(t *testing.T) {
	p := mustParse(t, clusterSrc)
	cluster, err := p.Command("cluster")
	if err != nil {
		t.Fatal(err)
	}
	test, _ := p.Command("test")
	for _, tc := range []struct {
		name          string
		cmd           *Command
		only, exclude []string
		want          []string
		err           string
	}{
		{name: "all", cmd: cluster, want: []string{"n1", "n2", "n3", "chaos"}},
		{name: "only keeps file order", cmd: cluster, only: []string{"chaos", "n1", "n1"}, want: []string{"n1", "chaos"}},
		{name: "exclude", cmd: cluster, exclude: []string{"chaos"}, want: []string{"n1", "n2", "n3"}},
		{name: "only and exclude", cmd: cluster, only: []string{"n1", "n2"}, exclude: []string{"n2"}, want: []string{"n1"}},
		{name: "unknown names", cmd: cluster, only: []string{"n4"}, exclude: []string{"choas"},
			err: `select children: --only: command "cluster" has no child "n4"; did you mean "n1"? (children: n1, n2, n3, chaos); ` +
				`--exclude: command "cluster" has no child "choas"; did you mean "chaos"? (children: n1, n2, n3, chaos)`},
		{name: "nothing left", cmd: cluster, only: []string{"n1"}, exclude: []string{"n1"},
			err: `select children: --only n1 --exclude n1 leaves no child of command "cluster" to run (children: n1, n2, n3, chaos)`},
		// Only the flags given: an empty --only was printed as "--only  --exclude ...".
		{name: "everything excluded", cmd: cluster, exclude: []string{"n1", "n2", "n3", "chaos"},
			err: `select children: --exclude n1,n2,n3,chaos leaves no child of command "cluster" to run (children: n1, n2, n3, chaos)`},
		{name: "plain command without lists", cmd: test},
		{name: "plain command with lists", cmd: test, only: []string{"x"},
			err: `command "test" has no children: --only and --exclude apply to supervise commands`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.cmd.SelectChildren(tc.only, tc.exclude)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err:\n got %v\nwant %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if names := childNames(got); !reflect.DeepEqual(names, tc.want) {
				t.Errorf("children = %v, want %v", names, tc.want)
			}
		})
	}
}

func TestCommandLookup(t *testing.T) {
	p := mustParse(t, clusterSrc)
	if c, err := p.Command("test"); err != nil || c.Name != "test" || c != &p.Commands[0] {
		t.Errorf("Command(test) = %v, %v", c, err)
	}
	_, err := p.Command("tset")
	want := `no command "tset" in pontoon.toml; did you mean "test"? (commands: test, cluster)`
	if err == nil || err.Error() != want {
		t.Errorf("err:\n got %v\nwant %s", err, want)
	}
}

func TestList(t *testing.T) {
	got := mustParse(t, clusterSrc).List()
	want := []Summary{
		{Name: "test", Description: "unit tests"},
		{Name: "cluster", Description: "three kv nodes", Supervise: true, Children: []Summary{
			{Name: "n1", Description: "first node"}, {Name: "n2"}, {Name: "n3"}, {Name: "chaos"},
		}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("List:\n got %+v\nwant %+v", got, want)
	}
}

func TestRunArgs(t *testing.T) {
	argv := []string{"go", "test"}
	r := Run{Argv: argv}
	got := r.Args()
	got[0] = "changed"
	if argv[0] != "go" {
		t.Errorf("Args shares the Argv array")
	}
	if got := (Run{Shell: "a | b"}).Args(); !reflect.DeepEqual(got, []string{"/bin/sh", "-c", "a | b"}) {
		t.Errorf("shell Args = %q", got)
	}
	if got := (netsetup.Port{HostPort: 8080, GuestPort: 80, Proto: netsetup.UDP}).String(); got != "8080:80/udp" {
		t.Errorf("Port.String = %q", got)
	}
}

func TestGuestRange(t *testing.T) {
	for _, tc := range []struct {
		net                 string
		first, last, bridge string
		err                 string
	}{
		{net: "172.18.0.0/24", first: "172.18.0.1", last: "172.18.0.253", bridge: "172.18.0.254"},
		{net: "172.18.0.77/24", first: "172.18.0.1", last: "172.18.0.253", bridge: "172.18.0.254"},
		{net: "10.1.0.0/16", first: "10.1.0.1", last: "10.1.255.253", bridge: "10.1.255.254"},
		{net: "192.168.5.8/30", first: "192.168.5.9", last: "192.168.5.9", bridge: "192.168.5.10"},
		{net: "10.0.0.0/31", err: "too small"},
		{net: "fd00::/64", err: "want an IPv4 prefix"},
		{net: "", err: "want an IPv4 prefix"},
	} {
		var n netip.Prefix
		if tc.net != "" {
			n = netip.MustParsePrefix(tc.net)
		}
		first, last, err := GuestRange(n)
		bridge, berr := BridgeAddr(n)
		if tc.err != "" {
			if err == nil || berr == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("GuestRange(%q) err = %v, BridgeAddr err = %v; want %q", tc.net, err, berr, tc.err)
			}
			continue
		}
		if err != nil || berr != nil || first.String() != tc.first || last.String() != tc.last || bridge.String() != tc.bridge {
			t.Errorf("GuestRange(%q) = %v-%v, %v, bridge %v, %v; want %s-%s bridge %s",
				tc.net, first, last, err, bridge, berr, tc.first, tc.last, tc.bridge)
		}
	}
}

func TestParseRuntime(t *testing.T) {
	for _, ok := range []string{"runc", "crun", "containerd"} {
		if r, err := ParseRuntime(ok); err != nil || string(r) != ok {
			t.Errorf("ParseRuntime(%q) = %q, %v", ok, r, err)
		}
	}
	if _, err := ParseRuntime("docker"); err == nil || !strings.Contains(err.Error(), `"docker"`) || !strings.Contains(err.Error(), "runc, crun, containerd") {
		t.Errorf("ParseRuntime(docker) error %v, want it to name the value and the choices", err)
	}
}

// TestGuestForwards: a guest's ports are written without a guest; its bridge forwards them
// to the guest by name, and the guest's own list is left as written.
func TestGuestForwards(t *testing.T) {
	p := mustParse(t, "[commands.web]\nrun = [\"a\"]\nnetwork = \"guest\"\nip = \"172.18.0.5\"\nports = [\"8080:80\", \"5353:53/udp\"]\n")
	g := p.Commands[0].Guest
	var got []string
	for _, f := range g.Forwards("web") {
		got = append(got, f.String())
	}
	if want := []string{"8080:web:80/tcp", "5353:web:53/udp"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Forwards = %q, want %q", got, want)
	}
	if g.Ports[0].Guest != "" || g.Ports[0].String() != "8080:80/tcp" {
		t.Errorf("Forwards changed the guest's own ports: %+v", g.Ports)
	}
}
