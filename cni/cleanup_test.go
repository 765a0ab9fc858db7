package cni_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/pontoon-dev/pontoon/internal/statefile"
	"github.com/pontoon-dev/pontoon/netsetup"
)

// TestStateGoesWithTheChain: pontoon-cni's lock file does not keep pontoon's state directory
// once everything is gone: gateway down removes it after the plugin's bridge was destroyed,
// and gc after an ADD that found no gateway. An ADD under way (holding the lock) keeps it.
func TestStateGoesWithTheChain(t *testing.T) {
	r := newRig(t)
	state, _ := r.sb.Env.Dirs()
	stateLeft := func(when string) {
		t.Helper()
		if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
			ents, _ := os.ReadDir(state)
			var left []string
			for _, e := range ents {
				left = append(left, e.Name())
			}
			t.Fatalf("%s: state directory %s is still there with %v", when, state, left)
		}
	}

	a := rtConf("gone-a", r.netns("a"))
	l := r.list(nil)
	if _, err := r.add(l, a); err != nil {
		t.Fatal(err)
	}
	must(t, r.del(l, a))
	r.destroyBridge("pods")
	must(t, netsetup.GatewayDown(r.sb.Env, false))
	stateLeft("after DEL, bridge destroy and gateway down")

	// An ADD that finds no gateway and may not bring one up fails; gc then finds nothing
	// to collect, and nothing is left.
	if _, err := r.add(r.list(map[string]any{"createBridge": false}), a); err == nil {
		t.Fatal("ADD without a gateway and without createBridge succeeded")
	}
	if _, err := os.Stat(filepath.Join(state, netsetup.CNILock)); err != nil {
		t.Fatalf("the failed ADD made no lock file (%v): this test no longer tests the leak", err)
	}
	if _, err := netsetup.GC(r.sb.Env); err != nil {
		t.Fatal(err)
	}
	stateLeft("after a failed ADD and gc")

	// While an ADD holds the lock, the directory stays, and so does the lock it holds.
	held, err := statefile.LockShared(filepath.Join(state, netsetup.CNILock))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if _, err := netsetup.GC(r.sb.Env); err != nil {
		t.Fatal(err)
	}
	if !statefile.Still(held, filepath.Join(state, netsetup.CNILock)) {
		t.Fatal("gc removed the lock file an ADD holds")
	}
	held.Close()
	if _, err := netsetup.GC(r.sb.Env); err != nil {
		t.Fatal(err)
	}
	stateLeft("after the ADD released its lock and gc")
}
