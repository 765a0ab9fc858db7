package names

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
)

// The name server reads one kind of message, a query with one question, and writes four:
// an error code, an answer with the guest's addresses, an empty answer and an upstream's
// reply passed through. Those few are read and written here in the wire format of RFC 1035,
// rather than with a DNS library: the pontoon binary, which every command and every hook
// starts, then links no TLS or certificate code, whose start-up each of them would pay.

const headerLen = 12

// Header flags and codes.
const (
	flagQR = 1 << 15 // a response
	flagAA = 1 << 10 // authoritative
	flagRD = 1 << 8  // recursion desired
	flagRA = 1 << 7  // recursion available
	flagCD = 1 << 4  // checking disabled

	opcodeQuery = 0

	rcodeFormErr  = 1
	rcodeServFail = 2
	rcodeNXDomain = 3
	rcodeNotImp   = 4

	typeA     = 1
	typeAAAA  = 28
	typeANY   = 255
	classINET = 1
)

// query is a parsed query: its header fields and its first question.
type query struct {
	id       uint16
	flags    uint16
	qdcount  uint16
	name     string // the question's name as asked, with its final dot
	qtype    uint16
	qclass   uint16
	question []byte // the question as received (name, type and class), copied into replies
}

func (q query) opcode() int { return int(q.flags>>11) & 0xf }

var errNoQuery = errors.New("not a DNS query")

// parseQuery reads a query. errNoQuery means the message deserves no reply (too short for a
// header, or a response); with any other error the header was read and the question was not.
func parseQuery(m []byte) (query, error) {
	if len(m) < headerLen {
		return query{}, errNoQuery
	}
	q := query{id: binary.BigEndian.Uint16(m), flags: binary.BigEndian.Uint16(m[2:]), qdcount: binary.BigEndian.Uint16(m[4:])}
	if q.flags&flagQR != 0 {
		return query{}, errNoQuery
	}
	if q.qdcount == 0 {
		return q, nil
	}
	var name strings.Builder
	off := headerLen
	for {
		if off >= len(m) {
			return q, errors.New("question name runs past the message")
		}
		n := int(m[off])
		off++
		if n == 0 {
			break
		}
		// A compression pointer cannot point back into a first question; other label types
		// are obsolete.
		if n&0xc0 != 0 || off+n > len(m) || name.Len()+n+1 > 255 {
			return q, errors.New("malformed question name")
		}
		name.Write(m[off : off+n])
		name.WriteByte('.')
		off += n
	}
	if name.Len() == 0 {
		name.WriteByte('.')
	}
	if off+4 > len(m) {
		return q, errors.New("question without type and class")
	}
	q.name = name.String()
	q.qtype = binary.BigEndian.Uint16(m[off:])
	q.qclass = binary.BigEndian.Uint16(m[off+2:])
	q.question = m[headerLen : off+4]
	return q, nil
}

// reply is the header and question of a reply to q with rcode and the extra flags, followed
// by an A record for ip and an AAAA record for ip6 where valid (ttl 0: guests come and go).
func (q query) reply(rcode int, flags uint16, ip, ip6 netip.Addr) []byte {
	m := make([]byte, headerLen, headerLen+len(q.question)+2*(12+16))
	f := flagQR | flags | uint16(q.opcode())<<11 | uint16(rcode)
	if q.opcode() == opcodeQuery {
		f |= q.flags & (flagRD | flagCD)
	}
	binary.BigEndian.PutUint16(m, q.id)
	binary.BigEndian.PutUint16(m[2:], f)
	if q.question != nil {
		binary.BigEndian.PutUint16(m[4:], 1)
		m = append(m, q.question...)
	}
	var an uint16
	for _, a := range []netip.Addr{ip, ip6} {
		if !a.IsValid() {
			continue
		}
		typ := uint16(typeA)
		if a.Is6() {
			typ = typeAAAA
		}
		raw := a.AsSlice()
		// The name is a pointer to the question's, right after the header.
		m = binary.BigEndian.AppendUint16(m, 0xc000|headerLen)
		m = binary.BigEndian.AppendUint16(m, typ)
		m = binary.BigEndian.AppendUint16(m, classINET)
		m = binary.BigEndian.AppendUint32(m, 0)
		m = binary.BigEndian.AppendUint16(m, uint16(len(raw)))
		m = append(m, raw...)
		an++
	}
	binary.BigEndian.PutUint16(m[6:], an)
	return m
}

// errorReply answers q with rcode alone.
func (q query) errorReply(rcode int) []byte { return q.reply(rcode, 0, netip.Addr{}, netip.Addr{}) }

// addressReply answers q for a name that has ip and, on a dual-stack chain, ip6: an A record
// for A and ANY, an AAAA record for AAAA and ANY when there is ip6, nothing (but no error)
// for every other type, so resolvers do not wait.
func (q query) addressReply(ip, ip6 netip.Addr) []byte {
	var a, a6 netip.Addr
	if q.qclass == classINET && (q.qtype == typeA || q.qtype == typeANY) {
		a = ip.Unmap()
	}
	if q.qclass == classINET && ip6.IsValid() && (q.qtype == typeAAAA || q.qtype == typeANY) {
		a6 = ip6
	}
	return q.reply(0, flagAA|flagRA, a, a6)
}

// checkReply checks that m is a reply to a query with id, as an upstream must send.
func checkReply(m []byte, id uint16) error {
	if len(m) < headerLen || binary.BigEndian.Uint16(m[2:])&flagQR == 0 {
		return errors.New("upstream sent no DNS reply")
	}
	if binary.BigEndian.Uint16(m) != id {
		return errors.New("upstream's reply answers another query")
	}
	return nil
}
