// Package runtime runs the commands of a project's pontoon.toml in containers on pontoon
// bridges: `pontoon run NAME`.
//
// A supervise command gets a bridge of its own for the length of the run. Each guest child
// is a container with a network namespace of its own, attached to the bridge with the
// child's fixed address before the child's process starts; each bridge child is a container
// that shares the bridge's namespace and reaches every guest. With runc or crun as root,
// pontoon attaches the guest itself: it creates and pins the guest's network and UTS
// namespaces on the bridge, the bundle joins them by path, the container's process is
// recorded on the guest once the engine has created it (for exec), and the guest is removed
// once the engine has ended -- no pontoon process is started per container and stage. Other
// engines (rootless runc and crun, containerd) create the namespace themselves and
// pontoon's OCI hook (package hooks) attaches it at createRuntime and removes it at
// poststop. A plain command is one container on the host's network, on none, or as a
// guest of a bridge of its own.
//
// # Containers
//
// Every container is described by an OCI bundle (Container, WriteBundle) and run by an
// Engine in the foreground, the way `runc run` works:
//
//   - root "host" (the default): the host's system directories (/usr, /etc, /bin, /lib...,
//     /opt) read-only, the project directory read-write at /work, and a private /tmp,
//     /root (HOME) and /run. A { rootfs = "dir" } root uses the directory instead; an
//     { image = "ref" } root (runtime containerd only) an image already in containerd's
//     store, never pulled. The project directory is at /work in every case.
//   - /etc/hosts names every guest of the run (its hostname and child name), every bridge
//     child at the bridge's address, and the container's own hostname; /etc/resolv.conf
//     names the bridge's name server (names.ResolvConf), which the run serves from its own
//     process and which also knows aliases and guests that join later. pontoon writes both
//     into the bundle and bind-mounts them: the attach only does networking.
//   - Environment: PATH, HOME=/root, TERM, PONTOON_BRIDGE (the run's bridge), and for
//     guests PONTOON_GUEST, PONTOON_IP and (dual stack) PONTOON_IP6; then the command's env.
//   - Bridge children are privileged: every capability pontoon holds, pontoon's state and
//     namespace directories at their host paths, the running pontoon binary on PATH (in
//     PontoonBinDir), and PONTOON_STATE_DIR, PONTOON_NETNS_DIR, PONTOON_HOST_NETNS and
//     PONTOON_RESOLV_CONF when the chain is not the real host's; bridge children also get
//     PONTOON_IP, the bridge's address. So `pontoon partition isolate n3` works inside one.
//
// # Containers in existing namespaces
//
// StartContainer runs one container, in the background, that joins a network namespace
// that already exists -- typically a guest's, attached by netsetup.AddGuest -- and, when
// given, its UTS namespace; so no hook runs. It takes the same roots as pontoon.toml (host,
// rootfs, image), the argv, environment, working directory and hostname, /etc/hosts and
// /etc/resolv.conf as contents or as host files bind-mounted read-only, and writers for the
// output. The RunningContainer it returns has Wait (the exit status), Signal, Kill and
// Delete (idempotent: the engine's state and the bundle directory go). It uses the same
// bundles and engines as Run; package testenv builds Guest.StartContainer on it.
//
//	c, err := runtime.StartContainer(ctx, runtime.ContainerSpec{
//		Args:  []string{"/bin/mynode"},
//		Netns: guest.Netns, UTS: guest.UTS,
//		Root:  config.Root{Kind: config.RootRootfs, Path: "/srv/rootfs"},
//		Stdout: os.Stdout, Stderr: os.Stderr,
//	}, runtime.EngineOptions{})
//	...
//	defer c.Delete()
//	code := c.Wait()
//
// # Engines
//
// runc (the default) and crun are driven through their command lines (crun on a cgroup v1
// or hybrid host runs inside a private mount namespace with a plain cgroup2 mount and
// --cgroup-manager=disabled, the only way it accepts such a host). containerd is driven
// through the pontoon-containerd helper (package runtime/containerd), which keeps
// containerd's client out of the pontoon binary that engines start for every hook. Podman
// is not an engine of `pontoon run`; it uses the hook directly (`pontoon hook install
// --podman`).
//
// # Supervision
//
// Guests start first, then bridge children. Output of children is streamed line by line,
// each prefixed with the child's name. The first SIGINT or SIGTERM goes to every container;
// containers still running after the stop timeout (Options.StopTimeout, else the command's
// stop_timeout, else 10s), or at a second signal, are killed, and pontoon names them.
//
// A child with init on (the default) runs under pontoon's own minimal init as PID 1 (Init,
// the hidden `pontoon container-init`, bind-mounted read-only from the pontoon binary): it
// forwards signals to the child's command and reaps orphaned processes, so a `sleep` or a
// program without signal handlers stops at SIGTERM and no zombies pile up.
//
// Pontoon owns the bridge (netsetup.BridgeOptions.Owner), and records every container in
// its bundle directory before starting it. Should pontoon die, its engines get SIGTERM
// (Pdeathsig), which init passes on; GC (`pontoon gc`) kills the engines and deletes the
// containers that are left, whatever their runtime, then netsetup.GC removes the bridge.
//
// # Exec
//
// Exec (`pontoon exec BRIDGE GUEST -- CMD`) enters every namespace of a guest's container,
// as `docker exec` does. From a bridge child, whose pid namespace hides the container's
// process, the run that owns the bridge executes the command on its behalf through a unix
// socket in the bridge's data directory, passing stdio, signals and the exit status.
package runtime
