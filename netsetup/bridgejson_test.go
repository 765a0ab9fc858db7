package netsetup

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// allSet fails the test when a field of v (a struct) is zero: the records below set every
// field, so that one added to a type without the hand-written codec fails here.
func allSet(t *testing.T, v any) {
	t.Helper()
	rv := reflect.ValueOf(v)
	for i := range rv.NumField() {
		if rv.Field(i).IsZero() {
			t.Fatalf("field %s of the test %s is unset", rv.Type().Field(i).Name, rv.Type())
		}
	}
}

// testRecords returns bridge records that between them set every field, hold strings that
// need escaping, and leave every optional field out.
func testRecords(t *testing.T) []*BridgeState {
	full := Guest{Name: "n1", IP: netip.MustParseAddr("172.18.0.1"), IP6: netip.MustParseAddr("fd70:6f6e::1"),
		Hostname: "h", Aliases: []string{"a", "b"}, Netns: "/run/netns/x", UTS: "/run/uts/x", Owned: true,
		Port: "p1", Key: "k", Process: &Process{PID: 12, Start: 34}, Phase: PhaseReady, Creator: &Process{PID: 5, Start: 6},
		NetnsID: 4026532001, MountNS: 4026531841, Problem: "hidden"}
	allSet(t, full)
	odd := Guest{Name: "a<b>&\"c\"\\\u00e9\u2028\x01\x7f", Netns: "\xff", Aliases: []string{}, Phase: PhaseCreating}
	guests := []Guest{full, {}, odd, {Name: "g", IP: netip.MustParseAddr("172.18.0.9"), Netns: "/p"}}
	svc := Service{Name: "web", IP: netip.MustParseAddr("172.18.255.1"), IP6: netip.MustParseAddr("fd70:6f6e::ff:1"),
		Ports: []ServicePort{{80, TCP}}, Members: []string{"n1"}, Mode: "round-robin", SkipUnreachable: true,
		Changing: &Process{PID: 7, Start: 8}, Removing: true}
	allSet(t, svc)
	b := &BridgeState{Name: "b", Slot: 3, Phase: PhaseReady, Creator: Process{PID: 1, Start: 2}, Owner: &Process{PID: 3, Start: 4},
		Created: time.Unix(1700000000, 5).UTC(), Ports: []Port{{8080, "n1", 80, TCP}, {53, "172.18.0.9", 53, UDP}},
		Guests: guests, Services: []Service{svc}, MountNS: 4026531840, NetnsID: 4026532000, Problem: "gone"}
	allSet(t, *b)
	zone := &BridgeState{Name: "z", Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)),
		Guests: []Guest{{Name: "z", IP: netip.MustParseAddr("fe80::1%eth0")}}}
	return []*BridgeState{b, {Name: "empty"}, zone}
}

// The hand-written encoding of a bridge record is what encoding/json writes, for every
// field set and unset, and reading it back gives what encoding/json reads.
func TestRecordJSONSame(t *testing.T) {
	type plain BridgeState // what encoding/json writes
	for _, br := range testRecords(t) {
		want, err := json.Marshal((*plain)(br))
		if err != nil {
			t.Fatal(err)
		}
		got, err := bridgeJSON(br)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("bridge %q:\n got %s\nwant %s", br.Name, got, want)
		}
		var viaJSON BridgeState
		if err := json.Unmarshal(want, &viaJSON); err != nil {
			t.Fatal(err)
		}
		if _, ok := readBridge(want); !ok {
			t.Errorf("bridge %q: the fast reader refused %s", br.Name, want)
		}
		var back BridgeState
		if err := DecodeBridge(want, &back); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, viaJSON) {
			t.Errorf("bridge %q decodes to\n%+v\nwant\n%+v", br.Name, back, viaJSON)
		}
		// The head: all of it but the guests and services, which are passed over.
		head, ok := readBridgeHead(want)
		viaJSON.Guests, viaJSON.Services = nil, nil
		if !ok || !reflect.DeepEqual(head, viaJSON) {
			t.Errorf("bridge %q: head %+v, %v; want\n%+v", br.Name, head, ok, viaJSON)
		}
	}
}

