package config

import (
	"testing"
	"time"
)

// TestInitAndStopTimeout: how a run stops is set per project file: each
// child runs under a minimal init unless it says init = false (bridge
// children too: they have a PID namespace of their own), and a command's
// stop_timeout bounds how long its containers get after the stop signal.
func TestInitAndStopTimeout(t *testing.T) {
	src := `[commands.cluster]
supervise = true
stop_timeout = "3s"
[commands.cluster.children.n1]
run = ["a"]
ip = "172.18.0.1"
init = false
[commands.cluster.children.n2]
run = ["a"]
ip = "172.18.0.2"
init = true
[commands.cluster.children.n3]
run = ["a"]
ip = "172.18.0.3"
[commands.cluster.children.chaos]
run = ["a"]
bridge = true
init = false

[commands.quick]
run = ["a"]
stop_timeout = "500ms"
[commands.slow]
run = ["a"]
stop_timeout = "10m"
[commands.plain]
run = ["a"]
[commands.bare]
run = ["a"]
init = false
`
	p, err := Parse("pontoon.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	cl, _ := p.Command("cluster")
	if cl.StopTimeout != 3*time.Second {
		t.Errorf("cluster StopTimeout = %v, want 3s", cl.StopTimeout)
	}
	wantInit := map[string]string{"n1": "false", "n2": "true", "n3": "unset", "chaos": "false"}
	for _, ch := range cl.Children {
		got := "unset"
		if ch.Init != nil {
			got = map[bool]string{true: "true", false: "false"}[*ch.Init]
		}
		if got != wantInit[ch.Name] {
			t.Errorf("child %s: Init %s, want %s", ch.Name, got, wantInit[ch.Name])
		}
	}
	// A plain command's own container has init as a child's has: on unless set off.
	if c, _ := p.Command("plain"); c.Init != nil {
		t.Errorf("plain: Init %v, want unset", *c.Init)
	}
	if c, _ := p.Command("bare"); c.Init == nil || *c.Init {
		t.Errorf("bare: Init %v, want false", c.Init)
	}
	for name, want := range map[string]time.Duration{"quick": 500 * time.Millisecond, "slow": MaxStopTimeout, "plain": DefaultStopTimeout} {
		c, _ := p.Command(name)
		if c.StopTimeout != want {
			t.Errorf("%s: StopTimeout %v, want %v", name, c.StopTimeout, want)
		}
	}
}

func TestInitAndStopTimeoutErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want []wantErr
	}{
		{"init not a boolean", `[commands.c]
supervise = true
[commands.c.children.a]
run = ["a"]
bridge = true
init = "false"
[commands.c.children.b]
run = ["a"]
ip = "172.18.0.2"
init = 0
`, []wantErr{
			{6, "commands.c.children.a.init", `"false" is a string; write init = false without quotes`},
			{10, "commands.c.children.b.init", "must be true or false, not an integer; write init = false"},
		}},
		{"init on a supervise command", "[commands.c]\nsupervise = true\ninit = false\n[commands.c.children.a]\nrun = [\"a\"]\nbridge = true\n", []wantErr{
			{3, "commands.c.init", "init is set on each child of a supervise command; write it in [commands.c.children.NAME]"},
		}},
		{"stop_timeout on a child or in settings", `[settings]
stop_timeout = "3s"
[commands.c]
supervise = true
[commands.c.children.x]
run = ["a"]
bridge = true
stop_timeout = "3s"
`, []wantErr{
			{2, "settings.stop_timeout", "[settings] holds only runtime and ipv4_only; set stop_timeout on each command instead"},
			{8, "commands.c.children.x.stop_timeout", "stop_timeout applies to all children of a run; set it in [commands.c]"},
		}},
		{"typo and other tools' names", "[commands.c]\nrun = [\"a\"]\nstop_timout = \"1s\"\nstop_grace_period = \"1s\"\n", []wantErr{
			{3, "commands.c.stop_timout", `unknown key; did you mean "stop_timeout"?`},
			{4, "commands.c.stop_grace_period", `unknown key; did you mean "stop_timeout"?`},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse("pontoon.toml", []byte(tc.src))
			if p != nil {
				t.Fatalf("Parse accepted it: %+v", p)
			}
			wantErrors(t, err, tc.want)
		})
	}
}

func TestStopTimeoutValues(t *testing.T) {
	for value, msg := range map[string]string{
		`10`:      `10 has no unit; write stop_timeout = "10s"`,
		`"10"`:    `"10" has no unit; write stop_timeout = "10s"`,
		`"soon"`:  `"soon" is not a duration; write a number with a unit, e.g. stop_timeout = "3s"`,
		`"0s"`:    `"0s" leaves the containers no time to stop; give more than zero, e.g. stop_timeout = "3s"`,
		`"-1s"`:   `"-1s" leaves the containers no time to stop`,
		`"1h"`:    `"1h" is longer than the limit of 10m; write at most stop_timeout = "10m"`,
		`"10m1s"`: `is longer than the limit of 10m`,
		`true`:    `must be a duration string, not a boolean; write stop_timeout = "3s"`,
	} {
		_, err := Parse("pontoon.toml", []byte("[commands.a]\nrun = [\"a\"]\nstop_timeout = "+value+"\n"))
		wantErrors(t, err, []wantErr{{3, "commands.a.stop_timeout", msg}})
	}
}
