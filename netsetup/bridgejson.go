package netsetup

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/pontoon-dev/pontoon/internal/jsontok"
)

// Every command reads the gateway's record and a bridge's, and most write the bridge's back.
// encoding/json prepares each type by reflection on its first use in a process, and a
// command is a new process: that was ~0.2 ms of a `guest add`, more than the decoding itself.
// And a record is rewritten twice per guest added: with 200 guests, encoding/json spent a
// quarter of a millisecond per write on the guests alone.
//
// So the records are written and read here, without reflection, byte for byte as
// encoding/json has them (TestRecordJSONSame): either side reads what the other wrote.
// Services, rare and nested, are left to encoding/json, and so is any file the reader here
// does not recognise (a key it does not know, a null, another spelling); encoding/json then
// also produces the error for a malformed file.

// bridgeJSON encodes b as its state file holds it.
func bridgeJSON(b *BridgeState) ([]byte, error) {
	w := jsontok.Writer{B: make([]byte, 0, 256+len(b.Guests)*256)}
	w.Raw("{")
	w.Str("name", b.Name)
	w.Int("slot", int64(b.Slot))
	w.Str("phase", string(b.Phase))
	w.Key("creator")
	w.B = b.Creator.AppendJSON(w.B)
	if b.Owner != nil {
		w.Key("owner")
		w.B = b.Owner.AppendJSON(w.B)
	}
	w.Time("created", b.Created)
	if len(b.Ports) > 0 {
		w.Key("ports")
		w.List(false, len(b.Ports), func(i int) {
			p := &b.Ports[i]
			w.Raw("{")
			w.Uint("host_port", uint64(p.HostPort))
			w.Str("guest", p.Guest)
			w.Uint("guest_port", uint64(p.GuestPort))
			w.Str("proto", p.Proto)
			w.Raw("}")
		})
	}
	if len(b.Guests) > 0 {
		w.Key("guests")
		w.List(false, len(b.Guests), func(i int) { w.B = b.Guests[i].appendJSON(w.B) })
	}
	if len(b.Services) > 0 {
		s, err := json.Marshal(b.Services)
		if err != nil {
			return nil, fmt.Errorf("encode bridge %q: %w", b.Name, err)
		}
		w.Key("services")
		w.B = append(w.B, s...)
	}
	if b.MountNS != 0 {
		w.Uint("mount_ns", b.MountNS)
	}
	if b.NetnsID != 0 {
		w.Uint("netns_id", b.NetnsID)
	}
	if b.Problem != "" {
		w.Str("problem", b.Problem)
	}
	w.Raw("}")
	if w.Bad {
		// A time encoding/json refuses: it says what is wrong.
		out, err := json.Marshal(b)
		if err != nil {
			return nil, fmt.Errorf("encode bridge %q: %w", b.Name, err)
		}
		return out, nil
	}
	return w.B, nil
}

// appendJSON appends g as encoding/json encodes it (field order, omitempty and omitzero as
// in Guest's tags).
func (g *Guest) appendJSON(b []byte) []byte {
	b = append(b, `{"name":`...)
	b = jsontok.AppendQuote(b, g.Name)
	b = append(b, `,"ip":`...)
	b = jsontok.AppendAddr(b, g.IP)
	if g.IP6.IsValid() {
		b = append(b, `,"ip6":`...)
		b = jsontok.AppendAddr(b, g.IP6)
	}
	if g.Hostname != "" {
		b = append(b, `,"hostname":`...)
		b = jsontok.AppendQuote(b, g.Hostname)
	}
	if len(g.Aliases) > 0 {
		b = append(b, `,"aliases":[`...)
		for i, a := range g.Aliases {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsontok.AppendQuote(b, a)
		}
		b = append(b, ']')
	}
	b = append(b, `,"netns":`...)
	b = jsontok.AppendQuote(b, g.Netns)
	if g.UTS != "" {
		b = append(b, `,"uts":`...)
		b = jsontok.AppendQuote(b, g.UTS)
	}
	if g.Owned {
		b = append(b, `,"owned":true`...)
	}
	if g.NetnsID != 0 {
		b = append(b, `,"netns_id":`...)
		b = strconv.AppendUint(b, g.NetnsID, 10)
	}
	if g.MountNS != 0 {
		b = append(b, `,"mount_ns":`...)
		b = strconv.AppendUint(b, g.MountNS, 10)
	}
	if g.Port != "" {
		b = append(b, `,"port":`...)
		b = jsontok.AppendQuote(b, g.Port)
	}
	if g.Key != "" {
		b = append(b, `,"key":`...)
		b = jsontok.AppendQuote(b, g.Key)
	}
	if g.Process != nil {
		b = append(b, `,"process":`...)
		b = g.Process.AppendJSON(b)
	}
	b = append(b, `,"phase":`...)
	b = jsontok.AppendQuote(b, string(g.Phase))
	if g.Creator != nil {
		b = append(b, `,"creator":`...)
		b = g.Creator.AppendJSON(b)
	}
	if g.Problem != "" {
		b = append(b, `,"problem":`...)
		b = jsontok.AppendQuote(b, g.Problem)
	}
	return append(b, '}')
}

