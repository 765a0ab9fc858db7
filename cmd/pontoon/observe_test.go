package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/eventlog"
)

// One real status call: the counters, the matrix and the graph show what the kernel did to
// real traffic; and every change lands in the event log, with who asked, in order.
func TestStatusCountersAndLog(t *testing.T) {
	c := newCLI(t)
	c.ok("gateway", "up")
	c.ok("bridge", "create", "v")
	for i := 1; i <= 3; i++ {
		c.ok("guest", "add", "v", fmt.Sprintf("n%d", i), "--ip", fmt.Sprintf("172.18.0.%d", i))
	}
	t.Cleanup(func() { c.ok("gateway", "down", "--force") })
	// Without IPv6 the guests send nothing by themselves that the partition would stop.
	for i := 1; i <= 3; i++ {
		c.ok("exec", "v", fmt.Sprintf("n%d", i), "--", "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
	}
	c.ok("partition", "isolate", "n1", "--bridge", "v")
	// Two pings across the partition: two echo requests (84 bytes each) stopped n2->n1.
	if _, _, code := c.run("exec", "v", "n2", "--", "ping", "-c2", "-i0.2", "-W1", "172.18.0.1"); code == 0 {
		t.Fatal("n2 reached the isolated n1")
	}
	if _, _, code := c.run("exec", "v", "n2", "--", "ping", "-c1", "-W1", "172.18.0.3"); code != 0 {
		t.Fatal("n2 cannot reach n3")
	}

	out := c.ok("partition", "status", "--bridge", "v")
	for _, want := range []string{"\n1 n1  -##\n", "\n2 n2  #-.\n", "2 pkt / 168 B dropped", "none\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	var rec struct {
		Counters struct {
			Blocked []struct {
				Src, Dst string
				Dropped  struct{ Packets, Bytes uint64 }
			}
		}
	}
	if err := json.Unmarshal([]byte(c.ok("partition", "status", "--json", "--bridge", "v")), &rec); err != nil {
		t.Fatal(err)
	}
	if b := rec.Counters.Blocked; len(b) != 1 || b[0].Src != "n2" || b[0].Dst != "n1" || b[0].Dropped.Packets != 2 || b[0].Dropped.Bytes != 168 {
		t.Errorf("status --json counters: %+v, want n2->n1 dropped 2 packets, 168 bytes, and nothing else", rec.Counters)
	}
	if dot := c.ok("partition", "status", "--dot", "--bridge", "v"); !strings.HasPrefix(dot, "digraph partition {") ||
		!strings.Contains(dot, `g1 -> g2 [color=red, dir=both, label="blocked"];`) || !strings.Contains(dot, `group 2 (2 guests)\nn2 n3`) {
		t.Errorf("status --dot:\n%s", dot)
	}

	// A change from inside a bridge child, a --for that expires, a heal, followed as they come.
	follow := c.command("partition", "log", "--follow", "--json", "--bridge", "v")
	stdout, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { follow.Process.Kill(); follow.Wait() })
	child := c.command("partition", "loss", "10%", "n2")
	child.Env = append(child.Env, "PONTOON_BRIDGE=v")
	// Whatever the command leaves running must not hold the test on its output.
	child.WaitDelay = 5 * time.Second
	if out, err := child.CombinedOutput(); err != nil {
		t.Fatalf("partition loss from a bridge child: %v\n%s", err, out)
	}
	c.ok("partition", "isolate", "n3", "--for", "300ms", "--mode", "reject", "--bridge", "v")
	c.ok("partition", "heal", "--bridge", "v")

	want := []string{
		"apply|cli|isolate n1",
		"impair|child|loss 10% n2",
		"apply|cli|isolate n3 --mode reject --for 300ms",
		"expire|cli|expire isolate n3 --mode reject --for 300ms: back to isolate n1 with loss=10% guest n2",
		"heal|cli|heal",
	}
	printed := make(chan string)
	go func() {
		defer close(printed)
		for lines := bufio.NewScanner(stdout); lines.Scan(); {
			printed <- lines.Text()
		}
	}()
	var got []string
	for len(got) < len(want) {
		var line string
		select {
		case l, ok := <-printed:
			if !ok {
				t.Fatalf("log --follow ended after %q", got)
			}
			line = l
		case <-time.After(10 * time.Second):
			t.Fatalf("log --follow printed only %q within 10s; want %q", got, want)
		}
		var e eventlog.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log --follow --json printed %q: %v", line, err)
		}
		got = append(got, e.Kind+"|"+e.Source+"|"+e.What)
		if e.Kind != "heal" && e.CommitUS <= 0 {
			t.Errorf("event %+v has no commit time", e)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("log --follow:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err := follow.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- follow.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("log --follow after Ctrl-C: %v, want exit 0", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("log --follow did not stop on Ctrl-C")
	}

	text := c.ok("partition", "log", "--bridge", "v")
	if n := strings.Count(text, "\n"); n != len(want) || !strings.Contains(text, "  impair   child") || !strings.Contains(text, "isolate n3 --mode reject --for 300ms  (") {
		t.Errorf("partition log printed %d lines:\n%s", n, text)
	}
	lines := bufio.NewScanner(strings.NewReader(c.ok("partition", "log", "--json", "--bridge", "v")))
	n := 0
	for ; lines.Scan(); n++ {
		var e eventlog.Event
		if err := json.Unmarshal(lines.Bytes(), &e); err != nil || e.Kind == "" {
			t.Errorf("log --json line %q: %v", lines.Text(), err)
		}
	}
	if n != len(want) {
		t.Errorf("log --json printed %d events, want %d", n, len(want))
	}
	c.fails(1, `bridge "nope" does not exist`, "partition", "log", "--bridge", "nope")
}

// A --for whose command is killed is restored by the restorer it left behind, and the event
// log says so: the expiry is the restorer's.
func TestRestorerLogsTheExpiry(t *testing.T) {
	c := newCLI(t)
	c.ok("gateway", "up")
	c.ok("bridge", "create", "r")
	for i := 1; i <= 2; i++ {
		c.ok("guest", "add", "r", fmt.Sprintf("n%d", i), "--ip", fmt.Sprintf("172.18.0.%d", i))
	}
	t.Cleanup(func() { c.ok("gateway", "down", "--force") })
	cmd := c.command("partition", "isolate", "n1", "--for", "1s", "--bridge", "r")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The first line comes once the partition is in force and the restorer started.
	if !bufio.NewScanner(stdout).Scan() {
		t.Fatal("partition isolate --for printed nothing")
	}
	cmd.Process.Kill()
	cmd.Wait()
	if len(c.restorers()) == 0 {
		t.Fatal("no restorer of this sandbox runs after its command was killed")
	}
	dir := c.sb.Env.BridgeDataDir("r")
	var last eventlog.Event
	waitUntil(t, func() bool {
		events, err := eventlog.Read(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) > 0 {
			last = events[len(events)-1]
		}
		return last.Kind == "expire"
	})
	if last.Source != "restorer" || last.What != "expire isolate n1 --for 1s: back to fullmesh" {
		t.Errorf("expiry logged as %+v, want source restorer, what \"expire isolate n1 --for 1s: back to fullmesh\"", last)
	}
	waitUntil(t, func() bool { return len(c.restorers()) == 0 })
}
