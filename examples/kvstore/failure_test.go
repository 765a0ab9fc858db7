package kvstore_test

// This file is an integration test of the kvstore example under a real network partition,
// written with pontoon's testenv package. It is meant to be copied: replace kvnode with your
// service and the assertions with your system's promises.
//
// It needs root or, as a normal user, user namespaces (testenv then runs the test binary in
// one of its own); without either it skips. Run it with
//
//	go test -run TestPartition -count=3 ./examples/kvstore/

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/examples/kvstore"
	"github.com/pontoon-dev/pontoon/testenv"
)

const (
	nodePort = 7000
	// peerTimeout is kvnode's --timeout. It is generous because the test machine may be busy
	// with other tests: a majority that answers slowly must still count as a majority. A
	// round returns as soon as a majority answered, so only requests that cannot reach a
	// majority (the minority's) wait this long.
	peerTimeout = time.Second
)

// TestPartitionMinorityRefusesWritesMajorityLosesNone splits a three-node cluster into a
// majority {n1, n2} and a minority {n3}, and checks the store's two promises: the minority
// refuses writes (HTTP 503, nothing written) while the majority keeps accepting them, and
// after the partition heals no acknowledged write is lost.
func TestPartitionMinorityRefusesWritesMajorityLosesNone(t *testing.T) {
	// Each test gets its own sandboxed network, so tests may run in parallel.
	t.Parallel()
	// New first: it skips the test when not root, before any time is spent building.
	env := testenv.New(t)
	bin := buildCommands(t)

	// One guest per node. Guests get fixed addresses and hostnames, and processes in them
	// see an /etc/hosts naming every guest, so the nodes can find their peers by name.
	names := []string{"n1", "n2", "n3"}
	var peers []string
	for i, name := range names {
		env.Guest(name, fmt.Sprintf("172.18.0.%d", i+1))
		peers = append(peers, fmt.Sprintf("%s:%d", name, nodePort))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i, g := range env.Guests() {
		// Output is captured and logged at the end of the test, so a failing run shows
		// what every node saw (quorum lost, requests rejected, ...).
		g.Start(ctx, filepath.Join(bin, "kvnode"), "--id", fmt.Sprint(i+1),
			"--peers", strings.Join(peers, ","), "--timeout", peerTimeout.String())
	}

	// The test process runs in the real host's network, where the guests' addresses do not
	// exist. env.HTTPClient dials from the bridge namespace instead: it sees every guest and
	// is not cut by partitions, like an operator's console next to the switch.
	client := map[string]*kvstore.Client{}
	for _, g := range env.Guests() {
		client[g.Name()] = kvstore.NewClient(g.Addr(nodePort), env.HTTPClient())
	}
	// Start-up is asynchronous: wait until every node serves with a quorum before testing.
	for _, name := range names {
		waitQuorum(ctx, t, client[name], true)
	}

	// acked holds, per key, the last value a node acknowledged: what must survive.
	acked := map[string]string{}
	put := func(node, key, value string) error {
		_, err := client[node].Put(ctx, key, value)
		if err == nil {
			acked[key] = value
		}
		return err
	}

	// Some data before the partition, written through every node.
	for i := range 9 {
		node, key := names[i%3], fmt.Sprintf("key-%d", i)
		if err := put(node, key, "before-"+node); err != nil {
			t.Fatalf("write before the partition: %v", err)
		}
	}

	// Split the majority from the minority. Disjoint lists every guest exactly once.
	p := env.Disjoint([]string{"n1", "n2"}, []string{"n3"})
	// Prove the cut is in effect, and exactly there, before drawing conclusions from the
	// service's behaviour.
	env.MustMatch(func(src, dst string) bool { return !p.Blocks(src, dst) })
	env.MustNotReach("n3", "n1")
	env.MustReach("n1", "n2")

	// The minority must refuse writes. The error must say "no quorum" in the query phase:
	// the documented promise that nothing was written, so these keys keep their values.
	for i := range 2 {
		key := fmt.Sprintf("key-%d", i)
		err := put("n3", key, "minority")
		var nq *kvstore.NoQuorumError
		if !errors.As(err, &nq) || nq.Phase != kvstore.PhaseQuery {
			t.Fatalf("write of %s through the minority: %v; want HTTP 503 no quorum in phase %q", key, err, kvstore.PhaseQuery)
		}
	}
	if _, err := client["n3"].Get(ctx, "key-0"); !errors.Is(err, kvstore.ErrNoQuorum) {
		t.Errorf("read through the minority: %v; want no quorum", err)
	}
	// The same answer for a user of the command-line client inside the minority's guest:
	// kvctl exits with status 3 when the node has no quorum.
	out, err := env.Lookup("n3").Run(ctx, filepath.Join(bin, "kvctl"), "--addr", fmt.Sprintf("n3:%d", nodePort), "put", "key-0", "minority")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Errorf("kvctl put in the minority: %v; want exit status 3 (no quorum)\n%s", err, out)
	}

	// The majority keeps accepting writes: overwrite old keys (including those the minority
	// tried) and add new ones, through both majority nodes.
	for i := range 12 {
		node, key := names[i%2], fmt.Sprintf("key-%d", i)
		if err := put(node, key, "during-"+node); err != nil {
			t.Fatalf("write through the majority during the partition: %v", err)
		}
	}

	env.Heal()
	env.MustMatch(func(src, dst string) bool { return true })
	waitQuorum(ctx, t, client["n3"], true)

	// No acknowledged write is lost: every key reads back with its last acknowledged value,
	// whichever node is asked, the former minority included.
	for key, want := range acked {
		for _, node := range names {
			e, err := client[node].Get(ctx, key)
			switch {
			case err != nil:
				t.Errorf("read %s through %s after heal: %v", key, node, err)
			case e.Value != want:
				t.Errorf("read %s through %s after heal: %q, want the last acknowledged %q", key, node, e.Value, want)
			}
		}
	}
	// And the healed minority serves writes again.
	if err := put("n3", "after-heal", "ok"); err != nil {
		t.Errorf("write through n3 after heal: %v", err)
	}
}

