package netsetup

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestReadsLeaveNoTrace: reading the state of a host where pontoon never ran (a status, a
// --for restorer whose bridge went, a hook's poststop for a container pontoon never
// attached) finds nothing and creates nothing.
func TestReadsLeaveNoTrace(t *testing.T) {
	env := Env{StateDir: filepath.Join(t.TempDir(), "state")}
	if bs, err := Bridges(env); err != nil || len(bs) != 0 {
		t.Errorf("Bridges: %v, %v; want none", bs, err)
	}
	if _, err := BridgeMembers(env, "b1"); !errors.Is(err, ErrNoBridge) {
		t.Errorf("BridgeMembers: %v; want ErrNoBridge", err)
	}
	if _, err := GetBridge(env, "b1"); !errors.Is(err, ErrNoBridge) {
		t.Errorf("GetBridge: %v; want ErrNoBridge", err)
	}
	if st, err := Status(env); err != nil || st.Gateway != nil || len(st.Bridges) != 0 {
		t.Errorf("Status: %+v, %v; want nothing", st, err)
	}
	if ls, err := UserLinks(env); err != nil || len(ls) != 0 {
		t.Errorf("UserLinks: %v, %v; want none", ls, err)
	}
	if err := DelGuestByKey(env, "c0ffee"); err != nil {
		t.Errorf("DelGuestByKey: %v", err)
	}
	if _, err := os.Stat(env.StateDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the state directory exists after reads only (%v)", err)
	}
}
