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
		{"\"zz\" is not an IPv6 address", []string{"guest", "add", "b1", "g", "--ip", "172.18.0.5", "--ip6", "zz"}},
		{"\"bad alias\" is invalid", []string{"guest", "add", "b1", "g", "--ip", "172.18.0.5", "--alias", "bad alias"}},
		{"bridge name \"bad/name\" is invalid", []string{"bridge", "create", "bad/name"}},
		{"has no guest \"nosuch\"", []string{"exec", "b1", "nosuch", "--", "true"}},
		{"unknown guest \"nosuch\"", []string{"partition", "isolate", "nosuch", "--bridge", "b1"}},
		{"loss 200% is out of range", []string{"partition", "loss", "200", "a", "--bridge", "b1"}},
	}
	before := c.hostSnapshot() + c.ok("bridge", "list", "--json") + c.ok("partition", "status", "--bridge", "b1")
	for _, tc := range cases {
		c.fails(2, tc.msg, tc.args...)
	}
	after := c.hostSnapshot() + c.ok("bridge", "list", "--json") + c.ok("partition", "status", "--bridge", "b1")
	if before != after {
		t.Errorf("refused commands changed the host or the bridge:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
