package nftwire

import (
	"encoding/binary"

	mnl "github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The kernel counts every transaction committed in a namespace, whoever commits it (`nft` by
// hand included), and stamps the count's low 16 bits on every message of its answers to a
// listing (nfgenmsg.res_id): a count unchanged since a commit means that nothing of the
// namespace's rules has changed since. The wire keeps the last one it read, so knowing it
// costs no request of its own.

// SeenGen returns the low 16 bits of the namespace's nftables generation as the kernel's
// last answer to a listing on c carried it, and false when no answer since ForgetGen did.
func (c *Conn) SeenGen() (uint16, bool) { return c.w.gen, c.w.genSeen }

// ForgetGen forgets the generation seen so far, so that SeenGen tells one seen after.
func (c *Conn) ForgetGen() { c.w.genSeen = false }

// noteGen keeps the generation an answer of the nftables subsystem carries.
func (w *wire) noteGen(m mnl.Message) {
	if int(m.Header.Type)>>8 == unix.NFNL_SUBSYS_NFTABLES && len(m.Data) >= 4 {
		w.gen, w.genSeen = binary.BigEndian.Uint16(m.Data[2:4]), true
	}
}
