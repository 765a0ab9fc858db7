package netsetup

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// The hand-written encoding of guests is what encoding/json writes, for every field set
// and unset (a field added to Guest without appendJSON fails here), and a bridge record
// decodes to the same value.
func TestGuestJSONSame(t *testing.T) {
	full := Guest{Name: "n1", IP: netip.MustParseAddr("172.18.0.1"), IP6: netip.MustParseAddr("fd70:6f6e::1"),
		Hostname: "h", Aliases: []string{"a", "b"}, Netns: "/run/netns/x", UTS: "/run/uts/x", Owned: true,
		Port: "p1", Key: "k", Process: &Process{PID: 12, Start: 34}, Phase: PhaseReady, Creator: &Process{PID: 5, Start: 6}}
	// Every field of full is set: a new one must be added to full, and to appendJSON.
	v := reflect.ValueOf(full)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Fatalf("field %s of the test guest is unset", v.Type().Field(i).Name)
		}
	}
	odd := Guest{Name: "a<b>&\"c\"\\\u00e9\u2028\x01", Netns: "\xff", Aliases: []string{}, Phase: PhaseCreating}
	guests := []Guest{full, {}, odd, {Name: "g", IP: netip.MustParseAddr("172.18.0.9"), Netns: "/p"}}
	type plain Guest // without appendJSON: what encoding/json writes
	for _, g := range guests {
		want, err := json.Marshal(plain(g))
		if err != nil {
			t.Fatal(err)
		}
		if got := g.appendJSON(nil); string(got) != string(want) {
			t.Errorf("guest %q:\n got %s\nwant %s", g.Name, got, want)
		}
	}
	b := &BridgeState{Name: "b", Slot: 3, Phase: PhaseReady, Created: time.Unix(1700000000, 5).UTC(), Guests: guests}
	for _, br := range []*BridgeState{b, {Name: "empty"}} {
		data, err := bridgeJSON(br)
		if err != nil {
			t.Fatal(err)
		}
		var back BridgeState
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		var want BridgeState
		plainJSON, _ := json.Marshal(br)
		if err := json.Unmarshal(plainJSON, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, want) {
			t.Errorf("bridge %q decodes to\n%+v\nwant\n%+v", br.Name, back, want)
		}
	}
}

// Every byte, alone and inside a name, is quoted as encoding/json quotes it.
func TestJSONStringEveryByte(t *testing.T) {
	for c := range 256 {
		for _, s := range []string{string([]byte{byte(c)}), "g" + string([]byte{byte(c)}) + "x"} {
			want, _ := json.Marshal(s)
			if got := appendJSONString(nil, s); string(got) != string(want) {
				t.Errorf("%q: got %s, want %s", s, got, want)
			}
		}
	}
}

func BenchmarkBridgeJSON(b *testing.B) {
	br := &BridgeState{Name: "bench", Phase: PhaseReady, Created: time.Now()}
	for i := 1; i <= 200; i++ {
		br.Guests = append(br.Guests, Guest{Name: fmt.Sprintf("g%d", i), IP: netip.MustParseAddr(fmt.Sprintf("172.18.0.%d", i)),
			IP6: netip.MustParseAddr(fmt.Sprintf("fd70:6f6e::%d", i)), Netns: fmt.Sprintf("/run/netns/pontoon-g-g%d@bench", i),
			UTS: fmt.Sprintf("/run/pontoon/uts/g%d@bench", i), Owned: true, Port: fmt.Sprintf("p-172-18-0-%d", i), Hostname: fmt.Sprintf("g%d", i), Phase: PhaseReady})
	}
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(br); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bridgeJSON", func(b *testing.B) {
		for b.Loop() {
			if _, err := bridgeJSON(br); err != nil {
				b.Fatal(err)
			}
		}
	})
}
