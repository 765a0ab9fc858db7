package names_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/eventlog"
	"github.com/pontoon-dev/pontoon/names"
	"github.com/pontoon-dev/pontoon/testenv"
)

// A test's DNS faults are in the bridge's event log as testenv's: added, removed, and
// cleared by Heal.
func TestTestenvDNSFaultsAreLogged(t *testing.T) {
	env := testenv.New(t)
	env.Guest("n1", "172.18.0.1")
	env.Guest("n2", "172.18.0.2")
	f := env.DNSFault(names.Fault{Kind: names.ServFail, Names: []string{"DB."}, From: []string{"n2"}})
	env.RemoveDNSFault(f.ID)
	env.DNSFault(names.Fault{Kind: names.NXDomain})
	env.Heal()

	events, err := eventlog.Read(env.Target().StateDir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events {
		if e.Kind == names.EventDNS {
			got = append(got, e.Source+": "+e.What)
		}
	}
	want := []string{
		"testenv: dns servfail --name db --from n2",
		"testenv: dns remove servfail --name db --from n2",
		"testenv: dns nxdomain",
		"testenv: dns clear",
	}
	if !slices.Equal(got, want) {
		t.Errorf("DNS events in the log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
