package netsetup_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"golang.org/x/sys/unix"
)

// Bridge "a" with guest "b-c" and bridge "a-b" with guest "c" once mapped to the same
// namespace path: the second add failed and its rollback destroyed the first guest. Both adds
// must succeed and each guest keep its own namespace.
func TestGuestPathsUnambiguous(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "a", netsetup.BridgeOptions{})
	mustBridge(t, s.Env, "a-b", netsetup.BridgeOptions{})
	first := mustGuest(t, s.Env, "a", "b-c", "172.18.0.1")
	second := mustGuest(t, s.Env, "a-b", "c", "172.18.0.1")
	if first.Netns == second.Netns || first.UTS == second.UTS {
		t.Fatalf("two guests share namespace paths: %s %s / %s %s", first.Netns, first.UTS, second.Netns, second.UTS)
	}
	for _, g := range []*netsetup.Guest{first, second} {
		if !ns.IsPinned(g.Netns) || !ns.IsPinned(g.UTS) {
			t.Errorf("guest %s: namespaces not pinned", g.Name)
		}
		if !slices.Contains(linkNames(t, g.Netns), "eth0") {
			t.Errorf("guest %s lost its eth0", g.Name)
		}
	}
	var a, b unix.Stat_t
	unix.Stat(first.Netns, &a)
	unix.Stat(second.Netns, &b)
	if a.Ino == b.Ino {
		t.Errorf("both guests are in the same namespace")
	}
	if _, g, err := netsetup.FindGuest(s.Env, "a", "b-c"); err != nil || g.Phase != netsetup.PhaseReady {
		t.Errorf("first guest after the second add: %+v, %v", g, err)
	}
}

// `pontoon guest del ../../evil g` once read and rewrote /run/evil.json: a bridge name that
// is not a name is refused by every entry point before any file is touched.
func TestBridgeNameNeverNamesAFile(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	// Where "bridges/../../evil.json" points from the state directory.
	evil := filepath.Join(filepath.Dir(s.Env.StateDir), "evil.json")
	const content = `{"name":"evil","guests":[{"name":"g","netns":"/tmp/victim","owned":true}]}`
	if err := os.WriteFile(evil, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(victim, nil, 0o600)
	before := snapshot(t, s)
	bad := "../../evil"
	for _, c := range []struct {
		what string
		do   func() error
	}{
		{"DelGuest", func() error { return netsetup.DelGuest(s.Env, bad, "g") }},
		{"DelGuestByKey", func() error { return netsetup.DelGuestByKey(s.Env, "k", bad) }},
		{"AddGuest", func() error {
			_, err := netsetup.AddGuest(s.Env, bad, "g", netsetup.GuestOptions{IP: "172.18.0.1"})
			return err
		}},
		{"FindGuest", func() error { _, _, err := netsetup.FindGuest(s.Env, bad, "g"); return err }},
		{"GetBridge", func() error { _, err := netsetup.GetBridge(s.Env, bad); return err }},
		{"DestroyBridge", func() error { return netsetup.DestroyBridge(s.Env, bad) }},
		{"CreateBridge", func() error { _, err := netsetup.CreateBridge(s.Env, bad, netsetup.BridgeOptions{}); return err }},
	} {
		wantErr(t, c.what, c.do(), `"../../evil"`, "bridge name")
	}
	if data, err := os.ReadFile(evil); err != nil || string(data) != content {
		t.Errorf("%s was changed: %q, %v", evil, data, err)
	}
	if _, err := os.Stat(victim); err != nil {
		t.Errorf("a path named by the foreign file was removed: %v", err)
	}
	unchanged(t, s, before, "refused calls", "chain")
}

// The gateway's and the bridges' own namespaces are refused as guests, by path and by the
// pid of a process inside, as the host's is: the gateway once ended up with an eth0 on a
// bridge.
func TestOwnNamespacesRefusedAsGuests(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	b := mustBridge(t, s.Env, "b", netsetup.BridgeOptions{})
	mustBridge(t, s.Env, "other", netsetup.BridgeOptions{})
	before := snapshot(t, s)
	inGateway := startIn(t, s.Env.GatewayNetns())
	inBridge := startIn(t, b.Netns(s.Env))
	for _, c := range []struct {
		what string
		opt  netsetup.GuestOptions
		want string
	}{
		{"gateway by path", netsetup.GuestOptions{Netns: s.Env.GatewayNetns()}, "gateway"},
		{"gateway by pid", netsetup.GuestOptions{PID: inGateway.Process.Pid}, "gateway"},
		{"own bridge by path", netsetup.GuestOptions{Netns: b.Netns(s.Env)}, `bridge "b"`},
		{"own bridge by pid", netsetup.GuestOptions{PID: inBridge.Process.Pid}, `bridge "b"`},
		{"other bridge by path", netsetup.GuestOptions{Netns: s.Env.BridgeNetns("other")}, `bridge "other"`},
	} {
		c.opt.IP = "172.18.0.5"
		_, err := netsetup.AddGuest(s.Env, "b", "x", c.opt)
		wantErr(t, c.what, err, c.want, "namespace of its own")
		if !errors.Is(err, netsetup.ErrPontoonNamespace) {
			t.Errorf("%s: %v is not ErrPontoonNamespace", c.what, err)
		}
	}
	unchanged(t, s, before, "refused attaches", "chain")
	if got := linkNames(t, s.Env.GatewayNetns()); slices.Contains(got, "eth0") {
		t.Errorf("gateway got an eth0: %v", got)
	}
}

// `guest add` killed part-way left its guest in phase creating for good: its address was
// "already used" and gc said nothing to collect. A guest add is killed (SIGKILL) while it
// attaches; gc must remove the guest, after which the address is free again. It must also
// when the killed process has not been reaped yet (a shell's `timeout -s KILL`, an init that
// reaps late): gc took the zombie for a live creator and said "nothing to collect".
func TestGCAfterKilledGuestAdd(t *testing.T) {
	t.Parallel()
	for _, reaped := range []bool{true, false} {
		t.Run(fmt.Sprintf("reaped=%v", reaped), func(t *testing.T) {
			t.Parallel()
			s := newChain(t, netsetup.GatewayOptions{})
			// A forward to the guest: its rules come with the guest's attach.
			mustBridge(t, s.Env, "b", netsetup.BridgeOptions{Ports: mustPorts(t, "18080:g:80")})
			// The child attaches a FIFO as the namespace: opening it blocks, so the child
			// stays inside the attach, after its record is written, until it is killed.
			fifo := filepath.Join(t.TempDir(), "fifo")
			if err := unix.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := child(t, s.Env, "guest-add-netns", fifo)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			deadline := time.Now().Add(10 * time.Second)
			for {
				b, err := netsetup.GetBridge(s.Env, "b")
				if err != nil {
					t.Fatal(err)
				}
				if len(b.Guests) == 1 && b.Guests[0].Phase == netsetup.PhaseCreating {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the guest add never recorded its guest: %+v", b.Guests)
				}
				time.Sleep(5 * time.Millisecond)
			}
			cmd.Process.Signal(syscall.SIGKILL)
			if reaped {
				cmd.Wait()
			} else {
				waitZombie(t, cmd.Process.Pid)
			}
			// Until gc, the killed add's guest holds its name and address, and says what frees them.
			_, err := netsetup.AddGuest(s.Env, "b", "g2", netsetup.GuestOptions{IP: "172.18.0.7"})
			wantErr(t, "add on the killed guest's address", err, "holds the address, left half-added by a command that was killed; run `pontoon gc`")
			_, err = netsetup.AddGuest(s.Env, "b", "g", netsetup.GuestOptions{IP: "172.18.0.8"})
			wantErr(t, "add under the killed guest's name", err, "holds the name, left half-added by a command that was killed; run `pontoon gc`")
			// Until gc, the guest is half attached: nothing of it passes for a change by hand.
			if p, err := netsetup.BridgeProblems(s.Env, "b"); err != nil || len(p) > 0 {
				t.Errorf("bridge problems with the guest half attached: %q, %v", p, err)
			}
			rep, err := netsetup.GC(s.Env)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rep.Guests, []string{"b/g"}) {
				t.Errorf("gc report %+v, want guest b/g removed", rep)
			}
			mustGuest(t, s.Env, "b", "g2", "172.18.0.7")
			if rep, err := netsetup.GC(s.Env); err != nil || len(rep.Guests)+len(rep.Bridges)+len(rep.Orphans) > 0 {
				t.Errorf("second gc: %+v, %v", rep, err)
			}
		})
	}
}

