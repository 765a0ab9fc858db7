// Command kvctl talks to one node of the kvstore example cluster.
//
//	kvctl [--addr host:port] [--timeout 5s] put KEY VALUE
//	kvctl [--addr host:port] get KEY
//	kvctl [--addr host:port] health
//	kvctl [--addr host:port] check [-n 10] [-prefix check]
//
// Exit status: 0 success, 1 failure, 2 usage error, 3 the node has no
// quorum (HTTP 503), 4 key not found.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/pontoon-dev/pontoon/examples/kvstore"
)

const usage = `usage: kvctl [--addr host:port] [--timeout d] COMMAND
commands:
  put KEY VALUE              store VALUE under KEY
  get KEY                    print KEY's latest value
  health                     show which nodes the node reaches
  check [-n N] [-prefix P]   write N keys, read them back, print a summary
`

func main() {
	flag.Usage = func() { fmt.Fprint(os.Stderr, usage); flag.PrintDefaults() }
	addr := flag.String("addr", "127.0.0.1:7000", "node to talk to, host:port")
	timeout := flag.Duration("timeout", 5*time.Second, "bound on the whole command")
	flag.Parse()
	args := flag.Args()
	if len(args) == 0 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	c := kvstore.NewClient(*addr, nil)
	os.Exit(run(ctx, c, args[0], args[1:]))
}

func run(ctx context.Context, c *kvstore.Client, cmd string, args []string) int {
	switch cmd {
	case "put":
		if len(args) != 2 {
			return usageErr("put takes KEY VALUE")
		}
		e, err := c.Put(ctx, args[0], args[1])
		if err != nil {
			return failed(err)
		}
		fmt.Printf("ok %s=%q version=%d writer=%d\n", e.Key, e.Value, e.Version, e.Writer)
	case "get":
		if len(args) != 1 {
			return usageErr("get takes KEY")
		}
		e, err := c.Get(ctx, args[0])
		if err != nil {
			return failed(err)
		}
		fmt.Printf("%s=%q version=%d writer=%d\n", e.Key, e.Value, e.Version, e.Writer)
	case "health":
		if len(args) != 0 {
			return usageErr("health takes no arguments")
		}
		h, err := c.Health(ctx)
		if err != nil {
			return failed(err)
		}
		state := "quorum"
		if !h.Quorum {
			state = "NO quorum"
		}
		fmt.Printf("node %d of %d at %s: %s, reaches %d of %d nodes\n", h.ID, h.Nodes, h.Addr, state, h.Reachable, h.Nodes)
		for _, p := range h.Peers {
			switch {
			case p.Self:
				fmt.Printf("  node %d %s self\n", p.ID, p.Addr)
			case p.Reachable:
				fmt.Printf("  node %d %s reachable\n", p.ID, p.Addr)
			default:
				fmt.Printf("  node %d %s unreachable: %s\n", p.ID, p.Addr, p.Error)
			}
		}
	case "check":
		fs := flag.NewFlagSet("check", flag.ContinueOnError)
		n := fs.Int("n", 10, "number of keys to write and read back")
		prefix := fs.String("prefix", "check", "key prefix")
		if err := fs.Parse(args); err != nil {
			return 2
		}
		if fs.NArg() > 0 {
			return usageErr(fmt.Sprintf("check takes flags only, got %q", fs.Args()))
		}
		r, err := kvstore.Check(ctx, c, *n, *prefix)
		if r.Keys == 0 {
			return usageErr(err.Error())
		}
		fmt.Println(r)
		if err != nil {
			return 1
		}
	default:
		return usageErr(fmt.Sprintf("unknown command %q", cmd))
	}
	return 0
}

func usageErr(msg string) int {
	fmt.Fprintf(os.Stderr, "kvctl: %s\n%s", msg, usage)
	return 2
}

func failed(err error) int {
	fmt.Fprintln(os.Stderr, "kvctl:", err)
	switch {
	case errors.Is(err, kvstore.ErrNoQuorum):
		return 3
	case errors.Is(err, kvstore.ErrNotFound):
		return 4
	}
	return 1
}
