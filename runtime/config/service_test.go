package config

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/netsetup"
)

func TestServices(t *testing.T) {
	p := mustParse(t, scheduleCluster+`[commands.c.services.kv]
members = ["n1", "n2", "n3"]
ports = ["7000", "7001/udp"]
mode = "random"
skip_unreachable = true
[commands.c.services.web]
members = ["n1"]
ip = "172.18.1.9"
ipv4_only = true
[commands.c.services.all]
members = ["n2"]
`)
	cmd, err := p.Command("c")
	if err != nil {
		t.Fatal(err)
	}
	want := []Service{
		{Name: "kv", Members: []string{"n1", "n2", "n3"}, Ports: []string{"7000", "7001/udp"}, Mode: "random", SkipUnreachable: true},
		{Name: "web", Members: []string{"n1"}, IP: netip.MustParseAddr("172.18.1.9"), IPv4Only: true},
		{Name: "all", Members: []string{"n2"}},
	}
	if !reflect.DeepEqual(cmd.Services, want) {
		t.Errorf("services:\n got %+v\nwant %+v", cmd.Services, want)
	}
	// Written addresses are kept; the others take the lowest free ones in file order.
	got := ServiceAddrs(cmd.Services, netsetup.DefaultPlan())
	if got[0].String() != "172.18.1.1" || got[1].String() != "172.18.1.9" || got[2].String() != "172.18.1.2" {
		t.Errorf("service addresses %v", got)
	}
}

func TestServiceErrors(t *testing.T) {
	_, err := Parse("pontoon.toml", []byte(scheduleCluster+`[commands.c.services.kv]
members = ["n1", "n9", "n1"]
ports = ["7000", "http", 7]
mode = "fastest"
ip = "172.18.0.5"
[commands.c.services.n2]
members = ["n1"]
[commands.c.services.empty]
ports = ["80"]
`))
	wantErrors(t, err, []wantErr{
		{16, "commands.c.services.kv.members", `"n9" is not a guest of this command`},
		{16, "commands.c.services.kv.members", `"n1" is named twice`},
		{17, "commands.c.services.kv.ports", "each value must be a string"},
		{17, "commands.c.services.kv.ports", `port "http" is not a port`},
		{18, "commands.c.services.kv.mode", `"fastest" is not a balancing mode`},
		{19, "commands.c.services.kv.ip", "is not a service address; use one of 172.18.1.1-172.18.1.254"},
		{20, "commands.c.services.n2", "already the name of a guest"},
		{22, "commands.c.services.empty", "has no members"},
	})
}

// TestServiceErrorsAsAddServiceRefuses refuses in the file what adding the service to the
// bridge would refuse when the run starts (where it would only be logged): a guest's hostname
// or alias as its name, no members, a port given twice.
func TestServiceErrorsAsAddServiceRefuses(t *testing.T) {
	_, err := Parse("pontoon.toml", []byte(strings.Replace(scheduleCluster, `ip = "172.18.0.3"
`, `ip = "172.18.0.3"
hostname = "n3-host"
aliases = ["monkey"]
`, 1)+`[commands.c.services.kv]
members = []
ports = ["7000", "7000/tcp"]
[commands.c.services.monkey]
members = ["n1"]
[commands.c.services.n3-host]
members = ["n1"]
`))
	wantErrors(t, err, []wantErr{
		{18, "commands.c.services.kv.members", "no members"},
		{19, "commands.c.services.kv.ports", `7000/tcp is given twice`},
		{20, "commands.c.services.monkey", `"monkey" is already a name of guest "n3"`},
		{22, "commands.c.services.n3-host", `"n3-host" is already a name of guest "n3"`},
	})
}
