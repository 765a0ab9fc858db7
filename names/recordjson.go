package names

import (
	"encoding/json"

	"github.com/pontoon-dev/pontoon/internal/jsontok"
	"github.com/pontoon-dev/pontoon/netsetup"
)

// Every `bridge create` and `guest add` reads the bridge's server record (Ensure), each in a
// new process, where encoding/json would first prepare the record's types by reflection.
// The record is written and read here instead, byte for byte as encoding/json has it
// (TestRecordJSONSame); a file this does not recognise goes to encoding/json.

func (r *Record) marshal() ([]byte, error) {
	w := jsontok.Writer{B: []byte{'{'}}
	w.Str("bridge", r.Bridge)
	w.Key("process")
	w.B = r.Process.AppendJSON(w.B)
	if r.Detached {
		w.Bool("detached", true)
	}
	w.Str("addr", r.Addr)
	w.Time("started", r.Started)
	w.Raw("}")
	if w.Bad {
		return json.Marshal(r) // it says what is wrong
	}
	return w.B, nil
}

func (r *Record) unmarshal(data []byte) error {
	var fast Record
	rd := jsontok.NewReader(data)
	rd.Object(func(k string) {
		switch k {
		case "bridge":
			fast.Bridge = rd.Str()
		case "process":
			fast.Process = netsetup.ReadProcess(rd)
		case "detached":
			fast.Detached = rd.Bool()
		case "addr":
			fast.Addr = rd.Str()
		case "started":
			fast.Started = rd.Time()
		default:
			rd.Fail()
		}
	})
	if rd.Done() {
		*r = fast
		return nil
	}
	*r = Record{}
	return json.Unmarshal(data, r)
}
