package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/pontoon-dev/pontoon/hooks"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/runtime"
	"github.com/pontoon-dev/pontoon/runtime/config"
	"github.com/urfave/cli/v2"
)

var projectFlag = &cli.StringFlag{Name: "project", Aliases: []string{"C"}, Usage: "the project directory (default: the nearest directory with a pontoon.toml, upwards from here)"}

func projectCommands() []*cli.Command {
	return []*cli.Command{
		{
			Name:      "run",
			Usage:     usageOf("run"),
			ArgsUsage: "COMMAND [-- ARGS...]",
			Flags: append([]cli.Flag{
				projectFlag,
				&cli.StringFlag{Name: "subnet", Usage: "the /16 of the gateway, if run has to bring it up", Value: netsetup.DefaultSubnet},
				&cli.StringSliceFlag{Name: "only", Usage: "start only these children (repeatable or comma-separated)"},
				&cli.StringSliceFlag{Name: "exclude", Usage: "start all children but these"},
				&cli.StringFlag{Name: "runtime", Usage: "runc, crun or containerd (overrides pontoon.toml)"},
				&cli.DurationFlag{Name: "stop-timeout", Usage: "how long children get between SIGTERM and SIGKILL", DefaultText: "the command's stop_timeout, else 10s"},
				&cli.StringFlag{Name: "runtime-root", Usage: "state directory of runc/crun"},
				&cli.StringFlag{Name: "containerd-address", Usage: "containerd's socket", EnvVars: []string{"CONTAINERD_ADDRESS"}},
				&cli.StringFlag{Name: "containerd-namespace", Usage: "containerd namespace for pontoon's containers", EnvVars: []string{"CONTAINERD_NAMESPACE"}},
			}, ipv6Flags("of the gateway, if run has to bring it up")...),
			Action: run,
		},
		{
			Name:   "list",
			Usage:  usageOf("list"),
			Flags:  []cli.Flag{projectFlag},
			Before: joinRunningSpace,
			Action: list,
		},
		{
			Name:  "hook",
			Usage: usageOf("hook"),
			Description: "Engines run `pontoon hook create-runtime` and `pontoon hook poststop` with the container's state on stdin.\n" +
				"The container's annotations pontoon.bridge, pontoon.guest and pontoon.ip (optional pontoon.hostname,\n" +
				"pontoon.ports) say where it joins.",
			Subcommands: []*cli.Command{
				{
					Name:  "install",
					Usage: "install the hook for podman (a hooks.d file selected by the pontoon.bridge annotation), or pontoon's runtime for Docker",
					Flags: []cli.Flag{
						&cli.BoolFlag{Name: "podman", Usage: "write podman's hooks.d JSON"},
						&cli.StringFlag{Name: "dir", Usage: "the hooks.d directory (default: the one podman reads, from hooks_dir in containers.conf, else " + hooks.PodmanDefaultHooksDir + ")"},
						&cli.BoolFlag{Name: "docker", Usage: "add the runtime \"pontoon\" to dockerd's daemon.json (Docker has no hooks directory)"},
						&cli.StringFlag{Name: "config", Usage: "dockerd's configuration file (default /etc/docker/daemon.json)"},
					},
					Action: hookInstall,
				},
				{
					Name:  "uninstall",
					Usage: "remove what `hook install` wrote: podman's hooks.d file, or the runtime \"pontoon\" from dockerd's daemon.json",
					Flags: []cli.Flag{
						&cli.BoolFlag{Name: "podman", Usage: "remove pontoon's hooks.d JSON"},
						&cli.StringFlag{Name: "dir", Usage: "the hooks.d directory (default: the one podman reads, as for install)"},
						&cli.BoolFlag{Name: "docker", Usage: "remove the runtime \"pontoon\" from dockerd's daemon.json, and its pontoon-runc symlink"},
						&cli.StringFlag{Name: "config", Usage: "dockerd's configuration file (default /etc/docker/daemon.json)"},
					},
					Action: hookUninstall,
				},
			},
		},
	}
}

func loadProject(c *cli.Context) (*config.Project, error) {
	dir := c.String("project")
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		dir = wd
	}
	path, err := runtime.FindProject(dir)
	if err != nil {
		return nil, err
	}
	p, err := runtime.LoadProject(path, env(c))
	// Mistakes in the file are refused input, as a bad value on the command line is.
	var mistakes config.ErrorList
	if errors.As(err, &mistakes) {
		return nil, usageError{err}
	}
	return p, err
}

