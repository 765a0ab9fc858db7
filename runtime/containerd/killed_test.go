package containerd_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pontoon-dev/pontoon/hooks/hooktest"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/runtime"
	"github.com/pontoon-dev/pontoon/runtime/config"
	"github.com/pontoon-dev/pontoon/runtime/internal/enginetest"
)

// TestRunContainerdKilled reproduces `kill -9` of `pontoon run` whose three children, in
// containerd, run `sleep`: after `pontoon gc` (runtime.GC, then netsetup.GC) containerd holds
// no container of the run, no process of it runs and its bridge is gone.
func TestRunContainerdKilled(t *testing.T) {
	d := enginetest.StartContainerd(t)
	s := hooktest.Chain(t)
	self, _ := os.Executable()
	const token = "8640600"
	path := filepath.Join(t.TempDir(), config.FileName)
	if err := os.WriteFile(path, []byte(enginetest.Sleepers(token, "[settings]\nruntime = \"containerd\"\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var out strings.Builder
	w := writerFunc(func(b []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(b) })
	output := func() string { mu.Lock(); defer mu.Unlock(); return out.String() }
	cmd, done := enginetest.StartRun(t, enginetest.SubprocessRun{Project: path, Command: "sleepers", Env: s.Env,
		Engine: runtime.EngineOptions{ContainerdAddress: d.Address, ContainerdNamespace: d.Namespace,
			ContainerdHelper: []string{self, runtime.ContainerdHelperName}, RuntimeRoot: t.TempDir()}}, w)
	if !enginetest.Poll(t, "the children to start", func() bool {
		select {
		case <-done:
			t.Fatalf("the run ended by itself:\n%s", output())
		default:
		}
		return strings.Count(output(), "ready") == 3
	}) {
		t.Fatalf("output of the run:\n%s", output())
	}
	cmd.Process.Kill()
	<-done

	rep, err := runtime.GC(s.Env)
	if err != nil {
		t.Fatalf("runtime.GC: %v", err)
	}
	t.Logf("runtime.GC removed %v", rep.Containers)
	if _, err := netsetup.GC(s.Env); err != nil {
		t.Fatalf("netsetup.GC: %v", err)
	}
	ctr, err := exec.Command("ctr", "--address", d.Address, "--namespace", d.Namespace, "containers", "list", "-q").CombinedOutput()
	if err != nil || strings.TrimSpace(string(ctr)) != "" {
		t.Errorf("containers left in containerd: %q %v", ctr, err)
	}
	if left := enginetest.WithArg(token); len(left) != 0 {
		t.Errorf("processes of the run left: %+v", left)
	}
	if err := hooktest.NoBridges(s.Env); err != nil {
		t.Error(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Env.StateDir, "runs")); len(ents) != 0 {
		t.Errorf("bundles left: %v", ents)
	}
}
