package cni

import (
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/pontoon-dev/pontoon/names"
	"github.com/pontoon-dev/pontoon/netsetup"
)

// ensureNames starts the bridge's name server unless one runs, as `pontoon guest add` does:
// every bridge has one, and an ADD's result names it. A bridge whose server runs inside the
// process that owns it (`pontoon run`, testenv) keeps that one. The server is this plugin's
// own executable, which serves names when started as names.Start starts a server (Main).
func ensureNames(env netsetup.Env, bridge string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find pontoon-cni's executable for bridge %q's name server: %w", bridge, err)
	}
	if _, err := names.Ensure(env, bridge, exe); err != nil {
		return fmt.Errorf("start bridge %q's name server: %w", bridge, err)
	}
	return nil
}

// nameServer is a command line of a detached name server, as names.Start gives it to the
// executable it starts: the flags of env.Args(), names.ServeVerb, --bridge NAME and
// --inherit.
type nameServer struct {
	env     netsetup.Env
	bridge  string
	inherit bool
}

// parseNameServer recognises a name server's command line in args (without the program
// name), with env the environment's settings that its flags override; false for anything
// else (a runtime runs the plugin without arguments).
func parseNameServer(env netsetup.Env, args []string) (nameServer, bool) {
	s := nameServer{env: env}
	settings := netsetup.EnvSettings()
	// flag returns the value of a "--name value" or "--name=value" at args[i], and how many
	// words it took.
	flag := func(i int, name string) (string, int, bool) {
		a := args[i]
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, 1, true
		}
		if a == "--"+name && i+1 < len(args) {
			return args[i+1], 2, true
		}
		return "", 0, false
	}
	i := 0
global:
	for i < len(args) {
		for _, st := range settings {
			if v, n, ok := flag(i, st.Flag); ok {
				st.Set(&s.env, v)
				i += n
				continue global
			}
		}
		break
	}
	if len(args) < i+len(names.ServeVerb) || !slices.Equal(args[i:i+len(names.ServeVerb)], names.ServeVerb) {
		return s, false
	}
	for i += len(names.ServeVerb); i < len(args); {
		if v, n, ok := flag(i, "bridge"); ok {
			s.bridge = v
			i += n
			continue
		}
		if args[i] == "--"+names.InheritFlag {
			s.inherit = true
			i++
			continue
		}
		return s, false
	}
	return s, s.bridge != ""
}

// serve runs the server until its bridge goes or SIGTERM, as `pontoon names serve` does.
func (s nameServer) serve() error {
	// It outlives the runtime that ran the plugin on purpose; SIGTERM ends it.
	signal.Ignore(syscall.SIGINT, syscall.SIGHUP)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	return names.Serve(s.env, s.bridge, s.inherit, term)
}
