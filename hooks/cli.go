package hooks

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/pontoon-dev/pontoon/netsetup"
)

// The stages Main accepts as its first argument.
const (
	StageCreateRuntime = "create-runtime"
	StagePrestart      = "prestart" // a synonym of create-runtime
	StagePoststop      = "poststop"
	StageAuto          = "auto" // create-runtime or poststop, chosen by the state
)

// IsStage reports whether name is a stage Main accepts. The pontoon binary checks
// `pontoon hook STAGE` with it first thing and hands the rest to Main, before any other
// set-up: engines start the hook for every container and wait for it.
func IsStage(name string) bool {
	switch name {
	case StageCreateRuntime, StagePrestart, StagePoststop, StageAuto:
		return true
	}
	return false
}

// Args returns the arguments, after the pontoon binary's own name, that run the hook for
// stage against env: "hook STAGE [--state-dir D] [--netns-dir N] [--host-netns P]
// [--resolv-conf R]". Engines run hooks with their own environment, so env travels in the
// arguments.
func Args(stage string, env netsetup.Env) []string {
	return append([]string{"hook", stage}, EnvFlags(env)...)
}

// EnvFlags returns the flags that select env, omitting the fields left at their defaults.
func EnvFlags(env netsetup.Env) []string {
	var out []string
	for _, f := range []struct{ name, value string }{
		{"--state-dir", env.StateDir},
		{"--netns-dir", env.NetnsDir},
		{"--host-netns", env.HostNetns},
		{"--resolv-conf", env.ResolvConf},
	} {
		if f.value != "" {
			out = append(out, f.name, f.value)
		}
	}
	return out
}

// ParseArgs parses "STAGE [flags]" (the arguments after "hook") into the stage and the Env
// the flags select.
func ParseArgs(args []string) (stage string, env netsetup.Env, err error) {
	if len(args) == 0 {
		return "", env, fmt.Errorf("no stage given; use one of %s, %s, %s or %s", StageCreateRuntime, StagePrestart, StagePoststop, StageAuto)
	}
	stage = args[0]
	if !IsStage(stage) {
		return "", env, fmt.Errorf("unknown stage %q; use one of %s, %s, %s or %s", stage, StageCreateRuntime, StagePrestart, StagePoststop, StageAuto)
	}
	fs := flag.NewFlagSet("pontoon hook "+stage, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&env.StateDir, "state-dir", "", "pontoon's state directory (default /run/pontoon)")
	fs.StringVar(&env.NetnsDir, "netns-dir", "", "where namespaces are pinned (default /run/netns)")
	fs.StringVar(&env.HostNetns, "host-netns", "", "the network namespace that plays the host (default the hook's own)")
	fs.StringVar(&env.ResolvConf, "resolv-conf", "", "the host's resolver configuration (default /etc/resolv.conf)")
	if err := fs.Parse(args[1:]); err != nil {
		return "", env, fmt.Errorf("%v; the flags are --state-dir, --netns-dir, --host-netns and --resolv-conf", err)
	}
	if fs.NArg() > 0 {
		return "", env, fmt.Errorf("unexpected arguments %q; the hook reads the container state on stdin", fs.Args())
	}
	return stage, env, nil
}

// Run runs stage against env with the state read from stdin.
func Run(stage string, env netsetup.Env, stdin io.Reader) error {
	switch stage {
	case StageCreateRuntime, StagePrestart:
		return CreateRuntime(env, stdin)
	case StagePoststop:
		return Poststop(env, stdin)
	case StageAuto:
		return Auto(env, stdin)
	}
	return fmt.Errorf("unknown stage %q", stage)
}

// Main is `pontoon hook STAGE [flags]`, given the arguments after "hook". It returns the
// exit status: 0 on success, 1 with a single line on stderr saying what is wrong and how to
// fix it (engines show a hook's stderr; one line keeps it readable in their error), 2 for
// bad arguments.
func Main(args []string, stdin io.Reader, stderr io.Writer) int {
	stage, env, err := ParseArgs(args)
	if err != nil {
		fmt.Fprintln(stderr, "pontoon hook:", OneLine(err))
		return 2
	}
	if err := Run(stage, env, stdin); err != nil {
		fmt.Fprintf(stderr, "pontoon hook %s: %s\n", stage, OneLine(err))
		return 1
	}
	return 0
}

// OneLine folds a possibly multi-line error message into one line.
func OneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}
