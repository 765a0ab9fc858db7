package main

import (
	"strings"
	"testing"
)

// TestBadValuesAreUsageErrors checks values refused past the parsing of the command line
// (by the library, against the plan and the bridge's guests): they exit with the usage status
// 2 like any other mistake in the command, name what is wrong, and change nothing.
func TestBadValuesAreUsageErrors(t *testing.T) {
	c := newCLI(t)
	c.ok("gateway", "up")
	c.ok("bridge", "create", "b1")
	c.ok("guest", "add", "b1", "a", "--ip", "172.18.0.1")
	long := strings.Repeat("x", 64)
	cases := []struct {
		msg  string
		args []string
	}{
		{"is not an IPv4 address; use one of 172.18.0.1-172.18.0.253", []string{"guest", "add", "b1", "g", "--ip", "172.18.0.300"}},
		{"outside the guest range", []string{"guest", "add", "b1", "g", "--ip", "10.0.0.1"}},
		{"outside the guest range", []string{"guest", "add", "b1", "g", "--ip", "172.18.0.254"}},
		{"already used by guest \"a\"", []string{"guest", "add", "b1", "g", "--ip", "172.18.0.1"}},
		{"a guest named \"a\" already exists", []string{"guest", "add", "b1", "a", "--ip", "172.18.0.9"}},
		{"guest name \"bad/name\" is invalid", []string{"guest", "add", "b1", "bad/name", "--ip", "172.18.0.5"}},
		{"guest name \"" + long + "\" is invalid", []string{"guest", "add", "b1", long, "--ip", "172.18.0.5"}},
		{"hostname \"bad host\" is invalid", []string{"guest", "add", "b1", "g", "--ip", "172.18.0.5", "--hostname", "bad host"}},
		{`hostname "172.18.0.9" is an IP address`, []string{"guest", "add", "b1", "g", "--ip", "172.18.0.5", "--hostname", "172.18.0.9"}},
		{"\"zz\" is not an IPv6 address", []string{"guest", "add", "b1", "g", "--ip", "172.18.0.5", "--ip6", "zz"}},
		{"\"bad alias\" is invalid", []string{"guest", "add", "b1", "g", "--ip", "172.18.0.5", "--alias", "bad alias"}},
		{"bridge name \"bad/name\" is invalid", []string{"bridge", "create", "bad/name"}},
		{"has no guest \"nosuch\"", []string{"exec", "b1", "nosuch", "--", "true"}},
		{"unknown guest \"nosuch\"", []string{"partition", "isolate", "nosuch", "--bridge", "b1"}},
		{"loss 200% is out of range", []string{"partition", "loss", "200", "a", "--bridge", "b1"}},
		// A zero --count or --duration read as none and captured until Ctrl-C; a directory
		// failed late with the temporary file's rename.
		{"--count 0: give a positive number of packets", []string{"capture", "b1", "-w", "-", "--count", "0"}},
		{"--duration 0s: give a positive duration", []string{"capture", "b1", "-w", "-", "--duration", "0s"}},
		{"is a directory; give the file to write", []string{"capture", "b1", "-w", "/tmp"}},
		// A zero --for read as none, and left the change in force for good.
		{"--for: 0s is not a positive duration", []string{"partition", "isolate", "a", "--bridge", "b1", "--for", "0s"}},
		{"--for: 0s is not a positive duration", []string{"partition", "dns", "nxdomain", "--name", "a", "--bridge", "b1", "--for", "0"}},
		// Names the name server would answer for two guests, and a name that is an address.
		{`name "A" is already the name of guest "a"`, []string{"guest", "add", "b1", "A", "--ip", "172.18.0.6"}},
		{`hostname "a" is already the name of guest "a"`, []string{"guest", "add", "b1", "w", "--ip", "172.18.0.6", "--hostname", "a"}},
		{`guest name "172.18.0.7" is an IP address`, []string{"guest", "add", "b1", "172.18.0.7", "--ip", "172.18.0.7"}},
		{`guest name "w-" cannot be the guest's hostname`, []string{"guest", "add", "b1", "w-", "--ip", "172.18.0.6"}},
		{"host port 8080/tcp is forwarded twice", []string{"bridge", "create", "b2", "--port", "8080:a:80", "--port", "8080:b:81"}},
		{"pid 999999999: no such process", []string{"guest", "add", "b1", "w", "--ip", "172.18.0.6", "--pid", "999999999"}},
		{"--netns: open /nonexistent: no such file", []string{"guest", "add", "b1", "w", "--ip", "172.18.0.6", "--netns", "/nonexistent"}},
		{`from "n9": bridge "b1" has no such guest`, []string{"partition", "dns", "nxdomain", "--from", "n9", "--bridge", "b1"}},
		// --stop-timeout refuses what pontoon.toml's stop_timeout refuses: 0 read as none (the
		// default 10s), and a timeout past the key's limit passed.
		{"--stop-timeout: 11m0s is longer than the limit of 10m; give how long children get between SIGTERM and SIGKILL, more than 0s and at most 10m0s", []string{"run", "test", "--stop-timeout", "11m"}},
		{"--stop-timeout: 1000h0m0s is longer than the limit of 10m", []string{"run", "--stop-timeout", "1000h", "test"}},
		{"--stop-timeout: 0s leaves the containers no time to stop", []string{"run", "test", "--stop-timeout", "0"}},
		{"--stop-timeout: -1s leaves the containers no time to stop", []string{"run", "test", "--stop-timeout=-1s"}},
		// Both were accepted, and only the graph printed.
		{"--json and --dot each choose the whole output", []string{"partition", "status", "--bridge", "b1", "--json", "--dot"}},
		// urfave/cli's own check said only `Required flag "members" not set`, with status 1.
		{"pontoon service add needs --members, the guests that serve the service, e.g. `pontoon service add b1 s --members A,B,C`", []string{"service", "add", "b1", "s"}},
	}
	before := c.hostSnapshot() + c.ok("bridge", "list", "--json") + c.ok("partition", "status", "--bridge", "b1")
	for _, tc := range cases {
		c.fails(2, tc.msg, tc.args...)
	}
	after := c.hostSnapshot() + c.ok("bridge", "list", "--json") + c.ok("partition", "status", "--bridge", "b1")
	if before != after {
		t.Errorf("refused commands changed the host or the bridge:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if f := stateFiles(t, c.sb.Env.BridgeDataDir("b1")); len(f) > 0 {
		t.Errorf("refused commands left files in the bridge's data directory: %v", f)
	}
	// A command exec cannot start exits as a shell's would: 127 not found, 126 not runnable.
	c.fails(127, "executable file not found", "exec", "b1", "a", "--", "pontoon-no-such-command")
	c.fails(126, "permission denied", "exec", "b1", "a", "--", "/etc/passwd")
}
