package config

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/partition"
	"github.com/pontoon-dev/pontoon/schedule"
)

const scheduleCluster = `[commands.c]
supervise = true
[commands.c.children.n1]
run = ["a"]
ip = "172.18.0.1"
[commands.c.children.n2]
run = ["a"]
ip = "172.18.0.2"
[commands.c.children.n3]
run = ["a"]
ip = "172.18.0.3"
[commands.c.children.chaos]
run = ["a"]
bridge = true
`

// TestScheduleForms reads every form of schedule the schema documents.
func TestScheduleForms(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      schedule.Spec
	}{
		{"steps", `[commands.c.schedule]
start = "1s"
seed = 7
steps = [
  { partition = "isolate n1", mode = "reject", for = "2s" },
  { impair = "loss=30% n2", for = "1s" },
  { heal = true, for = "500ms" },
  { partition = "disjoint n1 n2 -- n3", impair = "delay=10ms n3", for = "1s" },
  { dns = "servfail --name db --from n2", for = "1s" },
]
`, schedule.Spec{Start: time.Second, Seed: 7, Steps: []schedule.Step{
			{Fault: schedule.Fault{Partition: "isolate n1", Mode: partition.ModeReject}, For: 2 * time.Second},
			{Fault: schedule.Fault{Impair: "loss=30% n2"}, For: time.Second},
			{Fault: schedule.Fault{}, For: 500 * time.Millisecond},
			{Fault: schedule.Fault{Partition: "disjoint n1 n2 -- n3", Impair: "delay=10ms n3"}, For: time.Second},
			{Fault: schedule.Fault{DNS: "servfail --name db --from n2"}, For: time.Second},
		}}},
		{"nemesis", `[commands.c.schedule]
seed = 42
[commands.c.schedule.nemesis]
faults = [{ partition = "random-halves" }, { partition = "isolate n2" }, { impair = "loss=20% n3" }]
fault = "5s"
recovery = "3s"
duration = "1m"
healed = "10s"
`, schedule.Spec{Seed: 42, Nemesis: &schedule.Nemesis{
			Faults: []schedule.Fault{{Partition: "random-halves"}, {Partition: "isolate n2"}, {Impair: "loss=20% n3"}},
			Fault:  5 * time.Second, Recovery: 3 * time.Second, Duration: time.Minute, Healed: 10 * time.Second,
		}}},
		{"flap", `[commands.c.schedule.flap]
partition = "isolate n3"
on = "2s"
off = "1s"
count = 4
`, schedule.Spec{Flap: &schedule.Flap{Fault: schedule.Fault{Partition: "isolate n3"}, On: 2 * time.Second, Off: time.Second, Count: 4}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustParse(t, scheduleCluster+tc.src)
			got := p.Commands[0].Schedule
			if got == nil || !reflect.DeepEqual(*got, tc.want) {
				t.Fatalf("schedule %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestScheduleErrors checks that a bad schedule is reported at its key and line, with a fix.
func TestScheduleErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []wantErr
	}{
		{"no form", "[commands.c.schedule]\nstart = \"1s\"\n",
			[]wantErr{{15, "commands.c.schedule", "exactly one of steps, nemesis and flap"}}},
		{"unknown guest", "[commands.c.schedule]\nsteps = [\n  { partition = \"isolate n1\", for = \"1s\" },\n  { partition = \"isolate n9\", for = \"1s\" },\n]\n",
			[]wantErr{{18, "commands.c.schedule.steps[2].partition", `unknown guest "n9"`}}},
		{"unknown key in a step", "[commands.c.schedule]\nsteps = [\n  { partition = \"isolate n1\", duration = \"1s\" },\n]\n",
			[]wantErr{{17, "commands.c.schedule.steps[1].duration", `did you mean "for"?`}}},
		{"duration without unit", "[commands.c.schedule]\nsteps = [{ partition = \"isolate n1\", for = \"5\" }]\n",
			[]wantErr{{16, "commands.c.schedule.steps[1].for", `write for = "5s"`}}},
		{"missing for", "[commands.c.schedule]\nsteps = [{ impair = \"loss=10% n2\" }]\n",
			[]wantErr{{16, "commands.c.schedule.steps[1].for", "not a positive duration"}}},
		{"bad impairment", "[commands.c.schedule.flap]\nimpair = \"loss=300% n2\"\non = \"1s\"\noff = \"1s\"\ncount = 2\n",
			[]wantErr{{16, "commands.c.schedule.flap.impair", "loss"}}},
		{"bad mode", "[commands.c.schedule.flap]\npartition = \"isolate n2\"\nmode = \"nice\"\non = \"1s\"\noff = \"1s\"\ncount = 2\n",
			[]wantErr{{17, "commands.c.schedule.flap.mode", `"nice" is not a mode`}}},
		{"count as a string", "[commands.c.schedule.flap]\npartition = \"isolate n2\"\non = \"1s\"\noff = \"1s\"\ncount = \"2\"\n",
			[]wantErr{{19, "commands.c.schedule.flap.count", "without quotes"}}},
		{"heal with a fault", "[commands.c.schedule]\nsteps = [{ heal = true, partition = \"isolate n1\", for = \"1s\" }]\n",
			[]wantErr{{16, "commands.c.schedule.steps[1].heal", "either heals or puts a fault in force"}}},
		{"step without a fault", "[commands.c.schedule]\nsteps = [{ for = \"1s\" }]\n",
			[]wantErr{{16, "commands.c.schedule.steps[1]", "names no fault; give partition, impair or dns, or heal = true"}}},
		{"nemesis too short", "[commands.c.schedule.nemesis]\nfaults = [{ partition = \"isolate n1\" }]\nfault = \"5s\"\nduration = \"10s\"\nhealed = \"8s\"\n",
			[]wantErr{{18, "commands.c.schedule.nemesis.duration", "make it at least 13s"}}},
		{"nemesis fault guest", "[commands.c.schedule.nemesis]\nfaults = [\n  { partition = \"isolate n1\" },\n  { impair = \"loss=5% chaos\" },\n]\nfault = \"5s\"\nduration = \"1m\"\n",
			[]wantErr{{18, "commands.c.schedule.nemesis.faults[2].impair", `unknown guest "chaos"`}}},
		{"bad dns fault", "[commands.c.schedule]\nsteps = [{ dns = \"wrong 10.9.9 --name db\", for = \"1s\" }]\n",
			[]wantErr{{16, "commands.c.schedule.steps[1].dns", "not an IPv4 address"}}},
		{"several mistakes", "[commands.c.schedule]\nsteps = [\n  { partition = \"isolate n9\", for = \"1s\" },\n  { impair = \"loss=300% n2\" },\n  { partition = \"islate n1\", for = \"1s\" },\n]\n",
			[]wantErr{{17, "commands.c.schedule.steps[1].partition", `unknown guest "n9"`},
				{18, "commands.c.schedule.steps[2].for", "not a positive duration"},
				{18, "commands.c.schedule.steps[2].impair", "loss"},
				{19, "commands.c.schedule.steps[3].partition", `"islate" is not a partition kind`}}},
		{"unknown schedule key", "[commands.c.schedule]\nrandom = 1\n",
			[]wantErr{{16, "commands.c.schedule.random", `did you mean "nemesis"?`}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("pontoon.toml", []byte(scheduleCluster+tc.src))
			wantErrors(t, err, tc.want)
		})
	}
	// A mistyped ip leaves n1 out of the guests: the schedule naming n1 is not also called
	// wrong (nor the command guestless), while its own mistakes still are.
	typo := strings.Replace(scheduleCluster, "ip = \"172.18.0.1\"", "ipp = \"172.18.0.1\"", 1)
	flap := "[commands.c.schedule.flap]\npartition = \"isolate n1\"\non = \"1s\"\noff = \"1s\"\ncount = %d\n"
	_, err := Parse("pontoon.toml", []byte(typo+fmt.Sprintf(flap, 1)))
	wantErrors(t, err, []wantErr{{3, "commands.c.children.n1", "needs ip"}, {5, "commands.c.children.n1.ipp", `did you mean "ip"?`}})
	_, err = Parse("pontoon.toml", []byte(typo+fmt.Sprintf(flap, 0)))
	wantErrors(t, err, []wantErr{{3, "commands.c.children.n1", "needs ip"}, {5, "commands.c.children.n1.ipp", `did you mean "ip"?`},
		{19, "commands.c.schedule.flap.count", "give how many times"}})
	// A command without guests has nothing to schedule faults on.
	_, err = Parse("pontoon.toml", []byte("[commands.t]\nrun = [\"make\"]\n[commands.t.schedule.flap]\npartition = \"isolate n1\"\non = \"1s\"\noff = \"1s\"\ncount = 1\n"))
	wantErrors(t, err, []wantErr{{3, "commands.t.schedule", "this command has none"}})
}

// TestREADMESchedules parses each form of schedule the README shows, as a project file would
// hold it.
func TestREADMESchedules(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "```toml\n[commands.cluster.schedule]\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("README has no schedule example starting with [commands.cluster.schedule]")
	}
	steps, rest, _ := strings.Cut(block, "\n[commands.cluster.schedule.nemesis]")
	nemesis, flap, _ := strings.Cut(rest, "\n[commands.cluster.schedule.flap]")
	cluster := strings.ReplaceAll(scheduleCluster, "commands.c", "commands.cluster")
	for name, form := range map[string]string{
		"steps":   "[commands.cluster.schedule]\n" + steps,
		"nemesis": "[commands.cluster.schedule.nemesis]" + nemesis,
		"flap":    "[commands.cluster.schedule.flap]" + flap,
	} {
		p, err := Parse("pontoon.toml", []byte(cluster+form))
		if err != nil {
			t.Errorf("README's %s schedule: %v\n%s", name, err, form)
			continue
		}
		s := p.Commands[0].Schedule
		if s == nil || (name == "steps") != (len(s.Steps) > 0) || (name == "nemesis") != (s.Nemesis != nil) || (name == "flap") != (s.Flap != nil) {
			t.Errorf("README's %s schedule reads as %+v", name, s)
		}
	}
}

// TestNames checks where a command's guests find each other's names: /etc/hosts unless
// written otherwise, the name server when the schedule has DNS faults (which /etc/hosts
// would hide), and that names = "hosts" beside DNS faults, a bad value or names on a
// command without guests are refused at the key.
func TestNames(t *testing.T) {
	dnsStep := "[commands.c.schedule]\nsteps = [{ dns = \"servfail --name n3 --from n2\", for = \"1s\" }]\n"
	partitionStep := "[commands.c.schedule]\nsteps = [{ partition = \"isolate n1\", for = \"1s\" }]\n"
	for _, tc := range []struct {
		name, names, schedule string
		want                  Names
	}{
		{"default", "", "", NamesHosts},
		{"written", "names = \"dns\"\n", "", NamesDNS},
		{"schedule without DNS faults", "", partitionStep, NamesHosts},
		{"schedule with DNS faults", "", dnsStep, NamesDNS},
		{"written beside DNS faults", "names = \"dns\"\n", dnsStep, NamesDNS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(scheduleCluster, "supervise = true\n", "supervise = true\n"+tc.names, 1) + tc.schedule
			if got := mustParse(t, src).Commands[0].Names; got != tc.want {
				t.Errorf("names %q, want %q", got, tc.want)
			}
		})
	}
	hosts := strings.Replace(scheduleCluster, "supervise = true\n", "supervise = true\nnames = \"hosts\"\n", 1)
	_, err := Parse("pontoon.toml", []byte(hosts+dnsStep))
	wantErrors(t, err, []wantErr{{3, "commands.c.names", `write names = "dns"`}})
	bad := strings.Replace(scheduleCluster, "supervise = true\n", "supervise = true\nnames = \"mdns\"\n", 1)
	_, err = Parse("pontoon.toml", []byte(bad))
	wantErrors(t, err, []wantErr{{3, "commands.c.names", `"dns"`}})
	_, err = Parse("pontoon.toml", []byte("[commands.t]\nrun = [\"make\"]\nnames = \"dns\"\n"))
	wantErrors(t, err, []wantErr{{3, "commands.t.names", `add network = "guest"`}})
	// A plain guest is named by itself alone; names is allowed and changes nothing.
	p := mustParse(t, "[commands.t]\nrun = [\"make\"]\nnetwork = \"guest\"\nip = \"172.18.0.9\"\nnames = \"dns\"\n")
	if p.Commands[0].Names != NamesDNS {
		t.Errorf("plain guest's names %q, want dns", p.Commands[0].Names)
	}
}
