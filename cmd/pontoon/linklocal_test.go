package main

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/netsetup"
)

// TestLinkLocalIsCovered: what a guest sends to another's IPv6 link-local address is judged
// as what it sends to its global one. A pair's loss let it through, and reject mode dropped
// it without a word, as neither rule knew the link-local address.
func TestLinkLocalIsCovered(t *testing.T) {
	c := newCLI(t)
	c.bridgeOf("b1", "n1", "n2", "n3")
	ll := func(ip string) string {
		return netsetup.LinkLocal6(netsetup.GuestMAC(netip.MustParseAddr(ip))).String() + "%eth0"
	}
	ping := func(from, to string) (string, bool) {
		out, errOut, code := c.run("exec", "b1", from, "--", "ping", "-6", "-c", "1", "-W", "1", to)
		return out + errOut, code == 0
	}
	if out, ok := ping("n1", ll("172.18.0.3")); !ok {
		t.Fatalf("n1 does not reach n3's link-local address before any fault:\n%s", out)
	}
	c.ok("partition", "loss", "100", "n1", "--", "n3", "--bridge", "b1")
	if out, ok := ping("n1", ll("172.18.0.3")); ok {
		t.Errorf("n1 reaches n3's link-local address through a 100%% loss between them:\n%s", out)
	}
	if out, ok := ping("n1", ll("172.18.0.2")); !ok {
		t.Errorf("n1 does not reach n2's link-local address, which no fault names:\n%s", out)
	}
	c.ok("partition", "heal", "--bridge", "b1")
	c.ok("partition", "isolate", "n1", "--mode", "reject", "--bridge", "b1")
	if out, _ := ping("n1", ll("172.18.0.3")); !strings.Contains(out, "nreachable") {
		t.Errorf("n1 pinging n3's link-local address across a reject partition was not told it is unreachable:\n%s", out)
	}
	if _, errOut, code := c.run("partition", "status", "--check", "--bridge", "b1"); code != 0 {
		t.Errorf("status --check: exit %d\n%s", code, errOut)
	}
}
