package names

import (
	"net/netip"
	"strings"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup"
	"golang.org/x/net/dns/dnsmessage"
)

const (
	headerLen = 12
	// classicUDPSize is the most a UDP answer may carry for a query without EDNS (RFC 1035
	// section 4.2.1).
	classicUDPSize = 512
	// ednsUDPSize is the payload size the server offers and the most it sends over UDP even
	// to a client that offers more: the size DNS software agreed on to stay clear of IP
	// fragmentation (DNS flag day 2020).
	ednsUDPSize = 1232
	// rcodeBadVers is the extended RCODE for an EDNS version the server does not speak
	// (RFC 6891 section 6.1.3).
	rcodeBadVers dnsmessage.RCode = 16
)

// query is what the server needs of a parsed query.
type query struct {
	hdr      dnsmessage.Header
	question dnsmessage.Question
	// questions is the number of questions; question is the first.
	questions int
	// edns: the query had an OPT record; size is the payload size it offered, dnssecOK its
	// DO bit, version its EDNS version.
	edns     bool
	size     int
	dnssecOK bool
	version  uint8
}

// parseQuery reads a query message; ok is false for a message that is not one at all
// (shorter than a header, or a response), which gets no answer: answering it could make
// the server a reflector or start a loop with another server. err is set for a message
// whose header is fine but the rest is not.
func parseQuery(msg []byte) (q query, ok bool, err error) {
	var p dnsmessage.Parser
	if len(msg) < headerLen {
		return q, false, nil
	}
	if q.hdr, err = p.Start(msg); err != nil {
		return q, false, nil
	}
	if q.hdr.Response {
		return q, false, nil
	}
	for {
		qu, err := p.Question()
		if err == dnsmessage.ErrSectionDone {
			break
		}
		if err != nil {
			return q, true, err
		}
		if q.questions == 0 {
			q.question = qu
		}
		q.questions++
	}
	if err := p.SkipAllAnswers(); err != nil {
		return q, true, err
	}
	if err := p.SkipAllAuthorities(); err != nil {
		return q, true, err
	}
	for {
		h, err := p.AdditionalHeader()
		if err == dnsmessage.ErrSectionDone {
			break
		}
		if err != nil {
			return q, true, err
		}
		if h.Type == dnsmessage.TypeOPT {
			if q.edns {
				return q, true, errTwoOPT
			}
			q.edns, q.size, q.dnssecOK, q.version = true, int(h.Class), h.DNSSECAllowed(), uint8(h.TTL>>16)
		}
		if err := p.SkipAdditional(); err != nil {
			return q, true, err
		}
	}
	return q, true, nil
}

type parseError string

func (e parseError) Error() string { return string(e) }

// errTwoOPT: a query may carry one OPT record only (RFC 6891 section 6.1.1).
const errTwoOPT = parseError("more than one OPT record")

// udpLimit is the size of the largest answer that may go back over UDP to q's asker.
func (q *query) udpLimit() int {
	if !q.edns {
		return classicUDPSize
	}
	return min(max(q.size, classicUDPSize), ednsUDPSize)
}

// respond answers one message from a guest at from, received over proto ("udp" or "tcp"):
// the faults in force first, then the bridge's names, then the upstream resolvers. nil
// means no answer at all.
func (s *Server) respond(msg []byte, from netip.Addr, proto string) []byte {
	q, ok, err := parseQuery(msg)
	if !ok {
		return nil
	}
	out := s.answer(&q, err, msg, from, proto)
	if proto == "udp" && out != nil {
		out = truncate(out, q.udpLimit())
	}
	return out
}

// refusal is the answer to a query the server does not answer, or nil for one it does;
// parseErr is parseQuery's.
func (q *query) refusal(parseErr error) []byte {
	switch {
	case parseErr != nil:
		// The question may be what could not be read: the answer has none.
		return q.reply(dnsmessage.RCodeFormatError, replyBare)
	case q.hdr.OpCode != 0:
		return q.reply(dnsmessage.RCodeNotImplemented, 0)
	case q.questions != 1:
		// A query asks exactly one question (RFC 9619).
		return q.reply(dnsmessage.RCodeFormatError, replyBare)
	case q.edns && q.version != 0:
		return q.reply(rcodeBadVers, replyBare)
	}
	return nil
}

func (s *Server) answer(q *query, parseErr error, msg []byte, from netip.Addr, proto string) []byte {
	if out := q.refusal(parseErr); out != nil {
		return out
	}
	name := normalize(q.question.Name.String())
	b, err := s.currentBridge()
	if err != nil {
		return q.reply(dnsmessage.RCodeServerFailure, 0)
	}
	asker := ""
	if g := guestByRef(b, from.Unmap().String()); g != nil {
		asker = g.Name
	}
	if f := match(s.currentFaults(), name, asker, time.Now()); f != nil {
		switch f.Kind {
		case Drop:
			return nil
		case NXDomain:
			return q.reply(dnsmessage.RCodeNameError, 0)
		case ServFail:
			return q.reply(dnsmessage.RCodeServerFailure, 0)
		case Wrong:
			return q.addressAnswer(f.Addr, netip.Addr{})
		case Delay:
			t := time.NewTimer(f.Delay)
			select {
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
				return nil
			}
		}
	}
	if ip, ip6, ok := lookup(b, name); ok {
		return q.addressAnswer(ip, ip6)
	}
	return s.forward(q, msg, proto)
}

