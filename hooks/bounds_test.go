package hooks_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/hooks"
	"github.com/pontoon-dev/pontoon/hooks/hooktest"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
)

// processIn starts a process inside the network namespace at path, standing in for a
// container whose engine was told to join it, and kills it when the test ends.
func processIn(t *testing.T, path string) int {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := ns.Start(ns.Spec{Net: path}, nil, cmd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

// The hook once accepted a 1 MB container id and wrote it into the bridge's record, and
// attached a container that shares pontoon's gateway or a bridge namespace (the gateway got
// an eth0 on the bridge). Each is refused with one line naming what is wrong, and the
// record stays as it was.
func TestAttachRefusesOversizedAndOwnNamespaces(t *testing.T) {
	s := hooktest.Chain(t)
	b, err := netsetup.CreateBridge(s.Env, "hk", netsetup.BridgeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := hooks.Attach(s.Env, state("holder", netnsProcess(t), annotations("hk", "taken", "172.18.0.9"))); err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(s.Env.StateDir, "bridges", "hk.json")
	before, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	pid := netnsProcess(t)
	huge := strings.Repeat("a", 1<<20)
	longHostname := annotations("hk", "x", "172.18.0.3")
	longHostname[hooks.AnnotationHostname] = huge
	longPorts := annotations("hk", "x", "172.18.0.3")
	longPorts[hooks.AnnotationPorts] = strings.Repeat("8080:80,", 1<<17)
	tests := []struct {
		name, id string
		pid      int
		ann      map[string]string
		msg      string
	}{
		{"1 MB container id", huge, pid, annotations("hk", "x", "172.18.0.3"), "container id is 1048576 bytes long"},
		{"1 MB hostname", "c", pid, longHostname, "annotation pontoon.hostname is 1048576 bytes long"},
		{"1 MB ports", "c", pid, longPorts, "annotation pontoon.ports is 1048576 bytes long"},
		{"gateway namespace", "c", processIn(t, s.Env.GatewayNetns()), annotations("hk", "x", "172.18.0.3"), "gateway"},
		{"bridge namespace", "c", processIn(t, b.Netns(s.Env)), annotations("hk", "x", "172.18.0.3"), `bridge "hk"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr strings.Builder
			code := hooks.Main(hooks.Args(hooks.StageCreateRuntime, s.Env)[1:], stdin(t, state(tt.id, tt.pid, tt.ann)), &stderr)
			msg := stderr.String()
			if code == 0 || !strings.Contains(msg, tt.msg) || strings.Count(msg, "\n") != 1 || len(msg) > 1000 {
				t.Fatalf("exit %d, stderr %.300q; want failure with one short line containing %q", code, msg, tt.msg)
			}
			if after, err := os.ReadFile(record); err != nil || string(after) != string(before) {
				t.Fatalf("the bridge's record changed: %v\n%s", err, after)
			}
		})
	}
	if got := linkNamesIn(t, s.Env.GatewayNetns()); strings.Contains(got, "eth0") {
		t.Errorf("gateway got an eth0: %s", got)
	}
}

func linkNamesIn(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("nsenter", "--net="+path, "ip", "-o", "link").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link in %s: %v\n%s", path, err, out)
	}
	return string(out)
}
