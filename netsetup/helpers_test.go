package netsetup_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/internal/kernel"
	"github.com/pontoon-dev/pontoon/internal/testkit"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"github.com/pontoon-dev/pontoon/netsetup/probe"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
	"github.com/vishvananda/netlink"
)

// okTimeout bounds waits for what must happen. They return as soon as it does, so the bound
// can allow for a machine loaded by other suites.
const (
	okTimeout   = 5 * time.Second
	failTimeout = 300 * time.Millisecond
)

// Child processes: some tests need real pontoon processes (concurrent creators, a creator
// killed with SIGKILL), so they re-execute this test binary with childMode set, and TestMain
// runs the requested operation instead of the tests.
const (
	childMode = "PONTOON_TEST_CHILD" // operation to run
	childEnv  = "PONTOON_TEST_ENV"   // the sandbox's netsetup.Env, as JSON
	childArg  = "PONTOON_TEST_ARG"   // the operation's argument (a bridge name or prefix)
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(childMode); mode != "" {
		if err := runChild(mode); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runChild(mode string) error {
	var env netsetup.Env
	if err := json.Unmarshal([]byte(os.Getenv(childEnv)), &env); err != nil {
		return fmt.Errorf("child: bad %s: %w", childEnv, err)
	}
	arg := os.Getenv(childArg)
	switch mode {
	case "create-bridge":
		b, err := netsetup.CreateBridge(env, arg, netsetup.BridgeOptions{})
		if err != nil {
			return err
		}
		return json.NewEncoder(os.Stdout).Encode(b.Slot)
	case "gateway-up":
		os.Stdout.WriteString("started\n")
		_, err := netsetup.GatewayUp(env, netsetup.GatewayOptions{})
		return err
	case "gateway-down-force":
		return netsetup.GatewayDown(env, true)
	case "guest-add-netns":
		// Attaches the namespace file named by arg as guest g of bridge b at 172.18.0.7.
		_, err := netsetup.AddGuest(env, "b", "g", netsetup.GuestOptions{IP: "172.18.0.7", Netns: arg})
		return err
	case "churn":
		// Builds and tears down owned bridges with guests and a port forward until killed,
		// so that a SIGKILL lands at an arbitrary point of some operation.
		self := netsetup.Self()
		os.Stdout.WriteString("started\n")
		for i := 0; ; i++ {
			name := fmt.Sprintf("%s-%d", arg, i)
			port, _ := netsetup.ParsePort(fmt.Sprintf("%d:g1:80/tcp", 20000+i%1000))
			if _, err := netsetup.CreateBridge(env, name, netsetup.BridgeOptions{Owner: &self, Ports: []netsetup.Port{port}}); err != nil {
				return err
			}
			for j := 1; j <= 3; j++ {
				if _, err := netsetup.AddGuest(env, name, fmt.Sprintf("g%d", j), netsetup.GuestOptions{IP: fmt.Sprintf("172.18.0.%d", j)}); err != nil {
					return err
				}
			}
			if err := netsetup.DelGuest(env, name, "g2"); err != nil {
				return err
			}
			if err := netsetup.DestroyBridge(env, name); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("child: unknown mode %q", mode)
}

// child returns a command that runs mode against env in a new process.
func child(t testing.TB, env netsetup.Env, mode, arg string) *exec.Cmd {
	t.Helper()
	e, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childMode+"="+mode, childEnv+"="+string(e), childArg+"="+arg)
	// A test that fails before it reaps its child must not leave it running.
	t.Cleanup(func() {
		if cmd.Process != nil && cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd
}

func needRoot(t testing.TB) {
	t.Helper()
	testkit.NeedRoot(t, "creates network namespaces")
}

// newSandbox returns a hermetic stand-in host, removed when the test ends (also on failure).
func newSandbox(t testing.TB) *sandbox.Sandbox {
	t.Helper()
	needRoot(t)
	return sandbox.ForTest(t, "")
}

// newChain returns a sandbox with its gateway up.
func newChain(t testing.TB, opt netsetup.GatewayOptions) *sandbox.Sandbox {
	t.Helper()
	s := newSandbox(t)
	if _, err := netsetup.GatewayUp(s.Env, opt); err != nil {
		t.Fatal(err)
	}
	return s
}

func mustBridge(t testing.TB, env netsetup.Env, name string, opt netsetup.BridgeOptions) *netsetup.BridgeState {
	t.Helper()
	b, err := netsetup.CreateBridge(env, name, opt)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustGuest(t testing.TB, env netsetup.Env, bridge, name, ip string) *netsetup.Guest {
	t.Helper()
	g, err := netsetup.AddGuest(env, bridge, name, netsetup.GuestOptions{IP: ip})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func mustPorts(t testing.TB, specs ...string) []netsetup.Port {
	t.Helper()
	var out []netsetup.Port
	for _, s := range specs {
		p, err := netsetup.ParsePort(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// addr takes an address as a literal or as a Guest's IP.
func addr[T string | netip.Addr](v T) netip.Addr {
	if a, ok := any(v).(netip.Addr); ok {
		return a
	}
	return netip.MustParseAddr(any(v).(string))
}

func serve(t testing.TB, nsPath string, ip netip.Addr) {
	t.Helper()
	s, err := probe.Serve(nsPath, ip, probe.Port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
}

func mustReach(t testing.TB, from string, to netip.Addr) {
	t.Helper()
	if err := probe.All(from, to, probe.Port, okTimeout); err != nil {
		t.Errorf("expected %s reachable from %s: %v", to, from, err)
	}
}

// mustNotReach checks that TCP, UDP and ICMP all fail. Only meaningful when something at
// `to` would answer if a path existed: callers serve there and check that first.
func mustNotReach(t testing.TB, from string, to netip.Addr) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, f := range []func() error{
		func() error { return probe.TCP(from, to, probe.Port, failTimeout) },
		func() error { return probe.UDP(from, to, probe.Port, failTimeout) },
		func() error { return probe.Ping(from, to, failTimeout) },
	} {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = f() }()
	}
	wg.Wait()
	for i, proto := range []string{"TCP", "UDP", "ICMP"} {
		if errs[i] == nil {
			t.Errorf("expected no %s path to %s from %s", proto, to, from)
		}
	}
}

// serveReply answers every TCP connection and UDP datagram to ip:port inside nsPath with
// reply(peer), where peer is the source address the server sees. It tells which namespace a
// packet really reached and what NAT made of its source.
func serveReply(t testing.TB, nsPath string, ip netip.Addr, port int, reply func(peer netip.Addr) string) {
	t.Helper()
	ap := netip.AddrPortFrom(ip, uint16(port)).String()
	var l net.Listener
	var pc net.PacketConn
	err := ns.Do(nsPath, func() (err error) {
		if l, err = net.Listen("tcp4", ap); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp4", ap)
		return err
	})
	if err != nil {
		if l != nil {
			l.Close()
		}
		t.Fatalf("serve %s in %s: %v", ap, nsPath, err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			peer := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
			c.Write([]byte(reply(peer)))
			c.Close()
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 512)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			peer := from.(*net.UDPAddr).AddrPort().Addr().Unmap()
			pc.WriteTo([]byte(reply(peer)), from)
		}
	}()
	t.Cleanup(func() { l.Close(); pc.Close(); wg.Wait() })
}

// serveIdentity answers with a fixed identity.
func serveIdentity(t testing.TB, nsPath string, ip netip.Addr, port int, id string) {
	t.Helper()
	serveReply(t, nsPath, ip, port, func(netip.Addr) string { return id })
}

// ask connects from nsPath to ip:port over proto ("tcp" or "udp") and returns the answer.
func ask(nsPath string, ip netip.Addr, port int, proto string, timeout time.Duration) (string, error) {
	ap := netip.AddrPortFrom(ip, uint16(port)).String()
	var c net.Conn
	err := ns.Do(nsPath, func() (err error) {
		c, err = net.DialTimeout(proto+"4", ap, timeout)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", proto, ap, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if proto == "tcp" {
		b, err := io.ReadAll(c)
		if err != nil {
			return "", fmt.Errorf("%s %s: %w", proto, ap, err)
		}
		return string(b), nil
	}
	if _, err := c.Write([]byte("?")); err != nil {
		return "", fmt.Errorf("%s %s: %w", proto, ap, err)
	}
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", proto, ap, err)
	}
	return string(buf[:n]), nil
}

// mustAnswer checks that ip:port answers from nsPath, over TCP and UDP, with want.
func mustAnswer(t testing.TB, nsPath string, ip netip.Addr, port int, want string) {
	t.Helper()
	for _, proto := range []string{"tcp", "udp"} {
		got, err := ask(nsPath, ip, port, proto, okTimeout)
		if err != nil {
			t.Errorf("from %s: %v", nsPath, err)
		} else if got != want {
			t.Errorf("from %s, %s %s:%d answered %q, want %q", nsPath, proto, ip, port, got, want)
		}
	}
}

// inNetns runs a command inside the network namespace at nsPath (scene setup and
// inspection with the tools an administrator would use).
func inNetns(t testing.TB, nsPath string, argv ...string) string {
	t.Helper()
	out, err := exec.Command("nsenter", append([]string{"--net=" + nsPath}, argv...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s in %s: %v\n%s", strings.Join(argv, " "), nsPath, err, out)
	}
	return string(out)
}

func handleAt(t testing.TB, nsPath string) *kernel.NS {
	t.Helper()
	// Dumps retry when interrupted: tests list links and neighbours while the kernel is
	// still releasing what they removed.
	h, err := kernel.OpenNS(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// links lists the interfaces of a namespace with their IPv4 addresses, sorted.
func links(t testing.TB, nsPath string) []string {
	t.Helper()
	h, err := kernel.OpenNS(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ls, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range ls {
		s := l.Attrs().Name
		as, _ := h.AddrList(l, netlink.FAMILY_V4)
		for _, a := range as {
			s += " " + a.IPNet.String()
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func linkNames(t testing.TB, nsPath string) []string {
	t.Helper()
	var out []string
	for _, l := range links(t, nsPath) {
		out = append(out, strings.Fields(l)[0])
	}
	return out
}

func ipForward(t testing.TB, nsPath string) string {
	t.Helper()
	return strings.TrimSpace(inNetns(t, nsPath, "cat", "/proc/sys/net/ipv4/ip_forward"))
}

// files lists the regular files below dir (relative paths, sorted), the lock file excepted.
func files(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() != "lock" {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// unchanged fails the test when the chain's snapshot differs from before: what did something
// that must change nothing, and whether the chain or the host is what it must leave alone.
func unchanged(t testing.TB, s *sandbox.Sandbox, before, what, where string) {
	t.Helper()
	if after := snapshot(t, s); after != before {
		t.Errorf("%s changed the %s:\nbefore\n%s\nafter\n%s", what, where, before, after)
	}
}

// snapshot describes everything a chain consists of in a sandbox: state files with their
// contents, pinned namespaces, host and gateway links with addresses, and the host's and
// gateway's nftables rule sets. Equal snapshots mean nothing changed.
func snapshot(t testing.TB, s *sandbox.Sandbox) string {
	t.Helper()
	var b strings.Builder
	for _, f := range files(t, s.Env.StateDir) {
		data, _ := os.ReadFile(filepath.Join(s.Env.StateDir, f))
		fmt.Fprintf(&b, "state %s:\n%s\n", f, data)
	}
	fmt.Fprintf(&b, "pins: %v\n", files(t, s.Env.NetnsDir))
	fmt.Fprintf(&b, "host links: %q\n", links(t, s.Host))
	fmt.Fprintf(&b, "host forwarding: %s\n", ipForward(t, s.Host))
	fmt.Fprintf(&b, "host ruleset:\n%s\n", inNetns(t, s.Host, "nft", "list", "ruleset"))
	if gw := s.Env.GatewayNetns(); ns.IsPinned(gw) {
		fmt.Fprintf(&b, "gateway links: %q\n", links(t, gw))
		fmt.Fprintf(&b, "gateway ruleset:\n%s\n", inNetns(t, gw, "nft", "list", "ruleset"))
	}
	return b.String()
}

// wantErr checks that err is non-nil and mentions every piece of want.
func wantErr(t testing.TB, what string, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: succeeded, want an error mentioning %q", what, want)
		return
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error %q does not mention %q", what, err, w)
		}
	}
}

// deadProcess returns the identity of a process that has exited.
func deadProcess(t testing.TB) netsetup.Process {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p, err := netsetup.ProcessOf(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if p.Alive() {
		t.Fatal("killed process still alive")
	}
	return p
}

// startIn starts `sleep` inside the network namespace at nsPath and returns it; it is killed
// when the test ends.
func startIn(t testing.TB, nsPath string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := ns.Start(ns.Spec{Net: nsPath}, nil, cmd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// newNetns creates and pins a scratch network namespace, removed when the test ends.
func newNetns(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := ns.New(ns.Spec{Net: p}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Remove(p) })
	return p
}
