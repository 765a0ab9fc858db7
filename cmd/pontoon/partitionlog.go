package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/pontoon-dev/pontoon/eventlog"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/urfave/cli/v2"
)

func partitionLogCommand() *cli.Command {
	return &cli.Command{
		Name:     "log",
		Category: catOther,
		Usage:    "show what was done to the bridge: every apply, heal, impairment, restore and --for expiry, who asked and how long the commit took",
		Flags: []cli.Flag{
			bridgeFlag(),
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing new events until Ctrl-C"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per line"},
		},
		Action: partitionLog,
	}
}

func partitionLog(c *cli.Context) error {
	name, err := bridgeName(c)
	if err != nil {
		return err
	}
	dir := env(c).BridgeDataDir(name)
	noBridge := fmt.Errorf("bridge %q does not exist; `pontoon bridge list` shows the bridges", name)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		// The first partition change makes the directory; a bridge without one yet has an
		// empty log. A follower makes it, to hold the log open from the start (see Follow).
		if c.Bool("follow") {
			err = netsetup.MakeBridgeDataDir(env(c), name)
		} else {
			_, err = netsetup.BridgeMembers(env(c), name)
		}
		if errors.Is(err, netsetup.ErrNoBridge) {
			return noBridge
		} else if err != nil {
			return err
		}
	}
	print := func(w io.Writer, e eventlog.Event) error {
		if c.Bool("json") {
			b, err := json.Marshal(e)
			if err != nil {
				return err
			}
			_, err = w.Write(append(b, '\n'))
			return err
		}
		_, err := io.WriteString(w, formatEvent(e))
		return err
	}
	if !c.Bool("follow") {
		events, err := eventlog.Read(dir)
		if err != nil {
			return err
		}
		return buffered(func(w io.Writer) error {
			for _, e := range events {
				if err := print(w, e); err != nil {
					return err
				}
			}
			return nil
		})
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := bufio.NewWriter(os.Stdout)
	// Every event is flushed at once: whoever follows is waiting for it.
	err = eventlog.Follow(ctx, dir, 0, func(e eventlog.Event) error {
		if err := print(out, e); err != nil {
			return err
		}
		return out.Flush()
	})
	if errors.Is(err, eventlog.ErrGone) {
		// Its last events are out; the bridge's next life is another log.
		fmt.Fprintf(os.Stderr, "bridge %s was destroyed: its log ends here\n", name)
		return nil
	}
	return err
}

// formatEvent renders one event as a line for people:
//
//	21:04:05.123  apply    cli       1534µs  isolate n1 --mode reject  (generation=3 blocked=4)
func formatEvent(e eventlog.Event) string {
	var b strings.Builder
	commit := "-"
	if e.CommitUS > 0 {
		commit = fmt.Sprintf("%dµs", e.CommitUS)
	}
	fmt.Fprintf(&b, "%s  %-7s  %-8s  %8s  %s", e.Time.Local().Format("15:04:05.000"), e.Kind, e.Source, commit, e.What)
	if len(e.Fields) > 0 {
		keys := make([]string, 0, len(e.Fields))
		for k := range e.Fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			keys[i] = k + "=" + e.Fields[k]
		}
		fmt.Fprintf(&b, "  (%s)", strings.Join(keys, " "))
	}
	if e.Error != "" {
		fmt.Fprintf(&b, "  FAILED: %s", e.Error)
	}
	b.WriteByte('\n')
	return b.String()
}
