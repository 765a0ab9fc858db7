// Package config reads and validates a project's pontoon.toml.
//
// A developer keeps pontoon.toml in the project root; `pontoon run NAME`
// runs one of its commands and `pontoon list` lists them. Each run gets its
// own isolated bridge network, by default 172.18.0.0/24, where guests take
// fixed addresses 172.18.0.1-172.18.0.253 and 172.18.0.254 is the bridge
// (see DefaultBridgeNet, GuestRange, BridgeAddr).
//
// Load and Parse validate the whole file before anything is created and
// return either a complete Project or an ErrorList with every problem,
// sorted by line, each naming the file, line and key and saying how to fix
// it:
//
//	pontoon.toml:12: commands.cluster.children.n2.ip: "172.18.0.300" is not an IPv4 address; use 172.18.0.1-172.18.0.253
//
// Each table's keys are declared once, in schema.go, with the kind of value
// they take, an example and the handler that reads them; command.go holds the
// rules that tie keys together.
//
// Commands and children keep their file order.
//
// # Schema
//
//	[settings]                    # optional, project-wide defaults
//	runtime = "runc"              # runc (default) | crun | containerd
//
//	[commands.test]               # a plain command; name: [a-z0-9][a-z0-9_-]*, at most 63 characters
//	description = "unit tests"    # optional, shown by `pontoon list`
//	run = ["go", "test", "./..."] # required: an argv list, run without a shell, or
//	                              # run = { shell = "go test ./... | tee log" } for /bin/sh -c
//	env = { GOFLAGS = "-mod=mod" }  # optional; names [A-Za-z_][A-Za-z0-9_]*, values strings
//	workdir = "/work"             # optional, absolute, inside the container; default /work
//	network = "guest"             # "host" (default) | "none" | "guest"
//	ip = "172.18.0.10"            # guest only, required there: 172.18.0.1-172.18.0.253
//	hostname = "tester"           # guest only, optional: defaults to the command's name
//	aliases = ["db", "pg.svc"]    # guest only, optional: more names the bridge's name server answers
//	ports = ["8080:80", "5353:53/udp"]  # guest only, optional: "HOSTPORT:GUESTPORT[/tcp|/udp]", ports 1-65535, tcp by default
//	root = "host"                 # "host" (default): host system directories read-only,
//	                              #   the project directory read-write at /work, a private /tmp
//	                              # | { rootfs = "rootfs/alpine" }: a directory relative to the project, must exist
//	                              # | { image = "docker.io/library/alpine:3" }: needs runtime "containerd"
//	runtime = "crun"              # optional: overrides [settings] runtime
//	names = "dns"                 # optional, commands with guests: "hosts" (default) lists every guest
//	                              #   in each guest's /etc/hosts | "dns": only the bridge's name
//	                              #   server names them, so its DNS faults reach every name; a
//	                              #   schedule with DNS faults makes it "dns"
//	stop_timeout = "3s"           # optional, plain and supervise commands: how long the containers
//	                              #   get between the stop signal and SIGKILL when the run stops;
//	                              #   a Go duration ("500ms", "3s", "2m"), default "10s", at most "10m"
//
//	[commands.cluster]            # a supervise command: children, no run of its own
//	description = "three kv nodes"
//	supervise = true
//	exit = "any"                  # "any" (default): stop every child when one exits | "all": wait for all
//	env = { RUST_LOG = "info" }   # env, workdir, root and runtime here are defaults for the children;
//	runtime = "runc"              #   a child's env adds to and overrides the command's key by key
//
//	[commands.cluster.children.n1]  # a guest child: has ip; name as for commands
//	description = "first node"    # optional
//	run = ["kvnode", "--id", "1"] # required, as for plain commands
//	ip = "172.18.0.1"             # required for a guest
//	hostname = "n1"               # optional: defaults to the child's name
//	aliases = ["leader"]          # optional: more names the bridge's name server answers
//	ports = ["7001:7000"]         # optional
//	init = false                  # optional, children and plain commands: true (default) runs the
//	                              #   program under a minimal init as PID 1 that forwards signals
//	                              #   and reaps zombies; false runs the program as PID 1 itself
//
//	[commands.cluster.children.n2]
//	run = ["kvnode", "--id", "2"]
//	ip = "172.18.0.2"
//	root = { rootfs = "rootfs/kv" }  # children also accept env, workdir, root, runtime
//
//	[commands.cluster.children.chaos]  # a bridge child: runs in the run's bridge
//	run = { shell = "sleep 1; pontoon partition isolate n1" }  # namespace, reaches every guest
//	bridge = true                 # no ip, hostname or ports of its own
//
//	[commands.cluster.schedule]   # optional, on a command with guests: faults run on its bridge
//	start = "2s"                  # optional: wait before the first step
//	seed = 7                      # optional integer: the nemesis's draws and seedless random
//	                              #   partitions; left out, one is drawn and logged
//	steps = [                     # exactly one of steps, nemesis and flap; each step replaces the last
//	  { partition = "isolate n1", mode = "reject", for = "5s" },  # the words of the partition verbs
//	  { impair = "loss=30% n2", dns = "nxdomain --name db", for = "5s" },  # impair / dns verbs' words
//	  { heal = true, for = "3s" },
//	]
//	# instead of steps, [commands.cluster.schedule.nemesis]: faults drawn at random, each held
//	#   for fault, then healed for recovery, for duration, of which the last healed are healed:
//	#   faults = [{ partition = "random-halves" }, { impair = "loss=20% n2" }]
//	#   fault = "5s", recovery = "3s", duration = "60s", healed = "10s" (recovery, healed optional)
//	# or [commands.cluster.schedule.flap]: one fault (partition, impair, dns, mode) on for on,
//	#   off for off, count times: partition = "isolate n1", on = "1s", off = "2s", count = 5
//
//	[commands.cluster.services.kv]  # optional: one address for several guests of the command
//	members = ["n1", "n2"]          # guests of the command; new connections go round them
//	ports = ["7000", "7001/udp"]    # optional: the ports served (default: every port)
//	mode = "random"                 # optional: "round-robin" (default) or "random"
//	skip_unreachable = true         # optional: only members the client can reach now
//	ip = "172.18.1.5"               # optional: x.y.1.1-x.y.1.254 (default: the lowest free)
//	ipv4_only = true                # optional: no IPv6 address on a dual-stack chain
//
// Rules beyond the shapes above:
//   - A plain command has run and no children or exit; a supervise command
//     has at least one child and no run, network, ip, hostname or ports.
//   - ip, hostname and ports need network = "guest" on a plain command, and
//     network = "guest" needs ip.
//   - A child is a guest (ip) or a bridge child (bridge = true), exactly one.
//   - init is a key of children and plain commands (a supervise command's
//     children each have their own); stop_timeout of commands only (a
//     supervise command's applies to all its children).
//   - Within one command no two guests share an address or a hostname
//     (compared case-insensitively), and no two forwards share a host port
//     and protocol. Different commands never run on the same bridge, so they
//     may reuse addresses.
//   - A run string is an error: write an argv list, or mark a shell command
//     explicitly with { shell = "..." }.
//   - Unknown keys are errors, with a "did you mean" suggestion when one is
//     close.
//   - rootfs existence is checked when the project directory is known
//     (Load, or ParseOptions with Options.Dir); Parse touches no file system.
//
// Tables may be written in any TOML form: [table] headers, dotted keys
// (commands.test.run = [...]) or inline tables.
package config
