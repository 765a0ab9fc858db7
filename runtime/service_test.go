package runtime_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestRunService runs a command with a service over two servers: the client finds the
// service's name in /etc/hosts, and its fetches through the service address reach both.
func TestRunService(t *testing.T) {
	r := newRunner(t)
	p := project(t, `
[commands.cluster]
supervise = true

[commands.cluster.children.n1]
`+server+`
ip = "172.18.0.1"

[commands.cluster.children.n2]
`+server+`
ip = "172.18.0.2"

[commands.cluster.children.c]
ip = "172.18.0.3"
run = { shell = "grep -w kv /etc/hosts; get() { timeout 1 busybox wget -q -O - http://kv:7000/; }; until get; do sleep 0.1; done; for i in 1 2 3 4; do get; done" }

[commands.cluster.services.kv]
members = ["n1", "n2"]
ports = ["7000"]
`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if code := r.run(ctx, p, "cluster", r.options()); code != 0 {
		t.Fatalf("status %d, want the client's 0\n%s\n%s", code, r.out.String(), r.log.String())
	}
	out := r.out.String()
	for _, want := range []string{`c +\| 172\.18\.1\.1\s+kv`, `c +\| n1\n`, `c +\| n2\n`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("the client's output lacks %q:\n%s", want, out)
		}
	}
	if log := r.log.String(); !strings.Contains(log, "service kv at 172.18.1.1") {
		t.Errorf("pontoon's log does not show the service:\n%s", log)
	}
	r.clean()
}
