package hooks_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/hooks"
	"github.com/pontoon-dev/pontoon/hooks/hooktest"
	"github.com/pontoon-dev/pontoon/names"
	"github.com/pontoon-dev/pontoon/netsetup"
)

// TestDockerNames: a Docker container and a podman container on one bridge find each other
// by name and alias through the bridge's name server. The Docker container is given no
// resolver: pontoon's runtime points its resolv.conf at the name server. Once removed, the
// Docker container's names stop resolving.
func TestDockerNames(t *testing.T) {
	bin := hooktest.NeedCommand(t, "podman", "podman")
	s := hooktest.Chain(t)
	d := startDockerd(t, s)
	p := newPodman(t, bin, s)
	if _, err := netsetup.CreateBridge(s.Env, "nb", netsetup.BridgeOptions{}); err != nil {
		t.Fatal(err)
	}
	srv, err := names.Listen(s.Env, "nb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	out, err := d.run(append([]string{"-d"}, dockerEnv("nb", "dk", "172.18.0.1", "PONTOON_ALIASES=dalias")...), "sleep", "600")
	if err != nil {
		t.Fatalf("docker run: %v\n%s", err, out)
	}
	dk := strings.TrimSpace(out)
	ann := annotations("nb", "pd", "172.18.0.2")
	ann[hooks.AnnotationAliases] = "palias"
	pd := fmt.Sprintf("pontoon-test-%d-pd", os.Getpid())
	// Both engines' containers get a resolv.conf naming the name server from pontoon.
	if out, err := p.run([]string{"-d", "--name", pd}, ann, "sleep", "600"); err != nil {
		t.Fatalf("podman run: %v\n%s", err, out)
	}

	lookup := func(engine func(...string) (string, error), container, name string) (string, error) {
		out, err := engine("exec", container, "busybox", "nslookup", name)
		return out, err
	}
	for _, c := range []struct {
		engine         func(...string) (string, error)
		who, container string
		name, wantAddr string
	}{
		{d.docker, "docker", dk, "pd", "172.18.0.2"},
		{d.docker, "docker", dk, "palias", "172.18.0.2"},
		{p.cmd, "podman", pd, "dk", "172.18.0.1"},
		{p.cmd, "podman", pd, "dalias", "172.18.0.1"},
	} {
		out, err := lookup(c.engine, c.container, c.name)
		if err != nil || !strings.Contains(out, "Address: "+c.wantAddr) {
			t.Errorf("the %s container looking up %s: %v\n%s", c.who, c.name, err, out)
		}
	}

	if out, err := d.docker("rm", "-f", dk); err != nil {
		t.Fatalf("docker rm -f: %v\n%s", err, out)
	}
	// The podman container still resolves, its own name for one, but no longer the Docker one's.
	if out, err := lookup(p.cmd, pd, "palias"); err != nil || !strings.Contains(out, "Address: 172.18.0.2") {
		t.Fatalf("the podman container looking up its own alias after the Docker container left: %v\n%s", err, out)
	}
	for _, n := range []string{"dk", "dalias"} {
		if out, err := lookup(p.cmd, pd, n); err == nil && strings.Contains(out, "172.18.0.1") {
			t.Errorf("the podman container still resolves %s after the Docker container was removed:\n%s", n, out)
		}
	}
}