func run(c *cli.Context) error {
	all := c.Args().Slice()
	if len(all) == 0 {
		return usagef("run needs a command name; `pontoon list` shows the project's commands")
	}
	name, rest := all[0], all[1:]
	if len(rest) > 0 && rest[0] == "--" {
		rest = rest[1:]
	} else if len(rest) > 0 {
		return usagef("run: put the command's own arguments after --, e.g. `pontoon run %s -- %s`", name, strings.Join(rest, " "))
	}
	// Given, the flag follows pontoon.toml's stop_timeout rule: a zero would otherwise read as
	// no flag, and a stop timeout past the key's limit would be allowed on the command line only.
	if c.IsSet("stop-timeout") {
		d := c.Duration("stop-timeout")
		if err := config.CheckStopTimeout(d); err != nil {
			return usagef("--stop-timeout: %s %v; give how long children get between SIGTERM and SIGKILL, more than 0s and at most %s, e.g. --stop-timeout 10s",
				d, err, config.MaxStopTimeout)
		}
	}
	p, err := loadProject(c)
	if err != nil {
		return err
	}
	// The command and the children chosen are checked before anything starts, as usage.
	cmd, err := p.Command(name)
	if err != nil {
		return usageError{err}
	}
	only, exclude := splitList(c.StringSlice("only")), splitList(c.StringSlice("exclude"))
	// An empty list would select every child: the opposite of what --only asks.
	if c.IsSet("only") && len(only) == 0 {
		return usagef("--only names no child; give the children to start, e.g. --only n1,n2")
	}
	if _, err := cmd.SelectChildren(only, exclude); err != nil {
		return usageError{err}
	}
	noteUnlinked(os.Stderr)
	gw, err := gatewayOptions(c)
	if err != nil {
		return err
	}
	var rt config.Runtime
	if c.IsSet("runtime") {
		if rt, err = config.ParseRuntime(c.String("runtime")); err != nil {
			return usagef("--runtime: %w", err)
		}
	}
	sig := make(chan os.Signal, 2)
	// All a user sends a running program is forwarded, as docker run does: left to Go,
	// SIGQUIT would end pontoon with a stack dump and leave the bridge to gc.
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	opt := runtime.Options{
		Env:         env(c),
		Only:        only,
		Exclude:     exclude,
		Runtime:     rt,
		Args:        rest,
		StopTimeout: c.Duration("stop-timeout"),
		Gateway:     gw,
		Signals:     sig,
	}
	opt.Engine.RuntimeRoot = c.String("runtime-root")
	opt.Engine.ContainerdAddress = c.String("containerd-address")
	opt.Engine.ContainerdNamespace = c.String("containerd-namespace")
	code, err := runtime.Run(context.Background(), p, name, opt)
	if err != nil {
		return err
	}
	if code != 0 {
		return exitCode(code)
	}
	return nil
}

func splitList(v []string) []string {
	var out []string
	for _, s := range v {
		for _, f := range strings.Split(s, ",") {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, f)
			}
		}
	}
	return out
}

func list(c *cli.Context) error {
	p, err := loadProject(c)
	if err != nil {
		return err
	}
	return buffered(func(w io.Writer) error { return runtime.List(w, p) })
}

func hookInstall(c *cli.Context) error {
	if err := oneEngine(c); err != nil {
		return err
	}
	if c.Bool("docker") {
		return hookInstallDocker(c)
	}
	if c.IsSet("config") {
		return usagef("--config is dockerd's daemon.json; for podman give --dir DIR (the hooks.d directory)")
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the pontoon binary: %w", err)
	}
	path, err := hooks.InstallPodman(c.String("dir"), self, env(c))
	if err != nil {
		return err
	}
	fmt.Printf("podman hook installed at %s; run containers with --annotation pontoon.bridge=BRIDGE --annotation pontoon.guest=NAME --annotation pontoon.ip=ADDR\n", path)
	dir := filepath.Dir(path)
	if c.IsSet("dir") {
		if dirs, _, err := hooks.DetectPodmanConf().HooksDirs(); err != nil || !slices.Contains(dirs, dir) {
			fmt.Printf("podman reads it only if %s is in hooks_dir of containers.conf, or with --hooks-dir %s\n", dir, dir)
		}
	} else if stale := filepath.Join(hooks.PodmanHooksDir, hooks.PodmanHookFile); stale != path {
		// Older pontoons installed there; podman does not read it, so it is only clutter.
		if data, err := os.ReadFile(stale); err == nil && hooks.IsPodmanHook(data) {
			fmt.Printf("%s is an older install that podman does not read: `%s --podman --dir %s` removes it\n", stale, strings.Replace(c.Command.HelpName, "install", "uninstall", 1), hooks.PodmanHooksDir)
		}
	}
	return nil
}

func hookUninstall(c *cli.Context) error {
	if err := oneEngine(c); err != nil {
		return err
	}
	if c.Bool("docker") {
		return hookUninstallDocker(c)
	}
	if c.IsSet("config") {
		return usagef("--config is dockerd's daemon.json; for podman give --dir DIR (the hooks.d directory)")
	}
	path, removed, err := hooks.UninstallPodman(c.String("dir"))
	if err != nil {
		return err
	}
	// Without --dir, pontoon's entry goes wherever pontoon put it, an older install's place
	// included (which podman does not read).
	if stale := filepath.Join(hooks.PodmanHooksDir, hooks.PodmanHookFile); !c.IsSet("dir") && stale != path {
		if data, err := os.ReadFile(stale); err == nil && hooks.IsPodmanHook(data) {
			if _, gone, err := hooks.UninstallPodman(hooks.PodmanHooksDir); err != nil {
				return err
			} else if gone {
				fmt.Printf("podman hook of an older install removed from %s\n", stale)
				removed = removed || gone
			}
		}
	}
	if removed {
		fmt.Printf("podman hook removed from %s\n", path)
	} else {
		fmt.Printf("no podman hook at %s; nothing changed\n", path)
	}
	return nil
}

// oneEngine checks that `hook install` and `hook uninstall` were told which engine.
func oneEngine(c *cli.Context) error {
	if c.Bool("docker") == c.Bool("podman") {
		return usagef("%s needs one of --podman or --docker, e.g. `%s --podman`", c.Command.HelpName, c.Command.HelpName)
	}
	return nil
}
