package kernel

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// doomedGroup is the link group DelLinks gathers links in, one no link has by default (0).
const doomedGroup = 0x706f6e74

// DelLinks deletes the links with these indexes in one request: a link's delete waits for
// an RCU grace period (tens of ms on a busy host), and the delete of a group of links for
// one. The links are put in a group of their own first, which no other link of the
// namespace is in. A link that is gone already is passed over.
func (n *NS) DelLinks(indexes []int) error {
	if len(indexes) == 0 {
		return nil
	}
	for _, i := range indexes {
		req := nl.NewNetlinkRequest(unix.RTM_SETLINK, unix.NLM_F_ACK)
		msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
		msg.Index = int32(i)
		req.AddData(msg)
		req.AddData(nl.NewRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(doomedGroup)))
		if _, err := n.Execute(req, 0); err != nil && !errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("gather link %d to delete in %s: %w", i, n.path, err)
		}
	}
	req := nl.NewNetlinkRequest(unix.RTM_DELLINK, unix.NLM_F_ACK)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(doomedGroup)))
	if _, err := n.Execute(req, 0); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete %d links in %s: %w", len(indexes), n.path, err)
	}
	return nil
}
