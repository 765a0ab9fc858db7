package netsetup_test

import (
	"errors"
	"regexp"
	"testing"

	"github.com/pontoon-dev/pontoon/internal/nftwire"
	"github.com/pontoon-dev/pontoon/netsetup"
	"golang.org/x/sys/unix"
)

var slotHint = regexp.MustCompile(`state next-slot:\n\d+\n\n`)

// TestBridgeCreateBatchRefused: bridge create whose nftables transaction the kernel refuses in
// its middle fails with the kernel's reason and rolls back to the chain as it was, from which
// the same create then succeeds.
func TestBridgeCreateBatchRefused(t *testing.T) {
	s := newChain(t, netsetup.GatewayOptions{})
	before := snapshot(t, s)
	nftwire.SpoilBatch.Store(1)
	t.Cleanup(func() { nftwire.SpoilBatch.Store(0) })
	_, err := netsetup.CreateBridge(s.Env, "b", netsetup.BridgeOptions{})
	if !errors.Is(err, unix.EINVAL) {
		t.Fatalf("bridge create with a refused batch: %v, want the kernel's EINVAL", err)
	}
	wantErr(t, "bridge create with a refused batch", err, "nftables", "invalid argument")
	if left := nftwire.SpoilBatch.Load(); left != 0 {
		t.Fatalf("bridge create sent no nftables batch to refuse (%d left)", left)
	}
	// The slot search's starting point may move on; nothing else may change.
	after := slotHint.ReplaceAllString(snapshot(t, s), "")
	if before = slotHint.ReplaceAllString(before, ""); after != before {
		t.Errorf("bridge create with a refused batch changed the chain:\nbefore\n%s\nafter\n%s", before, after)
	}
	mustBridge(t, s.Env, "b", netsetup.BridgeOptions{})
}