// A record the head reader refuses (not as bridgeJSON writes it) is read whole, and
// bridgeHeads lists every record by slot, a removed one left out.
func TestBridgeHeads(t *testing.T) {
	st := store{dir: t.TempDir()}
	if err := os.Mkdir(filepath.Join(st.dir, "bridges"), 0o700); err != nil {
		t.Fatal(err)
	}
	recs := testRecords(t)
	for i, b := range recs {
		b.Slot = len(recs) - i
		if err := st.writeBridge(b.Name, b); err != nil {
			t.Fatal(err)
		}
	}
	// With a key the fast reader does not know (a newer field), which encoding/json skips.
	other := []byte(`{ "slot": 9, "name": "other", "newer": {"x": [1]}, "ports": [{"host_port": 80, "guest": "g", "guest_port": 80, "proto": "tcp"}], "phase": "ready", "guests": [{"name": "g"}] }`)
	if err := os.WriteFile(st.bridgeFile("other"), other, 0o600); err != nil {
		t.Fatal(err)
	}
	// Read from their files, not from this process's cache of what it wrote.
	bridgeCache.Lock()
	for _, b := range recs {
		bridgeCache.forgetLocked(st.bridgeFile(b.Name))
	}
	bridgeCache.Unlock()
	heads, err := st.bridgeHeads()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range heads {
		names = append(names, fmt.Sprintf("%s@%d/%d ports", h.Name, h.Slot, len(h.Ports)))
	}
	if got, want := strings.Join(names, " "), "z@1/0 ports empty@2/0 ports b@3/2 ports other@9/1 ports"; got != want {
		t.Errorf("heads %s; want %s", got, want)
	}
	for _, h := range heads {
		if h.Name == "b" && (h.Guests != nil || h.Services != nil || h.Owner == nil || h.Phase != PhaseReady) {
			t.Errorf("head of b: %+v; want the record without guests and services", h)
		}
	}
}

func TestGatewayJSONSame(t *testing.T) {
	full := GatewayState{Plan: netip.MustParsePrefix("172.18.0.0/16"), Plan6: netip.MustParsePrefix("fd70:6f6e::/48"),
		Phase: PhaseReady, Creator: Process{PID: 1, Start: 2}, Created: time.Unix(1700000000, 5).UTC(),
		NoFirewall: true, HostForwarding: "0", DNS: "127.0.0.53", NetnsID: 4026532000}
	allSet(t, full)
	for _, g := range []GatewayState{full, {Plan: netip.MustParsePrefix("10.0.0.0/16")}, {}} {
		data, err := json.Marshal(g)
		if err != nil {
			t.Fatal(err)
		}
		var want, got GatewayState
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatal(err)
		}
		if _, ok := readGateway(data); !ok {
			t.Errorf("the fast reader refused %s", data)
		}
		if err := decodeGateway(data, &got); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s decodes to %+v, %v; want %+v", data, got, err, want)
		}
	}
}

