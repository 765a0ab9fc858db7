// Package testenv gives Go integration tests of distributed systems a private pontoon network:
// guests with their own addresses, hostnames and /etc/hosts, processes started inside them,
// reachability checks, and every partition and impairment of package partition.
//
// A test calls New and gets an Env: a whole chain (stand-in host, gateway, one bridge) built
// inside a throwaway sandbox (package netsetup/sandbox), so it never touches the real host's
// links, routes or firewall, and tests may run in parallel. Everything the Env created --
// processes, probe servers, namespaces, state files -- is removed through t.Cleanup, also
// when the test fails or panics.
//
//	func TestQuorum(t *testing.T) {
//		t.Parallel()
//		env := testenv.New(t) // skips without root or user namespaces
//		for i, name := range []string{"n1", "n2", "n3"} {
//			g := env.Guest(name, fmt.Sprintf("172.18.0.%d", i+1))
//			g.Start(ctx, nodeBinary, "--id", fmt.Sprint(i+1), ...)
//		}
//		env.Isolate("n1")
//		env.MustNotReach("n1", "n2")
//		env.Heal()
//		env.MustReach("n1", "n2")
//	}
//
// # Who sees what
//
// A guest is a network namespace with one interface (eth0) on the bridge, plus a UTS namespace
// whose hostname is the guest's name. A process started by Guest.Start or Guest.Run runs in
// those namespaces and in a private mount namespace in which /etc/hosts names every guest of
// the Env and /etc/resolv.conf names the bridge's name server; the host's files stay as they
// are. Guests added later appear in the /etc/hosts of processes already running.
//
// # Names and DNS faults
//
// The bridge's name server (package names) runs in the test's process from New on. It
// answers for every guest by name, hostname and alias (WithAliases), and forwards other names
// to the sandbox's upstream resolver. DNSFault makes it answer some queries wrongly (NXDOMAIN,
// SERVFAIL, a wrong address, late, or not at all; per queried name or asking guest) until
// Heal. Resolvers read /etc/hosts first: WithDNSNames leaves the guests out of it, so that
// every name is asked of the name server and its faults.
//
// The test process itself stays in the real host's namespaces. It reaches guests through
// Env.DialContext and Env.HTTPClient, which dial from the bridge namespace: an observer
// that sees every guest and that partitions do not cut (only loss and rate limits on a guest's
// own link affect it). Guest.DialContext and Guest.HTTPClient dial as the guest, subject to
// partitions.
//
// # Containers
//
// Guest.StartContainer runs a container in a guest instead of a plain process, through
// package runtime and a container engine: runc by default, crun, or containerd (which needs
// its daemon and the pontoon-containerd helper; testenv itself never links containerd's
// client). The container joins the guest's network and UTS namespaces, so it has the guest's
// address and hostname and every partition and impairment of the Env applies to it; the
// guests' /etc/hosts and /etc/resolv.conf are bind-mounted read-only. Its root is, as in
// pontoon.toml, the host's system directories read-only with a private /tmp by default
// (ContainerOptions.ProjectDir adds a read-write /work), a root filesystem directory
// (Rootfs), or an image already in containerd's store (Image). Its output is captured and
// logged like a process's, and it is killed and deleted -- engine state and bundle -- when
// the test ends, also on failure or panic. Guest.RunContainer runs one to completion. A
// test using containers is skipped when the engine is not installed.
//
//	srv := env.Lookup("n1").StartContainer(ctx, testenv.ContainerOptions{
//		Argv:   []string{"/bin/mynode", "--listen", ":7000"},
//		Rootfs: "testdata/rootfs",
//	})
//	out, err := env.Lookup("n2").RunContainer(ctx, testenv.ContainerOptions{
//		Argv: []string{"sh", "-c", "wget -q -O- http://n1:7000/health"},
//	})
//	env.Isolate("n1") // cuts srv off like any process of n1
//
// # Partitions and impairments
//
// Env.Isolate, Disjoint, Split, Block, the random constructors and Heal apply partitions of
// package partition to the Env's bridge in one atomic nftables transaction; they fail the test
// on bad input and skip it when the kernel lacks a feature. Loss, Rate, Delay and Impair
// return their error instead, because what they need depends on the kernel: delay and the
// other netem settings fail with an error matching partition.ErrNetemUnavailable on kernels
// without netem. Env.RequireNetem skips a test up front on such kernels.
//
// A partition covers the guests that exist when it is applied: a guest added afterwards talks
// to every guest until the next partition. Env.MustMatch checks every ordered pair of guests
// at once against the expected connectivity, one direction at a time.
//
// # Captures and schedules
//
// Env.Capture records the guests' traffic into a pcapng file, one interface per guest, with
// the frames the partition dropped on their sender's interface (package capture). Env.Schedule
// runs a fault schedule (package schedule): steps, a seeded nemesis or a flapping fault, each
// step in the bridge's event log with source "schedule", the bridge healed at its end.
//
//	c := env.Capture(filepath.Join(t.TempDir(), "n1.pcapng"), capture.Options{Guests: []string{"n1"}})
//	r := env.Schedule(schedule.Spec{Seed: 7, Nemesis: &schedule.Nemesis{
//		Faults: []schedule.Fault{{Partition: "random-halves"}, {Impair: "loss=20% n2"}},
//		Fault:  time.Second, Recovery: time.Second, Duration: 20 * time.Second, Healed: 5 * time.Second}})
//	// ... the workload ...
//	err := r.Wait()
//	res, err := c.Stop()
//
// # Without root
//
// A test binary that links testenv and runs as a normal user does not run its tests in the
// user's own namespaces: at start (package init) it runs itself again, whole and with the same
// flags, as uid 0 of a user namespace of its own (package internal/userns: the user's uid and
// gid map to 0, with new mount, network and UTS namespaces), passes signals on, and exits as
// that run did. There New builds the same chain as for root, and everything above works:
// guests, processes, probes, partitions, impairments, names, captures, schedules, counters,
// and containers through runc and crun in their rootless mode. Differences: only one uid and
// gid exist inside (a process cannot switch to another user, and files of other users show
// as nobody), the test process's own network is a fresh one with loopback alone (no host
// interfaces), containerd is refused (its daemon is the host's root), and nftables
// transactions are bounded by the host's net.core.rmem_max. Without user namespaces
// (user.max_user_namespaces=0, an AppArmor restriction, ...) New skips, saying which
// setting is in the way; PONTOON_TESTENV_USERNS=0 keeps the binary out of a user namespace.
//
// # Failure modes
//
// Methods that fail the test (New, Guest, Start, StartContainer, MustReach, Isolate, ...) must
// be called from the test's goroutine, like t.Fatal. Methods that return an error (Probe,
// Reachable, CanConnect, Run, RunContainer, Loss, ...) may be called from any goroutine. At
// the end of the test the output of every process and container the Env started is logged
// with t.Log, which go test shows when the test fails (or with -v).
//
// A test binary killed by SIGKILL cannot run its cleanups: its processes and its sandbox (a
// directory under the test's temporary directory holding pinned namespaces) stay behind and
// can be removed by unmounting the pins and deleting the directory. Its containers' engines
// get SIGTERM and pass it on; containers that ignore it stay too, listed by
// `runc --root SANDBOX/containers/engine list` (unless ContainerOptions.Engine named another
// state directory).
package testenv
