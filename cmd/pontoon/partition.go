package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/pontoon-dev/pontoon/partition"
	"github.com/urfave/cli/v2"
)

// Every partition subcommand takes the same flags, so they can be written after the groups
// too (`pontoon partition disjoint a b -- c --mode reject`).
func partitionFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "bridge", Usage: "the bridge to act on (default: $PONTOON_BRIDGE, set inside bridge children)", EnvVars: []string{"PONTOON_BRIDGE"}},
		&cli.StringFlag{Name: "mode", Usage: "drop (peers see timeouts) or reject (TCP reset / ICMP unreachable: clients fail fast)", Value: "drop"},
		&cli.BoolFlag{Name: "cut", Usage: "reset TCP connections already open across the new partition instead of leaving them stalled"},
		&cli.DurationFlag{Name: "for", Usage: "restore the previous state after this long (and on Ctrl-C)"},
	}
}

func partitionCommands() *cli.Command {
	spec := func(name, args, usage string) *cli.Command {
		return &cli.Command{Name: name, ArgsUsage: args, Usage: usage, Flags: partitionFlags(), Action: applySpec(name)}
	}
	impair := func(name, setting, args, usage string) *cli.Command {
		return &cli.Command{Name: name, ArgsUsage: args, Usage: usage, Flags: partitionFlags(), Action: applyImpairment(setting)}
	}
	return &cli.Command{
		Name:  "partition",
		Usage: "split, cut and degrade the network between the guests of a bridge (atomically)",
		Description: "Partitions (guests by name or IP; groups separated by --):\n" + indent(partition.SpecUsage) +
			"\n\nImpairments:\n" + indent(partition.ImpairUsage),
		Subcommands: []*cli.Command{
			spec("isolate", "GUEST [GUEST..]", "cut each listed guest off from all others, each other included"),
			spec("disjoint", "A B -- C D [-- ..]", "groups sharing no guest; every guest exactly once"),
			spec("split", "A B -- B C [-- ..]", "groups may overlap; unlisted guests are isolated"),
			spec("block", "A [B..] -- C [D..]", "one way: packets from the first group to the second are lost"),
			spec("random-halves", "[SEED]", "two random halves"),
			spec("random-node", "[SEED]", "isolate one random guest"),
			spec("bridge", "[SEED]", "two random halves sharing one guest"),
			spec("ring", "[SEED]", "each guest sees a different majority"),
			spec("fullmesh", "", "every guest reaches every other one (keeps impairments)"),
			{Name: "heal", Usage: "remove every partition and impairment of the bridge", Flags: partitionFlags()[:1], Action: healBridge},
			impair("loss", "loss", "PCT GUEST..|SRC.. -- DST..", "lose PCT% of packets (works without netem)"),
			impair("rate", "rate", "RATE GUEST..|SRC.. -- DST..", "limit bandwidth, e.g. 1mbit"),
			impair("delay", "delay", "DURATION GUEST..|SRC.. -- DST..", "add latency (needs netem in the kernel)"),
			impair("impair", "", "SETTING=VALUE.. GUEST..|SRC.. -- DST..", "several impairments at once, e.g. loss=5% delay=50ms jitter=10ms"),
			{Name: "status", Usage: "show blocked pairs, impairments and since when", Flags: append(partitionFlags()[:1], jsonFlag), Action: partitionStatus},
		},
	}
}

func indent(s string) string { return "   " + strings.ReplaceAll(s, "\n", "\n   ") }

func target(c *cli.Context) (partition.Target, error) {
	name := c.String("bridge")
	if name == "" {
		return partition.Target{}, usagef("no bridge given: pass --bridge NAME (inside a bridge child PONTOON_BRIDGE is set for you)")
	}
	t, err := partition.ForBridge(env(c), name)
	if err != nil {
		return t, err
	}
	// A `--for` whose process died before restoring is finished by the next command.
	if restored, err := partition.RestoreExpired(t); err != nil {
		return t, err
	} else if restored {
		fmt.Fprintln(os.Stderr, "pontoon: restored the state an earlier --for had replaced (its process had gone)")
	}
	return t, nil
}

func mode(c *cli.Context) (partition.Mode, error) {
	m, err := partition.ParseMode(c.String("mode"))
	if err != nil {
		return "", usagef("--mode: %v", err)
	}
	return m, nil
}

// current returns the bridge's recorded state, so a new partition keeps the impairments and
// an impairment keeps the partition.
func current(t partition.Target) (partition.State, error) { return partition.Recorded(t) }

