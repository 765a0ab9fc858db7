package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/pontoon-dev/pontoon/hooks"
	"github.com/urfave/cli/v2"
)

// hookInstallDocker is `pontoon hook install --docker [--config PATH]`.
func hookInstallDocker(c *cli.Context) error {
	if c.IsSet("dir") {
		return usagef("--dir is podman's hooks.d directory; for Docker give --config PATH (daemon.json)")
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the pontoon binary: %w", err)
	}
	res, err := hooks.InstallDocker(c.String("config"), self)
	if err != nil {
		return err
	}
	var b strings.Builder
	if res.Changed {
		fmt.Fprintf(&b, "docker runtime %q added to %s (runtime %s)", hooks.DockerRuntime, res.Config, res.Runtime)
		if res.Backup != "" {
			fmt.Fprintf(&b, "; the previous file is %s", res.Backup)
		}
		b.WriteString("\nreload dockerd to pick it up: kill -HUP $(pidof dockerd)\n")
	} else if res.Linked {
		fmt.Fprintf(&b, "docker runtime %q is already in %s; made its symlink %s again\n", hooks.DockerRuntime, res.Config, res.Runtime)
	} else {
		fmt.Fprintf(&b, "docker runtime %q is already in %s (runtime %s); nothing changed\n", hooks.DockerRuntime, res.Config, res.Runtime)
	}
	if e := env(c).Environ(); len(e) > 0 {
		fmt.Fprintf(&b, "the runtime reads where pontoon's state is from dockerd's environment: start dockerd with %s\n", strings.Join(e, " "))
	}
	fmt.Fprintf(&b, "run containers with --runtime %s --network none -e PONTOON_BRIDGE=BRIDGE -e PONTOON_GUEST=NAME -e PONTOON_IP=ADDR\n", hooks.DockerRuntime)
	fmt.Print(b.String())
	return nil
}

// hookUninstallDocker is `pontoon hook uninstall --docker [--config PATH]`.
func hookUninstallDocker(c *cli.Context) error {
	if c.IsSet("dir") {
		return usagef("--dir is podman's hooks.d directory; for Docker give --config PATH (daemon.json)")
	}
	res, err := hooks.UninstallDocker(c.String("config"))
	if err != nil {
		return err
	}
	var b strings.Builder
	if res.Foreign != "" {
		fmt.Fprintf(&b, "docker runtime %q in %s is not pontoon's (its path is %s); left as it is\n", hooks.DockerRuntime, res.Config, res.Foreign)
		fmt.Print(b.String())
		return nil
	}
	if res.Changed {
		switch _, err := os.Stat(res.Config); {
		case res.Restored && err != nil:
			fmt.Fprintf(&b, "docker runtime %q removed: %s is gone again, as hook install made it\n", hooks.DockerRuntime, res.Config)
		case res.Restored:
			fmt.Fprintf(&b, "docker runtime %q removed: %s is back as it was before hook install\n", hooks.DockerRuntime, res.Config)
		default:
			fmt.Fprintf(&b, "docker runtime %q removed from %s; the previous file is %s\n", hooks.DockerRuntime, res.Config, res.Backup)
		}
		b.WriteString("reload dockerd to drop it: kill -HUP $(pidof dockerd)\n")
		// dockerd keeps such containers, and nothing tells their owner why they broke.
		fmt.Fprintf(&b, "containers created with --runtime %s can no longer start: remove them\n", hooks.DockerRuntime)
	} else {
		fmt.Fprintf(&b, "docker runtime %q is not in %s; nothing changed\n", hooks.DockerRuntime, res.Config)
	}
	if res.Runtime != "" {
		fmt.Fprintf(&b, "removed the runtime's symlink %s\n", res.Runtime)
	}
	if res.KeptLink != "" {
		fmt.Fprintf(&b, "kept the runtime's symlink %s: %s still names it\n", res.KeptLink, hooks.DockerConfig)
	}
	fmt.Print(b.String())
	return nil
}
