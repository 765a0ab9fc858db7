package netsetup

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/pontoon-dev/pontoon/internal/statefile"
)

// A bridge's record read again comes from memory only while its file is the version this
// process last saw: a record another process wrote, or a removed one, is read from disk, and
// changing a record that was handed out changes nothing of what is read next.
func TestBridgeRecordCache(t *testing.T) {
	st := store{dir: t.TempDir()}
	if err := os.MkdirAll(filepath.Join(st.dir, "bridges"), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { forgetBridge(st.bridgeFile("b")) })
	p := &Process{PID: 1, Start: 2}
	want := &BridgeState{Name: "b", Phase: PhaseReady, Ports: []Port{{HostPort: 80, Guest: "g", GuestPort: 8080, Proto: TCP}},
		Guests: []Guest{{Name: "g", IP: netip.MustParseAddr("172.18.0.1"), Phase: PhaseReady, Process: p}}}
	if err := st.writeBridge("b", want); err != nil {
		t.Fatal(err)
	}
	got, err := st.bridge("b")
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("read back %+v, %v; want %+v", got, err, want)
	}
	got.Guests[0].Name, got.Guests[0].Process.PID, got.Ports[0].HostPort = "x", 9, 1
	if again, _ := st.bridge("b"); !reflect.DeepEqual(again, want) {
		t.Fatalf("a change to a record handed out showed in the next read: %+v", again)
	}
	// Another process replaces the record.
	other := &BridgeState{Name: "b", Phase: PhaseRemoving}
	if err := statefile.WriteJSON(st.bridgeFile("b"), other); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.bridge("b"); !reflect.DeepEqual(got, other) {
		t.Fatalf("after another writer: %+v, want %+v", got, other)
	}
	if err := os.Remove(st.bridgeFile("b")); err != nil {
		t.Fatal(err)
	}
	if got, err := st.bridge("b"); got != nil || err != nil {
		t.Fatalf("after removal: %+v, %v; want none", got, err)
	}
}
