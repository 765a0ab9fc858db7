package containerd_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/hooks/hooktest"
	"github.com/pontoon-dev/pontoon/runtime"
	"github.com/pontoon-dev/pontoon/runtime/config"
	"github.com/pontoon-dev/pontoon/runtime/containerd"
	"github.com/pontoon-dev/pontoon/runtime/internal/enginetest"
)

// This test binary is pontoon's hook, containers' init, the pontoon-containerd helper, and
// a `pontoon run` that tests kill.
func TestMain(m *testing.M) {
	hooktest.Dispatch()
	runtime.DispatchInit()
	enginetest.DispatchRun()
	if len(os.Args) > 1 && os.Args[1] == runtime.ContainerdHelperName {
		os.Exit(containerd.Main(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func engine(t *testing.T) runtime.Engine {
	t.Helper()
	d := enginetest.StartContainerd(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	eng, err := runtime.NewEngine(config.RuntimeContainerd, runtime.EngineOptions{
		ContainerdAddress:   d.Address,
		ContainerdNamespace: d.Namespace,
		ContainerdHelper:    []string{self, runtime.ContainerdHelperName},
		RuntimeRoot:         t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

// TestContainerdWithHook runs the engine scenario with containers created through
// containerd's client from plain root directories (no image, no pull).
func TestContainerdWithHook(t *testing.T) {
	enginetest.New(t, engine(t)).Scenario()
}

// TestRunContainerd runs a supervise command whose containers live in containerd: guests
// reach each other by name, output is prefixed, the exit policy and status hold, and the
// run leaves no container in containerd and no bridge.
func TestRunContainerd(t *testing.T) {
	d := enginetest.StartContainerd(t)
	s := hooktest.Chain(t)
	self, _ := os.Executable()
	dir := t.TempDir()
	toml := `
[settings]
runtime = "containerd"

[commands.pair]
supervise = true
[commands.pair.children.a]
run = { shell = "mkdir -p /tmp/w; echo from-a > /tmp/w/index.html; trap 'exit 0' TERM; busybox httpd -f -p 7000 -h /tmp/w & wait" }
ip = "172.18.0.1"
[commands.pair.children.b]
run = { shell = "until busybox wget -q -O- http://a:7000/ 2>/dev/null; do sleep 0.1; done; exit 4" }
ip = "172.18.0.2"
`
	if err := os.WriteFile(filepath.Join(dir, config.FileName), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := config.Load(filepath.Join(dir, config.FileName))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	var mu sync.Mutex
	w := writerFunc(func(b []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(b) })
	code, err := runtime.Run(context.Background(), p, "pair", runtime.Options{
		Env: s.Env,
		Engine: runtime.EngineOptions{
			ContainerdAddress:   d.Address,
			ContainerdNamespace: d.Namespace,
			ContainerdHelper:    []string{self, runtime.ContainerdHelperName},
			RuntimeRoot:         t.TempDir(),
		},
		Stdout: w, Stderr: w, Log: w,
		StopTimeout: 5 * time.Second,
	})
	t.Logf("output:\n%s", out.String())
	if err != nil || code != 4 {
		t.Fatalf("Run = %d, %v; want b's status 4", code, err)
	}
	if !strings.Contains(out.String(), "b | from-a") {
		t.Fatal("b did not reach a by name")
	}
	if err := hooktest.NoBridges(s.Env); err != nil {
		t.Error(err)
	}
	ctr, err := exec.Command("ctr", "--address", d.Address, "--namespace", d.Namespace, "containers", "list", "-q").CombinedOutput()
	if err != nil || strings.TrimSpace(string(ctr)) != "" {
		t.Errorf("containers left in containerd: %q %v", ctr, err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// ociArchive writes an OCI image layout archive holding one image, named ref, whose single
// layer is the directory root; containerd imports it without any registry.
func ociArchive(t *testing.T, root, ref, path string) {
	t.Helper()
	var layer bytes.Buffer
	diff := sha256.New()
	gz := gzip.NewWriter(&layer)
	tw := tar.NewWriter(io.MultiWriter(gz, diff))
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == root {
			return err
		}
		link := ""
		if fi.Mode()&os.ModeSymlink != 0 {
			link, _ = os.Readlink(p)
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		h.Name, _ = filepath.Rel(root, p)
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		}
		return nil
	})
	if err != nil || tw.Close() != nil || gz.Close() != nil {
		t.Fatalf("build layer: %v", err)
	}
	blobs := map[string][]byte{}
	add := func(b []byte) string {
		d := fmt.Sprintf("sha256:%x", sha256.Sum256(b))
		blobs[d] = b
		return d
	}
	desc := func(mt, d string, size int) map[string]any {
		return map[string]any{"mediaType": mt, "digest": d, "size": size}
	}
	layerDigest := add(layer.Bytes())
	cfg, _ := json.Marshal(map[string]any{"architecture": goruntime.GOARCH, "os": "linux", "config": map[string]any{},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{fmt.Sprintf("sha256:%x", diff.Sum(nil))}}})
	manifest, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": desc("application/vnd.oci.image.config.v1+json", add(cfg), len(cfg)),
		"layers": []any{desc("application/vnd.oci.image.layer.v1.tar+gzip", layerDigest, layer.Len())}})
	md := desc("application/vnd.oci.image.manifest.v1+json", add(manifest), len(manifest))
	md["platform"] = map[string]any{"os": "linux", "architecture": goruntime.GOARCH}
	md["annotations"] = map[string]any{"io.containerd.image.name": ref}
	index, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []any{md}})
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := tar.NewWriter(f)
	files := map[string][]byte{"oci-layout": []byte(`{"imageLayoutVersion":"1.0.0"}`), "index.json": index}
	for d, b := range blobs {
		files["blobs/sha256/"+strings.TrimPrefix(d, "sha256:")] = b
	}
	for name, b := range files {
		out.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg})
		out.Write(b)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRunContainerdImage runs a guest whose root is an image already in containerd's store
// (imported from a local archive: nothing is pulled), and a guest whose image is missing,
// which fails with a message saying how to get it there.
func TestRunContainerdImage(t *testing.T) {
	d := enginetest.StartContainerd(t)
	s := hooktest.Chain(t)
	self, _ := os.Executable()
	dir := t.TempDir()
	const ref = "localhost/pontoon-test/busybox:1"
	archive := filepath.Join(dir, "image.tar")
	ociArchive(t, hooktest.Rootfs(t, t.TempDir()), ref, archive)
	if out, err := exec.Command("ctr", "--address", d.Address, "--namespace", d.Namespace, "images", "import", archive).CombinedOutput(); err != nil {
		t.Fatalf("import image: %v\n%s", err, out)
	}
	toml := `
[settings]
runtime = "containerd"
[commands.img]
supervise = true
[commands.img.children.a]
run = ["/bin/sh", "-c", "echo in image; ip -4 -o addr show eth0; exit 6"]
ip = "172.18.0.7"
root = { image = "` + ref + `" }
[commands.missing]
supervise = true
[commands.missing.children.a]
run = ["true"]
ip = "172.18.0.7"
root = { image = "localhost/not-here:1" }
`
	if err := os.WriteFile(filepath.Join(dir, config.FileName), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := config.Load(filepath.Join(dir, config.FileName))
	if err != nil {
		t.Fatal(err)
	}
	run := func(name string) (int, string) {
		var out strings.Builder
		var mu sync.Mutex
		w := writerFunc(func(b []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(b) })
		code, err := runtime.Run(context.Background(), p, name, runtime.Options{
			Env: s.Env,
			Engine: runtime.EngineOptions{ContainerdAddress: d.Address, ContainerdNamespace: d.Namespace,
				ContainerdHelper: []string{self, runtime.ContainerdHelperName}, RuntimeRoot: t.TempDir()},
			Stdout: w, Stderr: w, Log: w, StopTimeout: 5 * time.Second,
		})
		if err != nil {
			t.Fatalf("run %s: %v", name, err)
		}
		t.Logf("output of %s:\n%s", name, out.String())
		return code, out.String()
	}
	if code, out := run("img"); code != 6 || !strings.Contains(out, "a | in image") || !strings.Contains(out, "inet 172.18.0.7/24") {
		t.Fatalf("status %d, want 6 with the image's output and address", code)
	}
	if code, out := run("missing"); code != 125 || !strings.Contains(out, `image "localhost/not-here:1" is not in containerd's store`) {
		t.Fatalf("status %d, want 125 and a message about the missing image", code)
	}
	if err := hooktest.NoBridges(s.Env); err != nil {
		t.Error(err)
	}
}
