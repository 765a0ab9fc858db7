package config

import (
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup"
)

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

// plainCmd is a plain command with every default filled in.
func plainCmd(name string, argv ...string) Command {
	return Command{Name: name, Run: Run{Argv: argv}, Network: NetworkHost, Workdir: DefaultWorkdir, Root: Root{Kind: RootHost}, Runtime: RuntimeRunc}
}

func TestParseValid(t *testing.T) {
	type tc struct {
		name string
		src  string
		opts Options
		want []Command
	}
	with := func(c Command, f func(*Command)) Command { f(&c); return c }
	cases := []tc{
		{
			name: "minimal argv command takes every default",
			src:  "[commands.test]\nrun = [\"go\", \"test\", \"./...\"]\n",
			want: []Command{plainCmd("test", "go", "test", "./...")},
		},
		{
			name: "shell form",
			src:  "[commands.test]\nrun = { shell = \"go test ./... | tee log\" }\n",
			want: []Command{with(plainCmd("test"), func(c *Command) { c.Run = Run{Shell: "go test ./... | tee log"} })},
		},
		{
			name: "shell form as a sub-table",
			src:  "[commands.test.run]\nshell = \"make\"\n",
			want: []Command{with(plainCmd("test"), func(c *Command) { c.Run = Run{Shell: "make"} })},
		},
		{
			name: "all plain keys",
			src: `[commands.test]
description = "unit tests"
run = ["go", "test", "./..."]
env = { GOFLAGS = "-mod=mod", _X1 = "" }
workdir = "/work/src/../app/"
network = "guest"
ip = "172.18.0.10"
hostname = "tester"
ports = ["8080:80", "5353:53/udp", "8443:443/tcp", "8080:80/udp"]
root = "host"
runtime = "crun"
`,
			want: []Command{{
				Name: "test", Description: "unit tests", Run: Run{Argv: []string{"go", "test", "./..."}},
				Env:     map[string]string{"GOFLAGS": "-mod=mod", "_X1": ""},
				Workdir: "/work/app", Network: NetworkGuest,
				Guest: &Guest{IP: ip("172.18.0.10"), Hostname: "tester", Ports: []netsetup.Port{
					{HostPort: 8080, GuestPort: 80, Proto: netsetup.TCP}, {HostPort: 5353, GuestPort: 53, Proto: netsetup.UDP}, {HostPort: 8443, GuestPort: 443, Proto: netsetup.TCP}, {HostPort: 8080, GuestPort: 80, Proto: netsetup.UDP}}},
				Root: Root{Kind: RootHost}, Runtime: RuntimeCrun,
			}},
		},
		{
			name: "guest hostname defaults to the command name; range ends accepted",
			src: `[commands.a]
run = ["a"]
network = "guest"
ip = "172.18.0.1"
[commands.b_2]
run = ["b"]
network = "guest"
ip = "172.18.0.253"
`,
			want: []Command{
				with(plainCmd("a", "a"), func(c *Command) {
					c.Network, c.Guest = NetworkGuest, &Guest{IP: ip("172.18.0.1"), Hostname: "a"}
				}),
				with(plainCmd("b_2", "b"), func(c *Command) {
					c.Network, c.Guest = NetworkGuest, &Guest{IP: ip("172.18.0.253"), Hostname: "b_2"}
				}),
			},
		},
		{
			name: "network none and host; the same ip in two commands",
			src: `[commands.offline]
run = ["x"]
network = "none"
[commands.online]
run = ["y"]
network = "host"
[commands.g1]
run = ["z"]
network = "guest"
ip = "172.18.0.5"
[commands.g2]
run = ["z"]
network = "guest"
ip = "172.18.0.5"
`,
			want: []Command{
				with(plainCmd("offline", "x"), func(c *Command) { c.Network = NetworkNone }),
				plainCmd("online", "y"),
				with(plainCmd("g1", "z"), func(c *Command) {
					c.Network, c.Guest = NetworkGuest, &Guest{IP: ip("172.18.0.5"), Hostname: "g1"}
				}),
				with(plainCmd("g2", "z"), func(c *Command) {
					c.Network, c.Guest = NetworkGuest, &Guest{IP: ip("172.18.0.5"), Hostname: "g2"}
				}),
			},
		},
		{
			name: "settings runtime is the default, a command overrides it",
			src: `[settings]
runtime = "crun"
[commands.a]
run = ["a"]
[commands.b]
run = ["b"]
runtime = "runc"
`,
			want: []Command{
				with(plainCmd("a", "a"), func(c *Command) { c.Runtime = RuntimeCrun }),
				plainCmd("b", "b"),
			},
		},
		{
			name: "image root with containerd from the command or from settings",
			src: `[commands.a]
run = ["a"]
root = { image = "docker.io/library/alpine:3" }
runtime = "containerd"
`,
			want: []Command{with(plainCmd("a", "a"), func(c *Command) {
				c.Root, c.Runtime = Root{Kind: RootImage, Image: "docker.io/library/alpine:3"}, RuntimeContainerd
			})},
		},
		{
			name: "image root with containerd from settings",
			src: `[settings]
runtime = "containerd"
[commands.a]
run = ["a"]
[commands.a.root]
image = "alpine:3"
`,
			want: []Command{with(plainCmd("a", "a"), func(c *Command) {
				c.Root, c.Runtime = Root{Kind: RootImage, Image: "alpine:3"}, RuntimeContainerd
			})},
		},
		{
			name: "rootfs is not checked without a project directory",
			src:  "[commands.a]\nrun = [\"a\"]\nroot = { rootfs = \"./images/../rootfs/alpine/\" }\n",
			want: []Command{with(plainCmd("a", "a"), func(c *Command) { c.Root = Root{Kind: RootRootfs, Path: "rootfs/alpine"} })},
		},
		{
			name: "rootfs checked with a stat function",
			src:  "[commands.a]\nrun = [\"a\"]\nroot = { rootfs = \"rootfs/alpine\" }\n",
			opts: Options{Dir: "/proj", Stat: fakeStat(map[string]bool{"/proj/rootfs/alpine": true})},
			want: []Command{with(plainCmd("a", "a"), func(c *Command) { c.Root = Root{Kind: RootRootfs, Path: "rootfs/alpine"} })},
		},
		{
			name: "dotted keys and env as a sub-table",
			src: `commands.test.run = ["make"]
commands.test.env.A = "1"
[commands.test.env]
B = "2"
`,
			want: []Command{with(plainCmd("test", "make"), func(c *Command) { c.Env = map[string]string{"A": "1", "B": "2"} })},
		},
		{
			name: "multi-line arrays, comments and a multi-line inline table",
			src: `[commands.test]   # the tests
run = [
  "go",   # program
  "test",
  "./...", # trailing comma
]
env = {
  A = "x", # TOML 1.1
  B = """multi
line""",
}
`,
			want: []Command{with(plainCmd("test", "go", "test", "./..."), func(c *Command) {
				c.Env = map[string]string{"A": "x", "B": "multi\nline"}
			})},
		},
		{
			name: "supervise command with guest and bridge children",
			src: `[commands.cluster]
description = "three kv nodes"
supervise = true
exit = "all"

[commands.cluster.children.n1]
description = "first"
run = ["kvnode", "--id", "1"]
ip = "172.18.0.1"
ports = ["7001:7000"]
[commands.cluster.children.n2]
run = ["kvnode", "--id", "2"]
ip = "172.18.0.2"
hostname = "second"
ports = ["7002:7000", "7001:7000/udp"]
[commands.cluster.children.chaos]
run = { shell = "sleep 1; pontoon partition isolate n1" }
bridge = true
`,
			want: []Command{{
				Name: "cluster", Description: "three kv nodes", Workdir: DefaultWorkdir, Root: Root{Kind: RootHost},
				Runtime: RuntimeRunc, Supervise: true, Exit: ExitAll,
				Children: []Child{
					{Name: "n1", Description: "first", Run: Run{Argv: []string{"kvnode", "--id", "1"}}, Workdir: DefaultWorkdir,
						Root: Root{Kind: RootHost}, Runtime: RuntimeRunc,
						Guest: &Guest{IP: ip("172.18.0.1"), Hostname: "n1", Ports: []netsetup.Port{{HostPort: 7001, GuestPort: 7000, Proto: netsetup.TCP}}}},
					{Name: "n2", Run: Run{Argv: []string{"kvnode", "--id", "2"}}, Workdir: DefaultWorkdir,
						Root: Root{Kind: RootHost}, Runtime: RuntimeRunc,
						Guest: &Guest{IP: ip("172.18.0.2"), Hostname: "second", Ports: []netsetup.Port{{HostPort: 7002, GuestPort: 7000, Proto: netsetup.TCP}, {HostPort: 7001, GuestPort: 7000, Proto: netsetup.UDP}}}},
					{Name: "chaos", Run: Run{Shell: "sleep 1; pontoon partition isolate n1"}, Workdir: DefaultWorkdir,
						Root: Root{Kind: RootHost}, Runtime: RuntimeRunc, Bridge: true},
				},
			}},
		},
		{
			name: "children inherit env, workdir, root and runtime; exit defaults to any",
			src: `[settings]
runtime = "crun"
[commands.c]
supervise = true
env = { A = "1", B = "1" }
workdir = "/srv"
runtime = "containerd"
root = { image = "alpine:3" }
[commands.c.children.same]
run = ["x"]
bridge = true
[commands.c.children.other]
run = ["y"]
ip = "172.18.0.9"
env = { B = "2", C = "3" }
workdir = "/tmp"
root = "host"
runtime = "runc"
`,
			want: []Command{{
				Name: "c", Env: map[string]string{"A": "1", "B": "1"}, Workdir: "/srv",
				Root: Root{Kind: RootImage, Image: "alpine:3"}, Runtime: RuntimeContainerd, Supervise: true, Exit: ExitAny,
				Children: []Child{
					{Name: "same", Run: Run{Argv: []string{"x"}}, Env: map[string]string{"A": "1", "B": "1"}, Workdir: "/srv",
						Root: Root{Kind: RootImage, Image: "alpine:3"}, Runtime: RuntimeContainerd, Bridge: true},
					{Name: "other", Run: Run{Argv: []string{"y"}}, Env: map[string]string{"A": "1", "B": "2", "C": "3"}, Workdir: "/tmp",
						Root: Root{Kind: RootHost}, Runtime: RuntimeRunc, Guest: &Guest{IP: ip("172.18.0.9"), Hostname: "other"}},
				},
			}},
		},
		{
			name: "file order is kept even when children come before their command's header",
			src: `[commands.zeta.children.z2]
run = ["z"]
bridge = true
[commands.alpha]
run = ["a"]
[commands.zeta]
supervise = true
[commands.zeta.children.a1]
run = ["z"]
ip = "172.18.0.3"
[commands.mid]
run = ["m"]
`,
			want: []Command{
				{Name: "zeta", Workdir: DefaultWorkdir, Root: Root{Kind: RootHost}, Runtime: RuntimeRunc, Supervise: true, Exit: ExitAny,
					Children: []Child{
						{Name: "z2", Run: Run{Argv: []string{"z"}}, Workdir: DefaultWorkdir, Root: Root{Kind: RootHost}, Runtime: RuntimeRunc, Bridge: true},
						{Name: "a1", Run: Run{Argv: []string{"z"}}, Workdir: DefaultWorkdir, Root: Root{Kind: RootHost}, Runtime: RuntimeRunc,
							Guest: &Guest{IP: ip("172.18.0.3"), Hostname: "a1"}},
					}},
				plainCmd("alpha", "a"),
				plainCmd("mid", "m"),
			},
		},
		{
			name: "a custom bridge network moves the guest range",
			src:  "[commands.a]\nrun = [\"a\"]\nnetwork = \"guest\"\nip = \"10.9.0.200\"\n",
			opts: Options{BridgeNet: netip.MustParsePrefix("10.9.0.0/16")},
			want: []Command{with(plainCmd("a", "a"), func(c *Command) {
				c.Network, c.Guest = NetworkGuest, &Guest{IP: ip("10.9.0.200"), Hostname: "a"}
			})},
		},
		{
			name: "bridge = false with ip is a guest",
			src:  "[commands.c]\nsupervise = true\n[commands.c.children.x]\nrun = [\"x\"]\nbridge = false\nip = \"172.18.0.7\"\n",
			want: []Command{{Name: "c", Workdir: DefaultWorkdir, Root: Root{Kind: RootHost}, Runtime: RuntimeRunc, Supervise: true, Exit: ExitAny,
				Children: []Child{{Name: "x", Run: Run{Argv: []string{"x"}}, Workdir: DefaultWorkdir, Root: Root{Kind: RootHost},
					Runtime: RuntimeRunc, Guest: &Guest{IP: ip("172.18.0.7"), Hostname: "x"}}}}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseOptions("pontoon.toml", []byte(tc.src), tc.opts)
			if err != nil {
				t.Fatalf("ParseOptions: %v", err)
			}
			for i := range tc.want {
				if tc.want[i].StopTimeout == 0 { // not written: the default
					tc.want[i].StopTimeout = DefaultStopTimeout
				}
				if tc.want[i].Names == "" {
					tc.want[i].Names = NamesHosts
				}
			}
			if !reflect.DeepEqual(p.Commands, tc.want) {
				t.Errorf("commands:\n got %#v\nwant %#v", p.Commands, tc.want)
			}
			if p.File != "pontoon.toml" || p.Dir != tc.opts.Dir {
				t.Errorf("File, Dir = %q, %q", p.File, p.Dir)
			}
		})
	}
}

