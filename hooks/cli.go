package hooks

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/pontoon-dev/pontoon/internal/advice"
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
// stage against env: "hook STAGE" followed by env.Args() (--state-dir, --netns-dir, ...,
// each only when it differs from its default). Engines run hooks with their own
// environment, so env travels in the arguments.
func Args(stage string, env netsetup.Env) []string {
	return append([]string{"hook", stage}, env.Args()...)
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
	var names []string
	for _, s := range netsetup.EnvSettings() {
		fs.Func(s.Flag, s.Usage, func(v string) error { s.Set(&env, v); return nil })
		names = append(names, "--"+s.Flag)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return "", env, fmt.Errorf("%w; the flags are %s", err, strings.Join(names, ", "))
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
// bad arguments. The line is the error and, where there is one, what to run about it.
func Main(args []string, stdin io.Reader, stderr io.Writer) int {
	stage, env, err := ParseArgs(args)
	if err != nil {
		fmt.Fprintln(stderr, "pontoon hook:", OneLine(err))
		return 2
	}
	if err := Run(stage, env, stdin); err != nil {
		msg := OneLine(err)
		if a := advice.For(err); a != "" {
			msg += "; " + a
		}
		fmt.Fprintf(stderr, "pontoon hook %s: %s\n", stage, msg)
		return 1
	}
	return 0
}

// OneLine folds a possibly multi-line error message into one line.
func OneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}
