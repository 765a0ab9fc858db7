// Command kvnode runs one node of the kvstore example cluster.
//
//	kvnode --id 1 --peers 172.18.0.1:7000,172.18.0.2:7000,172.18.0.3:7000
//
// --peers lists EVERY node, this one included, in the same order on every
// node; --id is this node's 1-based position in that list. The node listens
// on --listen, by default ":<port of its own --peers entry>", and logs one
// short line per notable event to stdout. SIGINT or SIGTERM stops it.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/pontoon-dev/pontoon/examples/kvstore"
)

func main() {
	id := flag.Int("id", 0, "this node's 1-based position in --peers (required)")
	peers := flag.String("peers", "", "comma-separated host:port of EVERY node, this one included, same order on every node (required)")
	listen := flag.String("listen", "", "address to listen on (default \":<port of this node's --peers entry>\")")
	timeout := flag.Duration("timeout", kvstore.DefaultTimeout, "timeout of each request to a peer; a node that cannot reach a majority within it answers 503")
	probe := flag.Duration("probe", kvstore.DefaultProbe, "interval of background peer probes that log reachability changes (0 disables)")
	flag.Parse()
	if flag.NArg() > 0 {
		fail(2, fmt.Errorf("unexpected arguments %q; kvnode takes flags only, see -h", flag.Args()))
	}
	list, err := kvstore.ParsePeers(*peers)
	if err != nil {
		fail(2, fmt.Errorf("flag --peers: %w", err))
	}
	node, err := kvstore.NewNode(kvstore.Config{ID: *id, Peers: list, Timeout: *timeout, Probe: *probe})
	if err != nil {
		fail(2, err)
	}
	addr := *listen
	if addr == "" {
		addr = node.DefaultListen()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fail(1, fmt.Errorf("listen on %s: %w", addr, err))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := node.Serve(ctx, ln); err != nil {
		fail(1, err)
	}
}

func fail(code int, err error) {
	fmt.Fprintln(os.Stderr, "kvnode:", err)
	os.Exit(code)
}
