package netsetup

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"unicode/utf8"
)

// Bridge records are rewritten at every guest add and remove, twice per add: with 200
// guests, encoding/json spent a quarter of a millisecond per write on the guests alone, most
// of what a guest cost more on a full bridge than on an empty one. The guests are encoded by
// hand instead (appendJSON, byte for byte what encoding/json writes: TestGuestJSONSame),
// the rest of the record by encoding/json; readers decode it all with encoding/json.

// bridgeJSON encodes b as its state file holds it.
func bridgeJSON(b *BridgeState) ([]byte, error) {
	rest := *b
	rest.Guests = nil // omitempty: left out, and written below
	head, err := json.Marshal(&rest)
	if err != nil {
		return nil, fmt.Errorf("encode bridge %q: %w", b.Name, err)
	}
	if len(b.Guests) == 0 {
		return head, nil
	}
	out := make([]byte, 0, len(head)+len(b.Guests)*256)
	out = append(out, head...)
	if len(out) < 2 || out[len(out)-1] != '}' {
		return nil, fmt.Errorf("encode bridge %q: unexpected JSON %.40q", b.Name, head)
	}
	out = out[:len(out)-1]
	if len(out) > 1 {
		out = append(out, ',')
	}
	out = append(out, `"guests":[`...)
	for i := range b.Guests {
		if i > 0 {
			out = append(out, ',')
		}
		out = b.Guests[i].appendJSON(out)
	}
	return append(out, "]}"...), nil
}

// appendJSON appends g as encoding/json encodes it (field order, omitempty and omitzero as
// in Guest's tags).
func (g *Guest) appendJSON(b []byte) []byte {
	b = append(b, `{"name":`...)
	b = appendJSONString(b, g.Name)
	b = append(b, `,"ip":`...)
	b = appendAddr(b, g.IP)
	if g.IP6.IsValid() {
		b = append(b, `,"ip6":`...)
		b = appendAddr(b, g.IP6)
	}
	if g.Hostname != "" {
		b = append(b, `,"hostname":`...)
		b = appendJSONString(b, g.Hostname)
	}
	if len(g.Aliases) > 0 {
		b = append(b, `,"aliases":[`...)
		for i, a := range g.Aliases {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, a)
		}
		b = append(b, ']')
	}
	b = append(b, `,"netns":`...)
	b = appendJSONString(b, g.Netns)
	if g.UTS != "" {
		b = append(b, `,"uts":`...)
		b = appendJSONString(b, g.UTS)
	}
	if g.Owned {
		b = append(b, `,"owned":true`...)
	}
	if g.Port != "" {
		b = append(b, `,"port":`...)
		b = appendJSONString(b, g.Port)
	}
	if g.Key != "" {
		b = append(b, `,"key":`...)
		b = appendJSONString(b, g.Key)
	}
	if g.Process != nil {
		b = append(b, `,"process":`...)
		b = g.Process.appendJSON(b)
	}
	b = append(b, `,"phase":`...)
	b = appendJSONString(b, string(g.Phase))
	if g.Creator != nil {
		b = append(b, `,"creator":`...)
		b = g.Creator.appendJSON(b)
	}
	return append(b, '}')
}

func (p *Process) appendJSON(b []byte) []byte {
	b = append(b, `{"pid":`...)
	b = strconv.AppendInt(b, int64(p.PID), 10)
	b = append(b, `,"start":`...)
	b = strconv.AppendUint(b, p.Start, 10)
	return append(b, '}')
}

// appendAddr appends a netip.Addr as its MarshalText gives it ("" for the zero Addr), which
// never needs escaping.
func appendAddr(b []byte, a netip.Addr) []byte {
	b = append(b, '"')
	if a.IsValid() {
		b = a.AppendTo(b)
	}
	return append(b, '"')
}

// appendJSONString appends s quoted as encoding/json quotes it; names and paths take the
// fast path, anything else (escapes, HTML characters, other than ASCII) encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !unescaped[s[i]] {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// unescaped marks the bytes encoding/json writes as they are: one table lookup a byte, where
// a record of 200 guests holds some 30,000 bytes of names and paths.
var unescaped = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()
