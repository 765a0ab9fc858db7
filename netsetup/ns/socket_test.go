package ns

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pontoon-dev/pontoon/internal/testkit"
	"golang.org/x/sys/unix"
)

// TestSocket: the socket is the namespace's, and no thread of
// the process stays there, whether the calling thread moves itself or a
// locked one does (Visit).
func TestSocket(t *testing.T) {
	testkit.NeedRoot(t, "creates a network namespace")
	nsPath := filepath.Join(t.TempDir(), "sock")
	if err := os.WriteFile(nsPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("unshare", "--net="+nsPath, "true").CombinedOutput(); err != nil {
		t.Fatalf("unshare --net=%s: %v: %s", nsPath, err, out)
	}
	t.Cleanup(func() { Remove(nsPath) })
	var want unix.Stat_t
	if err := unix.Stat(nsPath, &want); err != nil {
		t.Fatal(err)
	}
	bridge := fmt.Sprintf("net:[%d]", want.Ino)
	inPlace := canReturn()
	for _, moveSelf := range []bool{true, false} {
		t.Run(fmt.Sprintf("thread moves itself %t", moveSelf), func(t *testing.T) {
			if moveSelf && !inPlace {
				t.Skip("the process cannot always return to its namespace: no thread moves itself")
			}
			saved := canReturn
			canReturn = func() bool { return moveSelf }
			t.Cleanup(func() { canReturn = saved })
			for range 20 {
				fd, err := Socket(nsPath, unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
				if err != nil {
					t.Fatal(err)
				}
				nsfd, err := unix.IoctlRetInt(fd, unix.SIOCGSKNS)
				unix.Close(fd)
				if err != nil {
					t.Fatalf("namespace of the socket: %v", err)
				}
				var got unix.Stat_t
				err = unix.Fstat(nsfd, &got)
				unix.Close(nsfd)
				if err != nil {
					t.Fatal(err)
				}
				if got.Ino != want.Ino || got.Dev != want.Dev {
					t.Fatalf("socket in namespace %d, want %s's %d", got.Ino, nsPath, want.Ino)
				}
			}
			tasks, err := filepath.Glob("/proc/self/task/*/ns/net")
			if err != nil {
				t.Fatal(err)
			}
			for _, task := range tasks {
				if l, err := os.Readlink(task); err == nil && l == bridge {
					t.Errorf("thread %s stayed in %s", task, nsPath)
				}
			}
		})
	}
}
