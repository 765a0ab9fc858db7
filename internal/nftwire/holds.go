package nftwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"

	"github.com/google/nftables"
	mnl "github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// ErrNoSet is Holds' answer for a set that does not exist.
var ErrNoSet = errors.New("no such set")

// holdsSeq numbers Holds' lookups, apart from the library's own sequence numbers.
var holdsSeq atomic.Uint32

func init() { holdsSeq.Store(1 << 31) }

// Holds reports whether the set of table (in family) holds key. It looks the one key up
// (NFT_MSG_GETSETELEM without a dump, as `nft get element` does): its cost does not grow with
// the set, and elements the packet path adds or removes meanwhile cannot hide it, as they can
// from a dump that spans datagrams.
func (c *Conn) Holds(family nftables.TableFamily, table, set string, key []byte) (bool, error) {
	ae := mnl.NewAttributeEncoder()
	ae.String(unix.NFTA_SET_ELEM_LIST_TABLE, table)
	ae.String(unix.NFTA_SET_ELEM_LIST_SET, set)
	ae.Nested(unix.NFTA_SET_ELEM_LIST_ELEMENTS, func(ae *mnl.AttributeEncoder) error {
		ae.Nested(unix.NFTA_LIST_ELEM, func(ae *mnl.AttributeEncoder) error {
			ae.Nested(unix.NFTA_SET_ELEM_KEY, func(ae *mnl.AttributeEncoder) error {
				ae.Bytes(unix.NFTA_DATA_VALUE, key)
				return nil
			})
			return nil
		})
		return nil
	})
	attrs, err := ae.Encode()
	if err != nil {
		return false, err
	}
	msg := mnl.Message{
		Header: mnl.Header{Type: mnl.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETSETELEM), Flags: mnl.Request,
			Sequence: holdsSeq.Add(1)},
		Data: append([]byte{byte(family), unix.NFNETLINK_V0, 0, 0}, attrs...),
	}
	answers, err := c.w.request([]mnl.Message{msg})
	if err != nil {
		return false, fmt.Errorf("look up an element of set %s: %w", set, err)
	}
	if len(answers) == 0 {
		return false, fmt.Errorf("look up an element of set %s: no answer", set)
	}
	m := answers[0]
	if m.Header.Type != mnl.Error {
		return true, nil // the element
	}
	errno := syscall.Errno(-int32(binary.NativeEndian.Uint32(m.Data)))
	if errno != unix.ENOENT {
		return false, fmt.Errorf("look up an element of set %s: %w", set, errno)
	}
	// The element is missing, or the set (or table) is: only the set's own lookup tells.
	if _, err := c.GetSetByName(&nftables.Table{Name: table, Family: family}, set); err != nil {
		return false, fmt.Errorf("set %s of table %s: %w", set, table, ErrNoSet)
	}
	return false, nil
}
