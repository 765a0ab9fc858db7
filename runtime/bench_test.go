package runtime_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/hooks/hooktest"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
	"github.com/pontoon-dev/pontoon/runtime"
	"github.com/pontoon-dev/pontoon/runtime/config"
)

// median reports the median of ds in milliseconds as a benchmark metric: container starts
// have a long tail on a shared machine, and the median says what a developer waits.
func median(b *testing.B, ds []time.Duration, unit string) {
	if len(ds) == 0 {
		return
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	b.ReportMetric(float64(ds[len(ds)/2])/float64(time.Millisecond), unit)
}

// BenchmarkContainerStart times `runc run` of a busybox `echo` in a network namespace of
// its own, without networking ("none") and attached to a bridge by pontoon's hook at
// createRuntime and detached at poststop ("hook"), alternating the two so that the noise of
// a shared machine hits both alike. Reported medians: start (until the container's first
// output: what a developer waits for) and cycle (the whole run, teardown included) of each,
// and the hook's added start and cycle time. Iterations are spaced by a pause (not timed) in
// which the kernel finishes tearing down the previous container's namespace; back to back,
// that teardown holds the lock every link change needs and the next start waits for it. The
// hook is the binary PONTOON_HOOK_BIN names (bench/compare.sh gives the pontoon binary, the
// hook as pontoon ships it), or else this test binary, which links more than pontoon does and
// starts slower.
func BenchmarkContainerStart(b *testing.B) {
	hooktest.NeedRoot(b)
	hooktest.NeedCommand(b, "runc", "runc")
	s := hooktest.ChainIn(b, sandbox.TmpfsDir(b)) // state on tmpfs, as /run is
	if _, err := netsetup.CreateBridge(s.Env, "bench", netsetup.BridgeOptions{}); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	rootfs := hooktest.Rootfs(b, dir)
	self, _ := os.Executable()
	if bin := os.Getenv("PONTOON_HOOK_BIN"); bin != "" {
		self = bin
	}
	eng, err := runtime.NewEngine(config.RuntimeRunc, runtime.EngineOptions{RuntimeRoot: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	bundles := map[runtime.NetMode]string{}
	for _, mode := range []runtime.NetMode{runtime.NetNone, runtime.NetGuest} {
		c := &runtime.Container{
			ID: fmt.Sprintf("bench-%d-%s", os.Getpid(), mode), Name: "bench", Args: []string{"echo", "up"},
			Root: config.Root{Kind: config.RootRootfs, Path: rootfs}, Net: mode, Hostname: "bench",
			Pontoon: self, ChainEnv: s.Env,
		}
		if mode == runtime.NetGuest {
			c.Guest = &runtime.Guest{Bridge: "bench", Name: "bench", IP: netip.MustParseAddr("172.18.0.1")}
		}
		bundles[mode] = filepath.Join(dir, string(mode))
		if err := runtime.WriteBundle(bundles[mode], c); err != nil {
			b.Fatal(err)
		}
	}
	once := func(mode runtime.NetMode) (start, cycle time.Duration) {
		b.StopTimer()
		time.Sleep(100 * time.Millisecond)
		b.StartTimer()
		cmd := eng.Command(fmt.Sprintf("bench-%d-%s", os.Getpid(), mode), bundles[mode], "", false)
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		begin := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		first := make([]byte, 1)
		if _, err := out.Read(first); err != nil {
			b.Fatalf("no output: %v", err)
		}
		start = time.Since(begin)
		io.Copy(io.Discard, out)
		if err := cmd.Wait(); err != nil {
			b.Fatalf("%v\n%s", err, stderr.String())
		}
		return start, time.Since(begin)
	}
	var ns, nc, hs, hc []time.Duration
	for i := 0; i < b.N; i++ {
		s, c := once(runtime.NetNone)
		ns, nc = append(ns, s), append(nc, c)
		s, c = once(runtime.NetGuest)
		hs, hc = append(hs, s), append(hc, c)
	}
	m := func(ds []time.Duration) float64 {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return float64(ds[len(ds)/2]) / float64(time.Millisecond)
	}
	// What the hook adds is the median of each iteration's difference: the two runs of an
	// iteration follow each other, so a change of load on the machine shifts both.
	added := func(hook, none []time.Duration) float64 {
		d := make([]time.Duration, len(hook))
		for i := range hook {
			d[i] = hook[i] - none[i]
		}
		return m(d)
	}
	b.ReportMetric(added(hs, ns), "added-start-ms")
	b.ReportMetric(added(hc, nc), "added-cycle-ms")
	b.ReportMetric(m(ns), "none-start-ms")
	b.ReportMetric(m(hs), "hook-start-ms")
	b.ReportMetric(m(nc), "none-cycle-ms")
	b.ReportMetric(m(hc), "hook-cycle-ms")
}

// BenchmarkRunReachable times a whole `pontoon run` of three guests serving HTTP: from the
// call of Run until every guest accepts connections from the bridge. Each iteration also
// stops the run and tears its bridge down (not timed).
func BenchmarkRunReachable(b *testing.B) {
	hooktest.NeedRoot(b)
	hooktest.NeedCommand(b, "runc", "runc")
	hooktest.NeedCommand(b, "busybox", "busybox-static")
	s := hooktest.ChainIn(b, sandbox.TmpfsDir(b)) // state on tmpfs, as /run is
	dir := b.TempDir()
	var toml strings.Builder
	toml.WriteString("[commands.trio]\nsupervise = true\n")
	for i := 1; i <= 3; i++ {
		fmt.Fprintf(&toml, "[commands.trio.children.n%d]\nip = \"172.18.0.%d\"\n", i, i)
		toml.WriteString(`run = { shell = "trap 'exit 0' TERM; busybox httpd -f -p 7000 -h /tmp & wait" }` + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, config.FileName), []byte(toml.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	p, err := config.Load(filepath.Join(dir, config.FileName))
	if err != nil {
		b.Fatal(err)
	}
	runcDir := b.TempDir()
	var ds []time.Duration
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		start := time.Now()
		reached := make(chan time.Duration, 1)
		opt := runtime.Options{
			Env:    s.Env,
			Engine: runtime.EngineOptions{RuntimeRoot: runcDir},
			Stdin:  strings.NewReader(""),
			Stdout: discard{}, Stderr: discard{}, Log: discard{},
			StopTimeout: 5 * time.Second,
			Started: func(st runtime.Started) {
				for _, ip := range st.Guests {
					for !dial(st.BridgeNetns, ip) {
						time.Sleep(time.Millisecond)
					}
				}
				reached <- time.Since(start)
				cancel()
			},
		}
		if _, err := runtime.Run(ctx, p, "trio", opt); err != nil {
			b.Fatal(err)
		}
		select {
		case d := <-reached:
			ds = append(ds, d)
		default:
			b.Fatal("the run ended before every guest was reachable")
		}
		cancel()
	}
	median(b, ds, "reachable-ms")
}

// dial reports whether ip:7000 accepts a TCP connection from the bridge's namespace.
func dial(netnsPath string, ip netip.Addr) bool {
	ok := false
	ns.Do(netnsPath, func() error {
		c, err := net.DialTimeout("tcp", netip.AddrPortFrom(ip, 7000).String(), 50*time.Millisecond)
		if err == nil {
			c.Close()
			ok = true
		}
		return nil
	})
	return ok
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