// AppendJSON appends p as encoding/json encodes it.
func (p *Process) AppendJSON(b []byte) []byte {
	w := jsontok.Writer{B: append(b, '{')}
	w.Int("pid", int64(p.PID))
	w.Uint("start", p.Start)
	if p.PIDNS != 0 {
		w.Uint("pidns", p.PIDNS)
	}
	return append(w.B, '}')
}

// DecodeBridge reads a bridge's state file into b.
func DecodeBridge(data []byte, b *BridgeState) error {
	if fast, ok := readBridge(data); ok {
		*b = fast
		return nil
	}
	*b = BridgeState{}
	return json.Unmarshal(data, b)
}

// decodeGateway reads the gateway's state file into g.
func decodeGateway(data []byte, g *GatewayState) error {
	if fast, ok := readGateway(data); ok {
		*g = fast
		return nil
	}
	*g = GatewayState{}
	return json.Unmarshal(data, g)
}

// readBridge reads a record as bridgeJSON writes it, and reports false for anything else.
func readBridge(data []byte) (BridgeState, bool) { return readRecord(data, false) }

// readBridgeHead reads a record as readBridge does but for its guests and services, which
// it passes over unread (see store.bridgeHeads).
func readBridgeHead(data []byte) (BridgeState, bool) { return readRecord(data, true) }

func readRecord(data []byte, head bool) (BridgeState, bool) {
	var b BridgeState
	r := jsontok.NewReader(data)
	r.Object(func(k string) {
		switch k {
		case "name":
			b.Name = r.Str()
		case "slot":
			b.Slot = int(r.Int())
		case "phase":
			b.Phase = Phase(r.Str())
		case "creator":
			b.Creator = ReadProcess(r)
		case "owner":
			p := ReadProcess(r)
			b.Owner = &p
		case "created":
			b.Created = r.Time()
		case "ports":
			b.Ports = jsontok.Slice(r, func() Port { return readPort(r) })
		case "guests", "services":
			switch {
			case head:
				r.Skip()
			case k == "guests":
				b.Guests = jsontok.Slice(r, func() Guest { return readGuest(r) })
			default:
				r.Value(&b.Services)
			}
		case "mount_ns":
			b.MountNS = r.Uint()
		case "netns_id":
			b.NetnsID = r.Uint()
		case "problem":
			b.Problem = r.Str()
		default:
			r.Fail()
		}
	})
	return b, r.Done()
}

func readGuest(r *jsontok.Reader) Guest {
	var g Guest
	r.Object(func(k string) {
		switch k {
		case "name":
			g.Name = r.Str()
		case "ip":
			g.IP = r.Addr()
		case "ip6":
			g.IP6 = r.Addr()
		case "hostname":
			g.Hostname = r.Str()
		case "aliases":
			g.Aliases = r.Strs()
		case "netns":
			g.Netns = r.Str()
		case "uts":
			g.UTS = r.Str()
		case "owned":
			g.Owned = r.Bool()
		case "netns_id":
			g.NetnsID = r.Uint()
		case "mount_ns":
			g.MountNS = r.Uint()
		case "port":
			g.Port = r.Str()
		case "key":
			g.Key = r.Str()
		case "process":
			p := ReadProcess(r)
			g.Process = &p
		case "phase":
			g.Phase = Phase(r.Str())
		case "creator":
			p := ReadProcess(r)
			g.Creator = &p
		case "problem":
			g.Problem = r.Str()
		default:
			r.Fail()
		}
	})
	return g
}

// ReadProcess reads a Process as AppendJSON writes it.
func ReadProcess(r *jsontok.Reader) Process {
	var p Process
	r.Object(func(k string) {
		switch k {
		case "pid":
			p.PID = int(r.Int())
		case "start":
			p.Start = r.Uint()
		case "pidns":
			p.PIDNS = r.Uint()
		default:
			r.Fail()
		}
	})
	return p
}

func readPort(r *jsontok.Reader) Port {
	var p Port
	port := func() uint16 {
		v := r.Uint()
		if v > math.MaxUint16 {
			r.Fail() // encoding/json's error
		}
		return uint16(v)
	}
	r.Object(func(k string) {
		switch k {
		case "host_port":
			p.HostPort = port()
		case "guest":
			p.Guest = r.Str()
		case "guest_port":
			p.GuestPort = port()
		case "proto":
			p.Proto = r.Str()
		default:
			r.Fail()
		}
	})
	return p
}

// readGateway reads a gateway record as encoding/json writes it, and reports false for
// anything else.
func readGateway(data []byte) (GatewayState, bool) {
	var g GatewayState
	r := jsontok.NewReader(data)
	r.Object(func(k string) {
		switch k {
		case "plan":
			g.Plan = r.Prefix()
		case "plan6":
			g.Plan6 = r.Prefix()
		case "phase":
			g.Phase = Phase(r.Str())
		case "creator":
			g.Creator = ReadProcess(r)
		case "created":
			g.Created = r.Time()
		case "no_firewall":
			g.NoFirewall = r.Bool()
		case "host_forwarding":
			g.HostForwarding = r.Str()
		case "dns":
			g.DNS = r.Str()
		case "netns_id":
			g.NetnsID = r.Uint()
		default:
			r.Fail()
		}
	})
	return g, r.Done()
}
