// Package hooks is pontoon's OCI hook: it puts a container on a pontoon bridge as a guest
// with a fixed address, whatever engine started the container (runc, crun, containerd,
// podman), and takes it off again when the container stops.
//
// # Annotations
//
// A container asks for a network through annotations in its config.json (or, with podman,
// --annotation):
//
//	pontoon.bridge    required  a bridge that exists (`pontoon bridge list`, or the bridge of a `pontoon run`)
//	pontoon.guest     required  the guest's name on that bridge, unique there
//	pontoon.ip        required  the guest's fixed address, x.y.0.1-x.y.0.253 of the gateway's plan
//	pontoon.hostname  optional  recorded for the bridge's listing; the container's own hostname is the engine's business
//	pontoon.ports     optional  "HOSTPORT:GUESTPORT[/tcp|/udp]" separated by commas; each must be a
//	                            forward the bridge already has to this guest (ports are set when a bridge is created)
//	pontoon.aliases   optional  further names the bridge's name server answers for the container,
//	                            separated by spaces or commas
//
// The annotations are read from the state the engine passes on stdin and, when the state
// carries none (older runc versions pass none), from the bundle's config.json. Values are
// validated and used as data only: nothing is ever handed to a shell.
//
// # Stages
//
// create-runtime (prestart is accepted as a synonym for engines that still run it) attaches
// the container's network namespace, /proc/<pid>/ns/net of the state's pid, with the
// container id as the guest's key. poststop detaches whatever was attached under the
// container id. Both are idempotent: create-runtime for a container already attached with
// the same pid succeeds, and poststop of something already gone succeeds. auto picks the
// stage from the state (a stopped container, or one without a pid, is a poststop), for
// engines such as podman whose hooks.d entries run one command for several stages.
//
// When create-runtime fails it exits non-zero with one line saying what is wrong and how to
// fix it, and nothing stays attached; the engine then refuses to start the container. runc
// and podman show the hook's stderr in their error; crun shows it only when the container's
// annotations say where to (run.oci.hooks.stderr=/dev/stderr, as `pontoon run` sets).
//
// The container must have a network namespace of its own without interfaces besides
// loopback (podman --network none, or a spec with an unnamed network namespace): the hook
// refuses to attach the host's namespace or one another network plugin already set up.
//
// # /etc/hosts and resolv.conf
//
// The createRuntime hook configures links, addresses and routes only; it does not write
// files into the container. `pontoon run` generates /etc/hosts (every guest of the run, plus
// the container's own hostname) and /etc/resolv.conf (netsetup.GuestResolvConf) into the
// bundle and bind-mounts them, which needs no access to the container's mount namespace and
// leaves nothing to clean up. The bridge's name server (package names) answers for every
// guest the hook attaches as soon as the attach is recorded.
//
// Podman runs the hooks.d entry at precreate as well, with the container's config.json
// instead of its state (Auto tells them apart): PrepareSpec adds the guest's lines (its IPv4
// and, unless the chain is IPv4 only, its IPv6 address, with its names) to the
// hosts file podman mounts from the container's directory and mounts a resolv.conf naming
// the name server, written into that directory, so podman removes both with the container.
// Editing the configuration before the runtime sees it works alike for runc and crun. A
// resolv.conf or /etc/hosts the user mounts is kept; a container whose configuration does
// not come with podman's files (Docker's, prepared by the runtime wrapper below, or one run
// by runc directly) is not changed. Podman shows neither the message nor the stderr of a
// failed precreate hook, so the failure travels in the annotation AnnotationNamesError to
// createRuntime, which refuses the container with it before attaching anything.
//
// # Docker
//
// Docker runs no hooks of its own choosing, so pontoon is also an OCI runtime for it
// (RuntimeMain, under the name RuntimeName, registered by InstallDocker). For create of a
// container whose config.json asks for a bridge, by pontoon.* annotations or, since Docker
// 20.10 has no --annotation, by PONTOON_BRIDGE, PONTOON_GUEST, PONTOON_IP... in its
// environment (EnvVar), it validates the settings with ParseRequest, records them as
// annotations, adds this binary's create-runtime and poststop hooks, and bind-mounts
// pontoon's /etc/hosts and /etc/resolv.conf from the bundle over Docker's (the resolv.conf
// names the bridge's name server, names.ResolvConf, when one serves the bridge, else
// netsetup.GuestResolvConf's resolvers); then it execs runc with its arguments unchanged.
// Every other runc call goes straight to runc. Settings without the bridge (PONTOON_GUEST or
// PONTOON_IP without PONTOON_BRIDGE, say) make create fail saying so, rather than run the
// container without its network; other PONTOON_* variables (PONTOON_STATE_DIR...) are no
// settings.
//
// # Where the chain lives
//
// A hook runs with the engine's environment, not the caller's, so everything that says
// where pontoon's state is travels in the hook's arguments: see Args and Main. The flags are
// --state-dir, --netns-dir, --host-netns and --resolv-conf, each the field of netsetup.Env
// of the same name; omitted flags mean the real host.
package hooks