// fakeStat reports the paths in dirs as directories (true) or files (false)
// and everything else as missing.
func fakeStat(dirs map[string]bool) func(string) (fs.FileInfo, error) {
	return func(name string) (fs.FileInfo, error) {
		isDir, ok := dirs[name]
		if !ok {
			return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
		}
		return fakeInfo{name: filepath.Base(name), dir: isDir}, nil
	}
}

type fakeInfo struct {
	name string
	dir  bool
}

func (f fakeInfo) Name() string { return f.name }
func (f fakeInfo) Size() int64  { return 0 }
func (f fakeInfo) Mode() fs.FileMode {
	if f.dir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}
func (f fakeInfo) ModTime() time.Time { return time.Time{} }
func (f fakeInfo) IsDir() bool        { return f.dir }
func (f fakeInfo) Sys() any           { return nil }

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "rootfs", "alpine"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rootfs", "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	write := func(src string) string {
		path := filepath.Join(dir, FileName)
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}

	path := write("[commands.a]\nrun = [\"a\"]\nroot = { rootfs = \"rootfs/alpine\" }\n")
	p, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if p.Dir != dir || p.File != path {
		t.Errorf("Dir, File = %q, %q; want %q, %q", p.Dir, p.File, dir, path)
	}
	if got, want := p.Resolve(p.Commands[0].Root.Path), filepath.Join(dir, "rootfs", "alpine"); got != want {
		t.Errorf("Resolve = %q, want %q", got, want)
	}
	if got := p.Resolve("/abs/x/../y"); got != "/abs/y" {
		t.Errorf("Resolve absolute = %q", got)
	}

	path = write("[commands.a]\nrun = [\"a\"]\nroot = { rootfs = \"rootfs/missing\" }\n[commands.b]\nrun = [\"b\"]\nroot = { rootfs = \"rootfs/file\" }\n")
	_, err = Load(path)
	wantErrors(t, err, []wantErr{
		{3, "commands.a.root.rootfs", `"rootfs/missing" does not exist (looked for ` + filepath.Join(dir, "rootfs/missing") + `); create it, or fix the path, which is relative to the project directory ` + dir},
		{6, "commands.b.root.rootfs", `"rootfs/file" is not a directory`},
	})
	if !strings.HasPrefix(err.Error(), path+":3: commands.a.root.rootfs: ") {
		t.Errorf("error does not start with file:line: key: %q", err)
	}

	if _, err := Load(filepath.Join(dir, "nope.toml")); err == nil || !strings.Contains(err.Error(), "read project file") {
		t.Errorf("Load of a missing file: %v", err)
	}
}
