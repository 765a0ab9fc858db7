package nftwire

import (
	"testing"

	mnl "github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

func encode(t *testing.T, attrs ...mnl.Attribute) []byte {
	t.Helper()
	b, err := mnl.MarshalAttributes(attrs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSameData(t *testing.T) {
	u32 := func(v byte) []byte { return []byte{0, 0, 0, v} }
	verdict := func(t *testing.T, flag uint16, chain string) []byte {
		return encode(t, mnl.Attribute{Type: flag | 2, Data: encode(t,
			mnl.Attribute{Type: 1, Data: []byte{0xff, 0xff, 0xff, 0xfd}},
			mnl.Attribute{Type: 2, Data: []byte(chain + "\x00")})})
	}
	for _, c := range []struct {
		name string
		a, b []byte
		same bool
	}{
		{"equal", encode(t, mnl.Attribute{Type: 1, Data: u32(1)}), encode(t, mnl.Attribute{Type: 1, Data: u32(1)}), true},
		{"another order", encode(t, mnl.Attribute{Type: 1, Data: u32(1)}, mnl.Attribute{Type: 2, Data: u32(2)}),
			encode(t, mnl.Attribute{Type: 2, Data: u32(2)}, mnl.Attribute{Type: 1, Data: u32(1)}), true},
		{"another value", encode(t, mnl.Attribute{Type: 1, Data: u32(1)}), encode(t, mnl.Attribute{Type: 1, Data: u32(2)}), false},
		{"a zero only one side has", encode(t, mnl.Attribute{Type: 1, Data: u32(1)}),
			encode(t, mnl.Attribute{Type: 1, Data: u32(1)}, mnl.Attribute{Type: 5, Data: u32(0)}), true},
		{"a value only one side has", encode(t, mnl.Attribute{Type: 1, Data: u32(1)}),
			encode(t, mnl.Attribute{Type: 1, Data: u32(1)}, mnl.Attribute{Type: 5, Data: u32(3)}), false},
		{"nested, flagged on one side", encode(t, mnl.Attribute{Type: unix.NLA_F_NESTED | 2, Data: verdict(t, unix.NLA_F_NESTED, "filter")}),
			encode(t, mnl.Attribute{Type: 2, Data: verdict(t, 0, "filter")}), true},
		{"nested, another chain", encode(t, mnl.Attribute{Type: unix.NLA_F_NESTED | 2, Data: verdict(t, unix.NLA_F_NESTED, "filter")}),
			encode(t, mnl.Attribute{Type: 2, Data: verdict(t, 0, "egress")}), false},
		{"not attributes", []byte{1, 2, 3}, []byte{1, 2, 4}, false},
		// Values that happen to read as attributes differing in a flag bit of their type.
		{"a value read as an attribute, byte order bit", encode(t, mnl.Attribute{Type: 1, Data: []byte{4, 0, 1, 0}}),
			encode(t, mnl.Attribute{Type: 1, Data: []byte{4, 0, 1, 0x40}}), false},
		{"a value read as an attribute, nested bit", encode(t, mnl.Attribute{Type: 1, Data: []byte{4, 0, 1, 0}}),
			encode(t, mnl.Attribute{Type: 1, Data: []byte{4, 0, 1, 0x80}}), false},
		{"a MAC read as an attribute", encode(t, mnl.Attribute{Type: 1, Data: []byte{6, 0, 0xaa, 0, 0xcc, 0xdd}}),
			encode(t, mnl.Attribute{Type: 1, Data: []byte{6, 0, 0xaa, 0xc0, 0xcc, 0xdd}}), false},
		{"a mark with bit 30", encode(t, mnl.Attribute{Type: 1, Data: []byte{4, 0, 0, 0}}),
			encode(t, mnl.Attribute{Type: 1, Data: []byte{4, 0, 0, 0x40}}), false},
		{"a list of one type, flagged on one side", encode(t, mnl.Attribute{Type: unix.NLA_F_NESTED | 7, Data: encode(t,
			mnl.Attribute{Type: unix.NLA_F_NESTED | 1, Data: verdict(t, unix.NLA_F_NESTED, "a")},
			mnl.Attribute{Type: unix.NLA_F_NESTED | 1, Data: verdict(t, unix.NLA_F_NESTED, "b")})}),
			encode(t, mnl.Attribute{Type: 7, Data: encode(t,
				mnl.Attribute{Type: 1, Data: verdict(t, 0, "a")},
				mnl.Attribute{Type: 1, Data: verdict(t, 0, "b")})}), true},
		{"a list of one type in another order", encode(t, mnl.Attribute{Type: 7, Data: encode(t,
			mnl.Attribute{Type: 1, Data: verdict(t, 0, "a")},
			mnl.Attribute{Type: 1, Data: verdict(t, 0, "b")})}),
			encode(t, mnl.Attribute{Type: 7, Data: encode(t,
				mnl.Attribute{Type: 1, Data: verdict(t, 0, "b")},
				mnl.Attribute{Type: 1, Data: verdict(t, 0, "a")})}), false},
	} {
		if got := SameData(c.a, c.b); got != c.same {
			t.Errorf("%s: SameData = %t, want %t", c.name, got, c.same)
		}
		if got := SameData(c.b, c.a); got != c.same {
			t.Errorf("%s, the other way: SameData = %t, want %t", c.name, got, c.same)
		}
	}
}
