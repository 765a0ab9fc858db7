package runtime

import (
	"fmt"
	"net/netip"
	"strings"
)

// HostEntry is one line of a generated /etc/hosts: an address and its names.
type HostEntry struct {
	IP    netip.Addr
	Names []string
}

// HostsFile renders /etc/hosts for a container whose own hostname is self: loopback names,
// then entries in order. When no entry names self, self maps to 127.0.1.1 (the Debian
// convention for a host without a fixed address), so the container resolves its own name.
func HostsFile(self string, entries []HostEntry) []byte {
	var b strings.Builder
	b.WriteString("# written by pontoon\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	listed := false
	for _, e := range entries {
		if len(e.Names) == 0 {
			continue
		}
		for _, n := range e.Names {
			if strings.EqualFold(n, self) {
				listed = true
			}
		}
		fmt.Fprintf(&b, "%s\t%s\n", e.IP, strings.Join(e.Names, " "))
	}
	if self != "" && !listed {
		fmt.Fprintf(&b, "127.0.1.1\t%s\n", self)
	}
	return []byte(b.String())
}