// buildCommands builds kvnode and kvctl into a directory of the test and returns it. Building
// from the test keeps it self-contained: `go test` is all a user runs. KVSTORE_BIN names a
// directory where they are built already, for an account that has no Go build cache of its
// own (the rootless run of `make test`).
func buildCommands(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("KVSTORE_BIN"); dir != "" {
		for _, c := range []string{"kvnode", "kvctl"} {
			if _, err := os.Stat(filepath.Join(dir, c)); err != nil {
				t.Fatalf("KVSTORE_BIN: %v; build them with go build -o %s ./examples/kvstore/cmd/...", err, dir)
			}
		}
		return dir
	}
	dir := t.TempDir()
	// go test puts the go command on PATH; `go test -exec sudo` may lose it, so fall back to
	// the toolchain the test was built with.
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(gobin, "build", "-o", dir+string(os.PathSeparator),
		"github.com/pontoon-dev/pontoon/examples/kvstore/cmd/kvnode",
		"github.com/pontoon-dev/pontoon/examples/kvstore/cmd/kvctl")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build kvnode and kvctl: %v\n%s", err, out)
	}
	return dir
}

// waitQuorum polls the node's health until it reports quorum == want. The context bounds the
// wait; nothing here measures time.
func waitQuorum(ctx context.Context, t *testing.T, c *kvstore.Client, want bool) {
	t.Helper()
	var last string
	for {
		h, err := c.Health(ctx)
		if err == nil && h.Quorum == want {
			return
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("reaches %d of %d nodes", h.Reachable, h.Nodes)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("node %s: quorum never became %v (last: %s)", c.Addr(), want, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
