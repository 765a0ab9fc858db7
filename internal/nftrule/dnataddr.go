package nftrule

import (
	"net/netip"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// DNATAddr rewrites the destination address to to and keeps the port: one rule hands a
// whole address over to another host.
func DNATAddr(to netip.Addr) Match {
	a := to.As4()
	return Match{
		Text: "dnat to " + to.String(),
		Exprs: []expr.Any{
			immediate(1, a[:]),
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1},
		},
	}
}
