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

// Lookup is one key of one set, for Holds.
type Lookup struct {
	Set string
	Key []byte
}

// holdsSeq numbers Holds' messages; seq keeps them apart from the library's own numbers.
var holdsSeq atomic.Uint32

func seq() uint32 { return 1<<31 | holdsSeq.Add(1) }

// Holds reports for each lookup whether its set, of table in family, holds its key, in one
// exchange with the kernel. It looks each key up (NFT_MSG_GETSETELEM without a dump, as `nft
// get element` does): the cost does not grow with the set, and elements the packet path adds
// or removes meanwhile cannot hide the key, as they can from a dump that spans datagrams. The
// kernel answers ENOENT for a missing set as for a missing element, so each set is looked up
// too (NFT_MSG_GETSET) in the same exchange; a set that does not exist is ErrNoSet.
func (c *Conn) Holds(family nftables.TableFamily, table string, lookups ...Lookup) ([]bool, error) {
	var req []mnl.Message
	for _, l := range lookups {
		elem, err := holdsMessage(unix.NFT_MSG_GETSETELEM, family, func(ae *mnl.AttributeEncoder) {
			ae.String(unix.NFTA_SET_ELEM_LIST_TABLE, table)
			ae.String(unix.NFTA_SET_ELEM_LIST_SET, l.Set)
			ae.Nested(unix.NFTA_SET_ELEM_LIST_ELEMENTS, func(ae *mnl.AttributeEncoder) error {
				ae.Nested(unix.NFTA_LIST_ELEM, func(ae *mnl.AttributeEncoder) error {
					ae.Nested(unix.NFTA_SET_ELEM_KEY, func(ae *mnl.AttributeEncoder) error {
						ae.Bytes(unix.NFTA_DATA_VALUE, l.Key)
						return nil
					})
					return nil
				})
				return nil
			})
		})
		if err != nil {
			return nil, err
		}
		set, err := holdsMessage(unix.NFT_MSG_GETSET, family, func(ae *mnl.AttributeEncoder) {
			ae.String(unix.NFTA_SET_TABLE, table)
			ae.String(unix.NFTA_SET_NAME, l.Set)
		})
		if err != nil {
			return nil, err
		}
		req = append(req, elem, set)
	}
	answers, err := c.w.lookups(req)
	if err != nil {
		return nil, fmt.Errorf("look up set elements: %w", err)
	}
	held := make([]bool, len(lookups))
	for i, l := range lookups {
		if errno := answerErrno(answers[2*i+1]); errno != 0 {
			return nil, fmt.Errorf("set %s of table %s: %w (%w)", l.Set, table, ErrNoSet, errno)
		}
		switch errno := answerErrno(answers[2*i]); errno {
		case 0:
			held[i] = true
		case unix.ENOENT:
		default:
			return nil, fmt.Errorf("look up an element of set %s: %w", l.Set, errno)
		}
	}
	return held, nil
}

// holdsMessage is a lookup request of type typ (no acknowledgement: the answer, or an error,
// comes either way).
func holdsMessage(typ int, family nftables.TableFamily, attrs func(*mnl.AttributeEncoder)) (mnl.Message, error) {
	ae := mnl.NewAttributeEncoder()
	attrs(ae)
	b, err := ae.Encode()
	if err != nil {
		return mnl.Message{}, err
	}
	return mnl.Message{
		Header: mnl.Header{Type: mnl.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | typ), Flags: mnl.Request, Sequence: seq()},
		Data:   append([]byte{byte(family), unix.NFNETLINK_V0, 0, 0}, b...),
	}, nil
}

// answerErrno is the error an answer carries, 0 for one that is not an error.
func answerErrno(m mnl.Message) syscall.Errno {
	if m.Header.Type != mnl.Error || len(m.Data) < 4 {
		return 0
	}
	return syscall.Errno(-int32(binary.NativeEndian.Uint32(m.Data)))
}
