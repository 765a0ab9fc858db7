package names

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// pack builds a query with a DNS library, as resolvers send them.
func pack(t *testing.T, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// unpack reads a reply with a DNS library, as resolvers read them.
func unpack(t *testing.T, b []byte) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		t.Fatalf("reply does not parse: %v (% x)", err, b)
	}
	return m
}

// The server's hand-written replies read back, through an independent DNS implementation,
// as the answers resolvers expect: id, flags and question echoed, records of the type asked,
// and error codes for what it does not serve.
func TestWireReplies(t *testing.T) {
	ip, ip6 := netip.MustParseAddr("172.18.0.7"), netip.MustParseAddr("fd70:6f6e::7")
	for _, tc := range []struct {
		qtype  uint16
		ip6    netip.Addr
		wantA  bool
		wantA6 bool
	}{
		{dns.TypeA, ip6, true, false},
		{dns.TypeAAAA, ip6, false, true},
		{dns.TypeAAAA, netip.Addr{}, false, false}, // IPv4-only chain: empty, no error
		{dns.TypeANY, ip6, true, true},
		{dns.TypeMX, ip6, false, false},
	} {
		q := new(dns.Msg).SetQuestion("Web.Example.", tc.qtype)
		q.CheckingDisabled = true
		parsed, err := parseQuery(pack(t, q))
		if err != nil {
			t.Fatal(err)
		}
		if parsed.name != "Web.Example." || parsed.qtype != tc.qtype || parsed.qclass != dns.ClassINET {
			t.Fatalf("parsed %q type %d class %d; want Web.Example. type %d class IN", parsed.name, parsed.qtype, parsed.qclass, tc.qtype)
		}
		r := unpack(t, parsed.addressReply(ip, tc.ip6))
		if r.Id != q.Id || !r.Response || !r.Authoritative || !r.RecursionAvailable || !r.RecursionDesired || !r.CheckingDisabled || r.Rcode != dns.RcodeSuccess {
			t.Errorf("type %d: header %+v; want the query's id, RD and CD, and QR, AA, RA, NOERROR", tc.qtype, r.MsgHdr)
		}
		if len(r.Question) != 1 || r.Question[0] != q.Question[0] {
			t.Errorf("type %d: question %v; want %v", tc.qtype, r.Question, q.Question)
		}
		var gotA, gotA6 bool
		for _, rr := range r.Answer {
			if rr.Header().Name != "Web.Example." || rr.Header().Ttl != 0 || rr.Header().Class != dns.ClassINET {
				t.Errorf("type %d: record %v; want the question's name, class IN, ttl 0", tc.qtype, rr)
			}
			switch rr := rr.(type) {
			case *dns.A:
				gotA = rr.A.String() == ip.String()
			case *dns.AAAA:
				gotA6 = rr.AAAA.String() == ip6.String()
			default:
				t.Errorf("type %d: unexpected record %v", tc.qtype, rr)
			}
		}
		if gotA != tc.wantA || gotA6 != tc.wantA6 || len(r.Answer) != btoi(tc.wantA)+btoi(tc.wantA6) {
			t.Errorf("type %d: answers %v; want A %v, AAAA %v", tc.qtype, r.Answer, tc.wantA, tc.wantA6)
		}
	}

	// Error codes keep the question and set neither AA nor RA.
	q := new(dns.Msg).SetQuestion("gone.", dns.TypeA)
	parsed, err := parseQuery(pack(t, q))
	if err != nil {
		t.Fatal(err)
	}
	r := unpack(t, parsed.errorReply(rcodeNXDomain))
	if r.Rcode != dns.RcodeNameError || r.Authoritative || len(r.Answer) != 0 || len(r.Question) != 1 || r.Question[0].Name != "gone." {
		t.Errorf("NXDOMAIN reply %v", r)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Messages the server must not answer normally: responses and scraps get no reply at all;
// other opcodes NOTIMP; no or several questions, or a broken one, FORMERR.
func TestWireRefusals(t *testing.T) {
	resp := new(dns.Msg).SetQuestion("a.", dns.TypeA)
	resp.Response = true
	if _, err := parseQuery(pack(t, resp)); !errors.Is(err, errNoQuery) {
		t.Errorf("a response parsed as a query (err %v)", err)
	}
	if _, err := parseQuery([]byte{1, 2, 3}); !errors.Is(err, errNoQuery) {
		t.Errorf("3 bytes parsed as a query (err %v)", err)
	}

	s := &Server{}
	update := new(dns.Msg).SetUpdate("zone.")
	if r := unpack(t, s.answer(pack(t, update), netip.Addr{}, "udp")); r.Rcode != dns.RcodeNotImplemented || r.Id != update.Id {
		t.Errorf("UPDATE got %v; want NOTIMP", r)
	}
	two := new(dns.Msg).SetQuestion("a.", dns.TypeA)
	two.Question = append(two.Question, dns.Question{Name: "b.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	if r := unpack(t, s.answer(pack(t, two), netip.Addr{}, "udp")); r.Rcode != dns.RcodeFormatError || r.Id != two.Id {
		t.Errorf("two questions got %v; want FORMERR", r)
	}
	cut := pack(t, new(dns.Msg).SetQuestion("abc.", dns.TypeA))
	if r := unpack(t, s.answer(cut[:len(cut)-3], netip.Addr{}, "udp")); r.Rcode != dns.RcodeFormatError {
		t.Errorf("a cut question got %v; want FORMERR", r)
	}
	// A compression pointer where the first question's name starts.
	ptr := pack(t, new(dns.Msg).SetQuestion("a.", dns.TypeA))
	ptr = append(ptr[:headerLen], 0xc0, headerLen, 0, 1, 0, 1)
	if r := unpack(t, s.answer(ptr, netip.Addr{}, "udp")); r.Rcode != dns.RcodeFormatError {
		t.Errorf("a looping name got %v; want FORMERR", r)
	}

	if err := checkReply(pack(t, resp), resp.Id+1); err == nil {
		t.Error("checkReply accepted a reply to another query")
	}
	if err := checkReply(pack(t, update), update.Id); err == nil {
		t.Error("checkReply accepted a query as a reply")
	}
	if err := checkReply(pack(t, resp), resp.Id); err != nil {
		t.Errorf("checkReply refused a reply: %v", err)
	}
}
