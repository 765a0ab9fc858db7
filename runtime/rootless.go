package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/pontoon-dev/pontoon/internal/userns"
	"github.com/pontoon-dev/pontoon/runtime/config"
)

// ErrRootlessEngine is returned for an engine that cannot run containers inside a user's
// pontoon space (a user namespace of an unprivileged user).
var ErrRootlessEngine = errors.New("this runtime does not run without root")

var rootless = sync.OnceValue(userns.Nested)

// Rootless reports whether this process runs in a user namespace other than the initial
// one, where it may be root but owns nothing of the host: containers then run with the
// runtime's rootless mode, without cgroups, and engines keep their state under pontoon's.
func Rootless() bool { return rootless() }

// rootlessEngine refuses the engines that need a daemon running as the real root.
func rootlessEngine(name config.Runtime) error {
	if name == config.RuntimeContainerd {
		return fmt.Errorf("%w: containerd's daemon runs as the host's root and cannot reach a user's namespaces; use runc or crun (`--runtime runc`)", ErrRootlessEngine)
	}
	return nil
}

// rootlessRuntimeRoot is where runc and crun keep their state in a user's space: their
// defaults under /run belong to the host's root.
func rootlessRuntimeRoot(state string, opt *EngineOptions) {
	if opt.RuntimeRoot == "" && Rootless() {
		opt.RuntimeRoot = filepath.Join(state, "engine")
	}
}

// rootlessSpec drops from s what only the host's root may ask for. In a user namespace that
// maps a single id, no group 5 exists for devpts, and the cgroup device rules cannot be
// written: runc and crun run the container without cgroups there.
func rootlessSpec(s *specs.Spec) {
	if !Rootless() {
		return
	}
	for i, m := range s.Mounts {
		if m.Type == "devpts" {
			s.Mounts[i].Options = slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return strings.HasPrefix(o, "gid=") })
		}
	}
	if s.Linux != nil {
		s.Linux.Resources = nil
	}
}

// nsenterAll is nsenter's selection of every namespace of process pid. In a user's space a
// container shares some namespaces with the space itself (cgroup, time), which belong to
// the host: entering them again is refused, so only those that differ are named.
func nsenterAll(pid int) []string {
	if !Rootless() {
		return []string{"--all"}
	}
	var out []string
	for _, ns := range []struct{ file, flag string }{{"mnt", "--mount"}, {"uts", "--uts"}, {"ipc", "--ipc"}, {"net", "--net"}, {"pid", "--pid"}, {"cgroup", "--cgroup"}, {"time", "--time"}, {"user", "--user"}} {
		theirs, err1 := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns.file))
		ours, err2 := os.Readlink("/proc/self/ns/" + ns.file)
		if err1 == nil && err2 == nil && theirs != ours {
			out = append(out, ns.flag)
		}
	}
	return out
}
