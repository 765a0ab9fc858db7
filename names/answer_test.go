package names

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

func packQuery(t testing.TB, name string, qtype dnsmessage.Type, edns int) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 0x1234, RecursionDesired: true})
	_ = b.StartQuestions()
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: qtype, Class: dnsmessage.ClassINET}); err != nil {
		t.Fatal(err)
	}
	if edns > 0 {
		_ = b.StartAdditionals()
		var rh dnsmessage.ResourceHeader
		_ = rh.SetEDNS0(edns, dnsmessage.RCodeSuccess, true)
		if err := b.OPTResource(rh, dnsmessage.OPTResource{}); err != nil {
			t.Fatal(err)
		}
	}
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// An answer too big for its limit keeps its question and OPT record and says TC; one that
// fits is sent as it is.
func TestTruncate(t *testing.T) {
	name := dnsmessage.MustNewName("big.example.test.")
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, Response: true, RecursionAvailable: true})
	b.EnableCompression()
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	_ = b.StartAnswers()
	for i := range 60 {
		_ = b.AResource(dnsmessage.ResourceHeader{Name: name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: [4]byte{192, 0, 2, byte(i)}})
	}
	_ = b.StartAdditionals()
	var rh dnsmessage.ResourceHeader
	_ = rh.SetEDNS0(4096, dnsmessage.RCodeSuccess, true)
	_ = b.OPTResource(rh, dnsmessage.OPTResource{Options: []dnsmessage.Option{{Code: 10, Data: make([]byte, 8)}}})
	big, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if len(big) <= classicUDPSize || len(big) > 2*classicUDPSize {
		t.Fatalf("test message is %d bytes; want between 512 and 1024", len(big))
	}
	if got := truncate(big, 2*classicUDPSize); &got[0] != &big[0] || len(got) != len(big) {
		t.Errorf("an answer that fits was changed")
	}
	out := truncate(big, classicUDPSize)
	var m dnsmessage.Message
	if err := m.Unpack(out); err != nil {
		t.Fatalf("truncated answer does not parse: %v", err)
	}
	if len(out) > classicUDPSize || !m.Truncated || m.ID != 7 || !m.RecursionAvailable {
		t.Errorf("truncated answer: %d bytes, header %+v; want at most 512 bytes, TC, ID 7, RA", len(out), m.Header)
	}
	if len(m.Questions) != 1 || m.Questions[0].Name != name || len(m.Answers) != 0 {
		t.Errorf("truncated answer: questions %v, answers %d; want the question and no answers", m.Questions, len(m.Answers))
	}
	if len(m.Additionals) != 1 || m.Additionals[0].Header.Type != dnsmessage.TypeOPT || !m.Additionals[0].Header.DNSSECAllowed() {
		t.Errorf("truncated answer: additionals %v; want the OPT record with DO", m.Additionals)
	}
}

// Queries are parsed, and refused, as a resolver expects: FORMERR for what does not parse
// or asks other than one question, NOTIMP for other opcodes, BADVERS for EDNS versions
// beyond 0, nothing for what is not a query.
func TestParseAndRefuse(t *testing.T) {
	good := packQuery(t, "n2.", dnsmessage.TypeA, 0)
	twoQ := append([]byte(nil), good...)
	twoQ[5] = 2
	status := append([]byte(nil), good...)
	status[2] |= 2 << 3 // opcode STATUS
	resp := append([]byte(nil), good...)
	resp[2] |= 0x80
	badVers := packQuery(t, "n2.", dnsmessage.TypeA, 1232)
	badVers[len(badVers)-5] = 1 // the OPT record's version: TTL's second byte
	const noAnswer = dnsmessage.RCode(0xffff)
	for _, c := range []struct {
		name  string
		msg   []byte
		rcode dnsmessage.RCode // noAnswer; 0: passes on to be answered
	}{
		{"good", good, 0},
		{"short", good[:11], noAnswer},
		{"response", resp, noAnswer},
		{"cut question", good[:len(good)-2], dnsmessage.RCodeFormatError},
		{"two questions", twoQ, dnsmessage.RCodeFormatError},
		{"opcode status", status, dnsmessage.RCodeNotImplemented},
		{"EDNS version 1", badVers, rcodeBadVers},
	} {
		q, ok, err := parseQuery(c.msg)
		if c.rcode == noAnswer {
			if ok {
				t.Errorf("%s: taken as a query", c.name)
			}
			continue
		}
		out := q.refusal(err)
		if c.rcode == 0 {
			if !ok || err != nil || out != nil || normalize(q.question.Name.String()) != "n2" {
				t.Errorf("%s: ok %v, err %v, refusal %x; want a query for n2", c.name, ok, err, out)
			}
			continue
		}
		var m dnsmessage.Message
		if err := m.Unpack(out); err != nil {
			t.Fatalf("%s: answer does not parse: %v", c.name, err)
		}
		rcode := m.RCode
		for _, rr := range m.Additionals {
			if rr.Header.Type == dnsmessage.TypeOPT {
				rcode = rr.Header.ExtendedRCode(m.RCode)
			}
		}
		if !m.Response || m.ID != 0x1234 || rcode != c.rcode {
			t.Errorf("%s: answer %+v, rcode %v; want %v with ID 0x1234", c.name, m.Header, rcode, c.rcode)
		}
	}
}

// Whatever arrives, parsing and answering it does not crash, and what goes back parses.
func TestRandomMessages(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	seeds := [][]byte{packQuery(t, "n2.", dnsmessage.TypeA, 0), packQuery(t, "www.example.test.", dnsmessage.TypeALL, 4096)}
	for i := range 20000 {
		msg := append([]byte(nil), seeds[i%len(seeds)]...)
		switch i % 3 {
		case 0:
			msg = msg[:r.IntN(len(msg)+1)]
		case 1:
			for range 1 + r.IntN(4) {
				msg[r.IntN(len(msg))] = byte(r.Uint32())
			}
		case 2:
			msg = make([]byte, r.IntN(80))
			for j := range msg {
				msg[j] = byte(r.Uint32())
			}
		}
		q, ok, err := parseQuery(msg)
		if !ok {
			continue
		}
		out := q.refusal(err)
		if out == nil {
			out = q.addressAnswer(netip.MustParseAddr("172.18.0.2"), netip.MustParseAddr("fd00::2"))
		}
		out = truncate(out, q.udpLimit())
		var m dnsmessage.Message
		if err := m.Unpack(out); err != nil || len(out) > q.udpLimit() {
			t.Fatalf("message %x: answer %x (%d bytes) does not parse (%v) or exceeds %d", msg, out, len(out), err, q.udpLimit())
		}
	}
}

// BenchmarkParseAndAnswer is the codec's share of answering a guest's name: parse the query,
// build the answer, check its size.
func BenchmarkParseAndAnswer(b *testing.B) {
	msg := packQuery(b, "n2.", dnsmessage.TypeA, 1232)
	ip := netip.MustParseAddr("172.18.0.2")
	b.ReportAllocs()
	for range b.N {
		q, ok, err := parseQuery(msg)
		if !ok || err != nil {
			b.Fatal(ok, err)
		}
		if out := truncate(q.addressAnswer(ip, netip.Addr{}), q.udpLimit()); len(out) < headerLen {
			b.Fatal(out)
		}
	}
}