// A file the fast reader does not take (another spelling, a null, a key it does not know, a
// value out of range, damage) decodes as encoding/json decodes it, error included.
func TestRecordDecodeFallsBack(t *testing.T) {
	for _, doc := range []string{
		`{"Name":"b","slot":1}`,
		`{"name":null,"slot":1}`,
		`{"name":"b","owner":null,"guests":null}`,
		`{"name":"b","future":{"x":[1,2]}}`,
		`{"name":"b","guests":[{"name":"g","Process":{"PID":3}}]}`,
		`{"name":"b","ports":[{"host_port":70000}]}`,
		`{"name":"b","slot":1.5}`,
		`{"name":"b","slot":-1,"mount_ns":-1}`,
		`{"name":"b","services":[{"name":"s","ports":[{"port":80,"proto":"tcp"}]}]}`,
		`{"name":"b","services":{}}`,
		`{"name":"b","created":"yesterday"}`,
		`{"name":"b","guests":[{"ip":"300.1.1.1"}]}`,
		`{"name":"b"} {}`,
		// encoding/json decodes a repeated key's value into the first one's.
		`{"creator":{"pid":1},"creator":{"start":2}}`,
		`{"owner":{"pid":1},"owner":{"start":2}}`,
		`{"guests":[{"name":"a","ip":"1.2.3.4"}],"guests":[{"netns":"x"}]}`,
		`{"guests":[{"name":"a","process":{"pid":1}}],"guests":[{"process":{"start":2}}]}`,
		`{"ports":[{"host_port":1,"guest":"x"}],"ports":[{"guest_port":2}]}`,
		`{"name":"a","name":"b"}`,
		`{"name":"b",`,
		`[]`,
		``,
	} {
		var want, got BridgeState
		wantErr := json.Unmarshal([]byte(doc), &want)
		gotErr := DecodeBridge([]byte(doc), &got)
		if (gotErr == nil) != (wantErr == nil) || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %+v, %v; want %+v, %v", doc, got, gotErr, want, wantErr)
		}
	}
	var g GatewayState
	if err := decodeGateway([]byte(`{"plan":"172.18.0.0/33"}`), &g); err == nil {
		t.Errorf("a bad plan decodes to %+v", g)
	}
	var want GatewayState
	doc := []byte(`{"creator":{"pid":1},"creator":{"start":2}}`)
	if err := json.Unmarshal(doc, &want); err != nil || decodeGateway(doc, &g) != nil || g != want {
		t.Errorf("%s decodes to %+v, want %+v", doc, g, want)
	}
}

// A time encoding/json refuses is refused by bridgeJSON too, not written.
func TestBridgeJSONBadTime(t *testing.T) {
	for _, tm := range []time.Time{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 24*3600))} {
		_, err := bridgeJSON(&BridgeState{Name: "b", Created: tm})
		if _, want := json.Marshal(tm); err == nil || want == nil || !strings.Contains(err.Error(), want.Error()) {
			t.Errorf("%v: got %v, want encoding/json's error %v", tm, err, want)
		}
	}
}

func benchRecord() *BridgeState {
	br := &BridgeState{Name: "bench", Phase: PhaseReady, Created: time.Now()}
	for i := 1; i <= 200; i++ {
		br.Guests = append(br.Guests, Guest{Name: fmt.Sprintf("g%d", i), IP: netip.MustParseAddr(fmt.Sprintf("172.18.0.%d", i)),
			IP6: netip.MustParseAddr(fmt.Sprintf("fd70:6f6e::%d", i)), Netns: fmt.Sprintf("/run/netns/pontoon-g-g%d@bench", i),
			UTS: fmt.Sprintf("/run/pontoon/uts/g%d@bench", i), Owned: true, Port: fmt.Sprintf("p-172-18-0-%d", i), Hostname: fmt.Sprintf("g%d", i), Phase: PhaseReady})
	}
	return br
}

func BenchmarkBridgeJSON(b *testing.B) {
	br := benchRecord()
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

func BenchmarkDecodeBridge(b *testing.B) {
	for _, n := range []int{3, 200} {
		br := benchRecord()
		br.Guests = br.Guests[:n]
		data, _ := bridgeJSON(br)
		b.Run(fmt.Sprintf("encoding/json/%d", n), func(b *testing.B) {
			for b.Loop() {
				var v BridgeState
				if err := json.Unmarshal(data, &v); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("DecodeBridge/%d", n), func(b *testing.B) {
			for b.Loop() {
				var v BridgeState
				if err := DecodeBridge(data, &v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