// waitZombie waits until process pid has exited, every thread of it, and is a zombie its
// parent (this test) has not reaped. (Its first thread turns zombie before the others have
// finished exiting: under emulation that can take a while.)
func waitZombie(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatalf("process %d: %v", pid, err)
		}
		s := string(b)
		if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) > 17 && f[0] == "Z" && f[17] == "1" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d is no zombie 10 s after its kill", pid)
		}
	}
}

// A bridge's namespace removed by hand (`ip netns del pontoon-br-X`: unmount and remove the
// pin, or only unmount it) once still listed as ready, and gc said nothing to collect. The
// listing must say what is wrong and gc must remove the bridge and say so.
func TestBridgeNamespaceDeletedByHand(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		what   string
		remove bool
	}{{"ip netns del", true}, {"umount", false}} {
		t.Run(c.what, func(t *testing.T) {
			t.Parallel()
			s := newChain(t, netsetup.GatewayOptions{})
			b := mustBridge(t, s.Env, "x", netsetup.BridgeOptions{})
			g := mustGuest(t, s.Env, "x", "g", "172.18.0.1")
			mustBridge(t, s.Env, "keep", netsetup.BridgeOptions{})
			p := b.Netns(s.Env)
			if err := unix.Unmount(p, unix.MNT_DETACH); err != nil {
				t.Fatal(err)
			}
			if c.remove {
				os.Remove(p)
			}
			x := findBridgeIn(t, s.Env, "x")
			if x == nil || x.Problem == "" || !strings.Contains(x.Problem, p) {
				t.Errorf("Bridges lists x as %+v, want a problem naming %s", x, p)
			}
			if k := findBridgeIn(t, s.Env, "keep"); k == nil || k.Problem != "" {
				t.Errorf("healthy bridge listed as %+v", k)
			}
			rep, err := netsetup.GC(s.Env)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rep.Broken, []string{"x"}) {
				t.Errorf("gc report %+v, want broken bridge x removed", rep)
			}
			if findBridgeIn(t, s.Env, "x") != nil {
				t.Errorf("bridge x still listed after gc")
			}
			if exists(g.Netns) || exists(p) {
				t.Errorf("pins left: guest %v, bridge %v", exists(g.Netns), exists(p))
			}
			if got := linkNames(t, s.Env.GatewayNetns()); slices.Contains(got, fmt.Sprintf("s%d", b.Slot)) {
				t.Errorf("uplink of x left in the gateway: %v", got)
			}
			if rep, err := netsetup.GC(s.Env); err != nil || len(rep.Broken)+len(rep.Bridges)+len(rep.Orphans) > 0 {
				t.Errorf("second gc: %+v, %v", rep, err)
			}
		})
	}
}

func findBridgeIn(t *testing.T, env netsetup.Env, name string) *netsetup.BridgeState {
	t.Helper()
	return findBridge(t, env, name)
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }
