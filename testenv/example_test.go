package testenv_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/testenv"
)

// A test of a three-node service: start one node per guest, isolate one node, check that the
// network is cut exactly there and that the service notices, then heal.
//
// In a real test file this is the body of func TestIsolatedNode(t *testing.T); t is nil here
// only so that the example compiles without running.
func Example() {
	var t *testing.T

	t.Parallel()
	env := testenv.New(t) // skips unless root; removes everything when the test ends
	ctx := context.Background()

	// Guests n1, n2, n3 on 172.18.0.1-3. Inside them the names resolve through /etc/hosts,
	// so the nodes can be told their peers by name.
	var peers []string
	for i := 1; i <= 3; i++ {
		g := env.Guest(fmt.Sprintf("n%d", i), fmt.Sprintf("172.18.0.%d", i))
		peers = append(peers, g.Name()+":7000")
	}
	for i, g := range env.Guests() {
		g.Start(ctx, "./mynode", "--id", fmt.Sprint(i+1), "--peers", strings.Join(peers, ","))
	}

	p := env.Isolate("n1")
	env.MustNotReach("n1", "n2")
	env.MustReach("n2", "n3")
	// Every ordered pair at once, one way each, against the partition's own rule.
	env.MustMatch(func(src, dst string) bool { return !p.Blocks(src, dst) })

	// The isolated node should now refuse to serve; ask it from inside n1.
	out, err := env.Lookup("n1").Run(ctx, "./myctl", "--addr", "n1:7000", "put", "k", "v")
	if err == nil {
		t.Errorf("an isolated node accepted a write: %s", out)
	}

	env.Heal()
	env.MustReach("n1", "n2")
}