// What a reply carries besides its RCODE.
const (
	replyAuthoritative = 1 << iota // the name is the bridge's: AA and RA set
	replyBare                      // no question section
)

// reply builds an answer to q without records.
func (q *query) reply(rcode dnsmessage.RCode, flags int) []byte {
	return q.build(rcode, flags, netip.Addr{}, netip.Addr{})
}

// addressAnswer answers q for a name that has ip and, on a dual-stack chain, ip6: an A
// record for A and ANY, an AAAA record for AAAA and ANY when there is ip6, nothing (but no
// error) for every other type, so resolvers do not wait.
func (q *query) addressAnswer(ip, ip6 netip.Addr) []byte {
	var a, aaaa netip.Addr
	if q.question.Class == dnsmessage.ClassINET {
		switch q.question.Type {
		case dnsmessage.TypeA:
			a = ip
		case dnsmessage.TypeAAAA:
			aaaa = ip6
		case dnsmessage.TypeALL:
			a, aaaa = ip, ip6
		}
	}
	return q.build(dnsmessage.RCodeSuccess, replyAuthoritative, a, aaaa)
}

// build packs an answer to q with rcode, an A record when a is an IPv4 address and an
// AAAA record when aaaa is an IPv6 one, and an OPT record when q had one.
func (q *query) build(rcode dnsmessage.RCode, flags int, a, aaaa netip.Addr) []byte {
	h := dnsmessage.Header{
		ID:               q.hdr.ID,
		Response:         true,
		OpCode:           q.hdr.OpCode,
		RecursionDesired: q.hdr.RecursionDesired,
		CheckingDisabled: q.hdr.CheckingDisabled,
		RCode:            rcode & 0xf,
	}
	if flags&replyAuthoritative != 0 {
		h.Authoritative, h.RecursionAvailable = true, true
	}
	b := dnsmessage.NewBuilder(make([]byte, 0, 128), h)
	b.EnableCompression()
	// Every error below is one of building a message too long or out of order, which
	// these few records never are; a failure leaves the message without its records.
	_ = b.StartQuestions()
	if flags&replyBare == 0 && q.questions == 1 {
		_ = b.Question(q.question)
	}
	_ = b.StartAnswers()
	rh := dnsmessage.ResourceHeader{Name: q.question.Name, Class: dnsmessage.ClassINET}
	if a.Is4() {
		_ = b.AResource(rh, dnsmessage.AResource{A: a.As4()})
	}
	if aaaa.Is6() && !aaaa.Is4In6() {
		_ = b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: aaaa.As16()})
	}
	_ = b.StartAdditionals()
	if q.edns {
		var opt dnsmessage.ResourceHeader
		_ = opt.SetEDNS0(ednsUDPSize, rcode, q.dnssecOK)
		_ = b.OPTResource(opt, dnsmessage.OPTResource{})
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}

// truncate makes an answer fit in limit bytes: the records go and TC says so, so that the
// client asks again over TCP (RFC 1035 section 4.2.1, RFC 7766); the question and the OPT
// record stay (RFC 6891 section 7). An answer that fits is returned as is.
func truncate(msg []byte, limit int) []byte {
	if len(msg) <= limit {
		return msg
	}
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return nil
	}
	h.Truncated = true
	qs, err := p.AllQuestions()
	if err != nil {
		return nil
	}
	var opt *dnsmessage.ResourceHeader
	if p.SkipAllAnswers() == nil && p.SkipAllAuthorities() == nil {
		for {
			rh, err := p.AdditionalHeader()
			if err != nil {
				break
			}
			if rh.Type == dnsmessage.TypeOPT {
				opt = &rh
				break
			}
			if p.SkipAdditional() != nil {
				break
			}
		}
	}
	for _, keep := range []bool{true, false} {
		b := dnsmessage.NewBuilder(make([]byte, 0, classicUDPSize), h)
		b.EnableCompression()
		_ = b.StartQuestions()
		if keep {
			for _, q := range qs {
				_ = b.Question(q)
			}
		}
		_ = b.StartAdditionals()
		if opt != nil {
			_ = b.OPTResource(*opt, dnsmessage.OPTResource{})
		}
		if out, err := b.Finish(); err == nil && len(out) <= limit {
			return out
		}
	}
	// Even the question does not fit (a long name in a 512-byte limit cannot happen, but a
	// header always fits).
	b := dnsmessage.NewBuilder(nil, h)
	out, _ := b.Finish()
	return out
}

// lookup finds the guest or service that answers to name, and its addresses (no IPv6 one on
// an IPv4-only chain); only guests attached to the end count.
func lookup(b *netsetup.BridgeState, name string) (ip, ip6 netip.Addr, ok bool) {
	for _, g := range b.Guests {
		if g.Phase != netsetup.PhaseReady {
			continue
		}
		for _, n := range g.Names() {
			if strings.EqualFold(n, name) {
				return g.IP, g.IP6, true
			}
		}
	}
	// A service's name is its service address.
	for _, sv := range b.Services {
		if strings.EqualFold(sv.Name, name) {
			return sv.IP, sv.IP6, true
		}
	}
	return netip.Addr{}, netip.Addr{}, false
}