func applySpec(kind string) cli.ActionFunc {
	return func(c *cli.Context) error {
		t, err := target(c)
		if err != nil {
			return err
		}
		words := append([]string{kind}, c.Args().Slice()...)
		if kind == "ring" {
			words[0] = "majorities-ring"
		}
		p, err := partition.ParseSpec(words, t.Guests)
		if err != nil {
			return usagef("%v", err)
		}
		m, err := mode(c)
		if err != nil {
			return err
		}
		st, err := current(t)
		if err != nil {
			return err
		}
		st.Partition, st.Mode, st.Cut = p, m, c.Bool("cut")
		return apply(c, t, st, p.Description)
	}
}

func applyImpairment(setting string) cli.ActionFunc {
	return func(c *cli.Context) error {
		t, err := target(c)
		if err != nil {
			return err
		}
		words := c.Args().Slice()
		if setting != "" {
			if len(words) == 0 {
				return usagef("%s needs a value and guests, e.g. `pontoon partition %s %s`", setting, setting, c.Command.ArgsUsage)
			}
			words = append([]string{setting + "=" + words[0]}, words[1:]...)
		}
		st, err := current(t)
		if err != nil {
			return err
		}
		next, changed, err := st.Impair(words, t.Guests)
		if err != nil {
			return usagef("%v", err)
		}
		desc := make([]string, len(changed))
		for i, im := range changed {
			desc[i] = im.String()
		}
		return apply(c, t, next, strings.Join(desc, "; "))
	}
}

func apply(c *cli.Context, t partition.Target, st partition.State, desc string) error {
	d := c.Duration("for")
	if d < 0 {
		return usagef("--for: %s is negative; give a positive duration such as 30s", d)
	}
	if d == 0 {
		if err := partition.Apply(t, st); err != nil {
			return explain(err)
		}
		return report(t, desc)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- partition.ApplyFor(ctx, t, st, d) }()
	fmt.Printf("%s for %s (Ctrl-C restores now)\n", desc, d)
	err := <-done
	if err != nil && !errors.Is(err, context.Canceled) {
		return explain(err)
	}
	fmt.Println("previous state restored")
	return nil
}

// explain turns a missing kernel feature into a plain statement.
func explain(err error) error {
	var fe *partition.FeatureError
	if errors.As(err, &fe) {
		return fmt.Errorf("%v\nthis kernel cannot do that; use a kernel that has it (Debian's stock kernel does; `make test-vm` runs the suite on one)", err)
	}
	return err
}

func report(t partition.Target, desc string) error {
	rec, err := partition.Status(t)
	if err != nil {
		return err
	}
	verified := "in effect"
	if rec.Kernel != nil && !rec.Kernel.InEffect {
		verified = "NOT in effect: " + rec.Kernel.Detail
	}
	fmt.Printf("%s: %d blocked pair(s), %d impairment(s), committed in %d µs, %s\n", desc, len(rec.Blocked), len(rec.Impairments), rec.CommitMicros, verified)
	return nil
}

func healBridge(c *cli.Context) error {
	t, err := target(c)
	if err != nil {
		return err
	}
	if err := partition.Heal(t); err != nil {
		return err
	}
	fmt.Println("healed: every guest reaches every other one, no impairments")
	return nil
}

func partitionStatus(c *cli.Context) error {
	t, err := target(c)
	if err != nil {
		return err
	}
	rec, err := partition.Status(t)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(rec)
	}
	if len(rec.Blocked) == 0 && len(rec.Impairments) == 0 {
		fmt.Println("fullmesh: every guest reaches every other one, no impairments")
		return nil
	}
	fmt.Printf("%s (mode %s", rec.Description, rec.Mode)
	if rec.Cut {
		fmt.Print(", cut")
	}
	fmt.Printf(", applied %s)\n", rec.AppliedAt.Local().Format(time.TimeOnly))
	if !rec.Expires.IsZero() {
		fmt.Printf("restores at %s\n", rec.Expires.Local().Format(time.TimeOnly))
	}
	if rec.Kernel != nil && !rec.Kernel.InEffect {
		fmt.Printf("WARNING: not in effect in the kernel: %s\n", rec.Kernel.Detail)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	if len(rec.Blocked) > 0 {
		fmt.Fprintln(w, "BLOCKED\tFROM\tTO\tSINCE")
		for _, b := range rec.Blocked {
			fmt.Fprintf(w, "\t%s (%s)\t%s (%s)\t%s\n", b.Src, b.SrcIP, b.Dst, b.DstIP, b.Since.Local().Format(time.TimeOnly))
		}
	}
	if len(rec.Impairments) > 0 {
		fmt.Fprintln(w, "IMPAIRED\tWHERE\tWHAT\tSINCE")
		for _, im := range rec.Impairments {
			fmt.Fprintf(w, "\t%s\t%s\t%s\n", im.Target(), im.String(), im.Since.Local().Format(time.TimeOnly))
		}
	}
	return w.Flush()
}
