// Command pontoon-capture records guests' traffic into a pcapng file for `pontoon capture`,
// which checks the command line and then runs it. Only this binary links the pcapng library:
// its packet-layer tables cost several milliseconds at start-up, which every pontoon command
// and the OCI hook would otherwise pay.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/pontoon-dev/pontoon/capture"
	"github.com/pontoon-dev/pontoon/internal/advice"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/partition"
)

// usageError is refused input: the exit status is 2, as for pontoon's other commands.
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func main() {
	if len(os.Args) == 3 && os.Args[1] == copierArg {
		os.Exit(copierMain(os.Args[2]))
	}
	err := run(os.Args[1:])
	if err == nil {
		return
	}
	var ue usageError
	advice.Exit(err, errors.As(err, &ue))
}

// run takes `-w FILE [--duration D] [--count N] [--] BRIDGE [GUEST..]`, the chain from the
// PONTOON_* environment.
func run(args []string) error {
	fs := flag.NewFlagSet("pontoon capture", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	var o capture.Options
	var path string
	fs.StringVar(&path, "w", "", "the pcapng `FILE` (- for standard output)")
	fs.DurationVar(&o.Duration, "duration", 0, "stop after `DURATION`")
	fs.IntVar(&o.Count, "count", 0, "stop after `N` packets")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if path == "" || fs.NArg() < 1 || o.Duration < 0 || o.Count < 0 {
		return usageError{errors.New("usage: pontoon capture BRIDGE [GUEST..] -w FILE.pcapng|- [--duration D] [--count N]")}
	}
	bridge := fs.Arg(0)
	o.Guests = fs.Args()[1:]
	env := netsetup.EnvFromEnviron(os.Environ())
	t, err := partition.ForBridge(env, bridge)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if path == "-" {
		// As tcpdump's -w -: the file goes to standard output, e.g. into
		// `wireshark -k -i -`; it is written in whole blocks, so a reader never waits on
		// half a packet.
		cw, err := startCopier(os.Stdout, "standard output")
		if err != nil {
			return err
		}
		cp, err := capture.Start(ctx, t, cw.In, o)
		if err != nil {
			_ = cw.Finish()
			return startErr(err)
		}
		return report(cp, bridge, "standard output", cw, nil)
	}
	// The capture is written under a temporary name and takes the file's name once it runs,
	// so a capture that cannot start leaves an existing file as it was.
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		// The temporary name means nothing to the user; the reason is the same for the file.
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("capture: create %s: %w", path, err)
	}
	cw, err := startCopier(f, path)
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	cp, err := capture.Start(ctx, t, cw.In, o)
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		if cp != nil {
			cp.Stop()
			_, _ = cp.Wait()
		}
		_ = cw.Finish()
		f.Close()
		os.Remove(f.Name())
		return startErr(err)
	}
	return report(cp, bridge, path, cw, f)
}

func startErr(err error) error {
	if errors.Is(err, capture.ErrUnknownGuest) {
		return usageError{err}
	}
	return err
}

// report waits for the capture to end, then for the copier to write it out (and closes f
// when not nil), and says what was captured. A copier that ends early (its reader gone, a
// full disk) stops the capture, and its failure is the one reported: the capture's own, a
// pipe that broke, follows from it.
func report(cp *capture.Capture, bridge, path string, cw *copier, f *os.File) error {
	fmt.Fprintf(os.Stderr, "pontoon: capturing %d guest(s) of bridge %s into %s (Ctrl-C stops)\n", len(cp.Packets()), bridge, path)
	go func() {
		select {
		case <-cw.Ended():
			cp.Stop()
		case <-cp.Done():
		}
	}()
	res, err := cp.Wait()
	if ferr := cw.Finish(); ferr != nil {
		err = ferr
	}
	if f != nil {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("capture: close %s: %w", path, cerr)
		}
	}
	var parts []string
	var lost uint64
	for _, i := range res.Interfaces {
		part := fmt.Sprintf("%s %d", i.Guest, i.Packets)
		if i.Left {
			part += " until it left"
		}
		parts = append(parts, part)
		lost += i.KernelDropped
	}
	msg := fmt.Sprintf("%s: %d packets (%s)", path, res.Packets, strings.Join(parts, ", "))
	if lost > 0 {
		msg += fmt.Sprintf("; %d more were lost by the kernel for want of buffer space", lost)
	}
	fmt.Fprintln(os.Stderr, msg)
	return err
}
