package config

import (
	"errors"
	"io/fs"
	"net/netip"
	"strings"
	"testing"
)

// wantErr is one expected error: its line, key, and a part of its message
// (usually the fix it suggests).
type wantErr struct {
	line int
	key  string
	msg  string
}

// wantErrors checks that err is an ErrorList holding exactly want, in order.
func wantErrors(t *testing.T, err error, want []wantErr) {
	t.Helper()
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error %v (%T) is not an ErrorList", err, err)
	}
	for i := 0; i < max(len(list), len(want)); i++ {
		switch {
		case i >= len(list):
			t.Errorf("missing error %d: %d: %s: ...%s...", i, want[i].line, want[i].key, want[i].msg)
		case i >= len(want):
			t.Errorf("unexpected error %d: %v", i, list[i])
		default:
			g, w := list[i], want[i]
			if g.Line != w.line || g.Key != w.key || !strings.Contains(g.Msg, w.msg) {
				t.Errorf("error %d:\n got %d: %s: %s\nwant %d: %s: ...%s...", i, g.Line, g.Key, g.Msg, w.line, w.key, w.msg)
			}
		}
	}
	for i := 1; i < len(list); i++ {
		if list[i-1].Line > list[i].Line {
			t.Errorf("errors not sorted by line: %d before %d", list[i-1].Line, list[i].Line)
		}
	}
}

func TestParseErrors(t *testing.T) {
	type tc struct {
		name string
		src  string
		opts Options
		want []wantErr
	}
	cases := []tc{
		// The file as a whole.
		{"TOML syntax", "[commands.a]\nrun = [\"a\"\n", Options{},
			[]wantErr{{2, "commands.a.run", "invalid TOML: expected a comma (',') or array terminator (']'), but got end of file"}}},
		{"duplicate key", "[commands.a]\nrun = [\"a\"]\nrun = [\"b\"]\n", Options{},
			[]wantErr{{3, "commands.a.run", "invalid TOML: Key 'commands.a.run' has already been defined; it is first set on line 2; keep one of the two"}}},
		{"duplicate table", "[commands.a]\nrun = [\"a\"]\n\n[commands.a]\nrun = [\"b\"]\n", Options{},
			[]wantErr{{4, "commands", "invalid TOML: Key 'commands.a' has already been defined; it is first set on line 1; keep one of the two"}}},
		// A NUL byte passed the check before and failed in the runtime, after the bridge was made.
		{"NUL bytes", "[commands.a]\nrun = [\"sh\", \"-c\\u0000x\"]\nworkdir = \"/w\\u0000\"\nenv = { A = \"1\\u0000\" }\n", Options{},
			[]wantErr{
				{2, "commands.a.run[2]", "contains a NUL byte (\\u0000), which no command, path or name can hold; remove it"},
				{3, "commands.a.workdir", "contains a NUL byte"},
				{4, "commands.a.env.A", "contains a NUL byte"},
			}},
		{"NUL byte in a key", "[commands.a]\nrun = [\"a\"]\nenv = { \"A\\u0000\" = \"1\" }\n", Options{},
			[]wantErr{
				{3, "commands.a.env", "has a key with a NUL byte"},
				{3, `commands.a.env."A\u0000"`, "is not a valid environment variable name"},
			}},
		{"no commands", "# nothing\n", Options{},
			[]wantErr{{1, "commands", `no commands defined; add one, e.g. [commands.test] with run = ["make", "test"]`}}},
		{"empty commands table", "\n[commands]\n", Options{},
			[]wantErr{{2, "commands", "no commands defined"}}},
		{"commands not a table", "commands = 1\n", Options{},
			[]wantErr{{1, "commands", "must be a table, not an integer; write [commands.NAME] tables"}}},
		{"unknown top-level key", "command = 1\n[commands.a]\nrun = [\"a\"]\n", Options{},
			[]wantErr{{1, "command", `unknown key; did you mean "commands"?`}}},
		{"unknown top-level key without suggestion", "zzz = 1\n[commands.a]\nrun = [\"a\"]\n", Options{},
			[]wantErr{{1, "zzz", "unknown key; allowed here: settings, commands"}}},
		{"command key at top level", "run = [\"a\"]\n[commands.a]\nrun = [\"a\"]\n", Options{},
			[]wantErr{{1, "run", "is not a top-level key; put it inside a command table, e.g. [commands.NAME]"}}},

		// [settings]
		{"settings not a table", "settings = \"runc\"\n[commands.a]\nrun = [\"a\"]\n", Options{},
			[]wantErr{{1, "settings", "must be a table, not a string; write [settings]"}}},
		{"settings runtime typo", "[settings]\nruntime = \"runcc\"\n[commands.a]\nrun = [\"a\"]\n", Options{},
			[]wantErr{{2, "settings.runtime", `"runcc" is not a runtime; use "runc", "crun" or "containerd"; did you mean "runc"?`}}},
		{"settings runtime not a string", "[settings]\nruntime = true\n[commands.a]\nrun = [\"a\"]\n", Options{},
			[]wantErr{{2, "settings.runtime", `must be a string, not a boolean; use "runc", "crun" or "containerd"`}}},
		{"settings holds a command key", "[settings]\nworkdir = \"/x\"\nruntim = \"runc\"\n[commands.a]\nrun = [\"a\"]\n", Options{},
			[]wantErr{
				{2, "settings.workdir", "[settings] holds only runtime and ipv4_only; set workdir on each command instead"},
				{3, "settings.runtim", `unknown key; did you mean "runtime"?`},
			}},

		// Command names and shapes.
		{"bad command name", "[commands.Unit_Tests]\nrun = [\"a\"]\n[commands.\"-x\"]\nrun = [\"b\"]\n[commands.\"a.b\"]\nrun = [\"c\"]\n", Options{},
			[]wantErr{
				{1, "commands.Unit_Tests", `command name "Unit_Tests" must match [a-z0-9][a-z0-9_-]* (at most 63 characters); rename it, e.g. "unit_tests"`},
				{3, `commands.-x`, `rename it, e.g. "x"`},
				{5, `commands."a.b"`, `rename it, e.g. "a-b"`},
			}},
		{"too long command name", "[commands." + strings.Repeat("a", 64) + "]\nrun = [\"a\"]\n", Options{},
			[]wantErr{{1, "commands." + strings.Repeat("a", 64), "rename it, e.g. \"" + strings.Repeat("a", 63) + "\""}}},
		{"command not a table", "[commands]\ntest = [\"go\", \"test\"]\n", Options{},
			[]wantErr{{2, "commands.test", "must be a table, not an array; write [commands.test]"}}},
		{"command as array of tables", "[[commands.test]]\nrun = [\"a\"]\n", Options{},
			[]wantErr{{1, "commands.test", "must be a table, not an array of tables; write [commands.test]"}}},
		{"unknown command keys", `[commands.a]
run = ["a"]
descripton = "x"
cmd = "x"
image = "alpine"
zzz = 1
`, Options{},
			[]wantErr{
				{3, "commands.a.descripton", `unknown key; did you mean "description"?`},
				{4, "commands.a.cmd", `unknown key; did you mean "run"?`},
				{5, "commands.a.image", `unknown key; did you mean root = { image = "..." }?`},
				{6, "commands.a.zzz", "unknown key; allowed here: description, run, env, workdir, network, ip, ip6, hostname, aliases, ports, root, runtime, init, supervise, exit, children"},
			}},
		{"description not a string", "[commands.a]\nrun = [\"a\"]\ndescription = 5\n", Options{},
			[]wantErr{{3, "commands.a.description", `must be a string, not an integer; write description = "what it does"`}}},

		// run
		{"missing run", "[commands.a]\ndescription = \"x\"\n", Options{},
			[]wantErr{{1, "commands.a", `has nothing to run; add run = ["program", "arg"] or run = { shell = "..." }`}}},
		{"empty run", "[commands.a]\nrun = []\n", Options{},
			[]wantErr{{2, "commands.a.run", `is empty; give the program and its arguments, e.g. run = ["make", "test"]`}}},
		{"run as a plain string", "[commands.a]\nrun = \"go test ./... | tee log\"\n", Options{},
			[]wantErr{{2, "commands.a.run", `a plain string is ambiguous; write an argv list run = ["go", "test", "./...", "|", "tee", "log"], or mark a shell command explicitly: run = { shell = "go test ./... | tee log" }`}}},
		{"run as a blank string", "[commands.a]\nrun = \"  \"\n", Options{},
			[]wantErr{{2, "commands.a.run", "is empty"}}},
		{"run elements not strings, on their own lines", "[commands.a]\nrun = [\n  \"sleep\",\n  5,\n  [\"x\"],\n]\n", Options{},
			[]wantErr{
				{4, "commands.a.run", `argument 1 is an integer, not a string; quote it: "5"`},
				{5, "commands.a.run", `argument 2 is an array; every argument must be a string`},
			}},
		{"empty program", "[commands.a]\nrun = [\"\", \"x\"]\n", Options{},
			[]wantErr{{2, "commands.a.run", "the program (first element) is empty"}}},
		{"run table without shell", "[commands.a]\nrun = { argv = [\"a\"] }\n", Options{},
			[]wantErr{
				{2, "commands.a.run.argv", `unknown key; did you mean an argv list written directly: run = ["program", "arg"]?`},
				{2, "commands.a.run", `needs shell = "..." (run = { shell = "make test | tee log" }), or use an argv list run = ["make", "test"]`},
			}},
		{"run table with empty shell", "[commands.a]\nrun = { shell = \"\" }\n", Options{},
			[]wantErr{{2, "commands.a.run.shell", "is empty; write the command line /bin/sh -c should run"}}},
		{"run shell not a string", "[commands.a]\nrun = { shell = [\"a\"] }\n", Options{},
			[]wantErr{{2, "commands.a.run.shell", `must be a string, not an array; write shell = "make test | tee log"`}}},
		{"run of another type", "[commands.a]\nrun = 1\n", Options{},
			[]wantErr{{2, "commands.a.run", `must be an argv list or { shell = "..." }, not an integer`}}},

		// env and workdir
		{"env not a table", "[commands.a]\nrun = [\"a\"]\nenv = [\"A=1\"]\n", Options{},
			[]wantErr{{3, "commands.a.env", `must be a table of strings, not an array; write env = { NAME = "value" }`}}},
		{"env names and values", `[commands.a]
run = ["a"]
[commands.a.env]
1A = "x"
A-B = "x"
N = 1
B = true
T = ["x"]
PONTOON_BRIDGE = "attach"
PONTOON_STATE_DIR = "/nonexistent"
PONTOON_OWN = "fine"
`, Options{},
			[]wantErr{
				{4, "commands.a.env.1A", `"1A" is not a valid environment variable name`},
				{5, "commands.a.env.A-B", "use letters, digits and '_'"},
				{6, "commands.a.env.N", `is an integer; environment values are strings: write N = "1"`},
				{7, "commands.a.env.B", `is a boolean; environment values are strings: write B = "true"`},
				{8, "commands.a.env.T", `must be a string, not an array; write T = "value"`},
				{9, "commands.a.env.PONTOON_BRIDGE", "pontoon sets PONTOON_BRIDGE for each child"},
				{10, "commands.a.env.PONTOON_STATE_DIR", "pontoon sets PONTOON_STATE_DIR for each child"},
			}},
		{"relative workdir", "[commands.a]\nrun = [\"a\"]\nworkdir = \"src\"\n", Options{},
			[]wantErr{{3, "commands.a.workdir", `"src" must be an absolute path inside the container; write workdir = "/work/src"`}}},
		{"workdir not a string", "[commands.a]\nrun = [\"a\"]\nworkdir = 1\n", Options{},
			[]wantErr{{3, "commands.a.workdir", `must be a string, not an integer; write workdir = "/work"`}}},

		// network, ip, hostname, ports on plain commands
		{"network typo", "[commands.a]\nrun = [\"a\"]\nnetwork = \"hots\"\n", Options{},
			[]wantErr{{3, "commands.a.network", `"hots" is not a network mode; use "none", "host" or "guest"; did you mean "host"?`}}},
		{"network bridge", "[commands.a]\nrun = [\"a\"]\nnetwork = \"bridge\"\nip = \"172.18.0.2\"\n", Options{},
			[]wantErr{{3, "commands.a.network", `did you mean "guest"?`}}},
		{"ip, hostname, ports without guest network", "[commands.a]\nrun = [\"a\"]\nip = \"172.18.0.2\"\nhostname = \"h\"\nports = [\"1:1\"]\n", Options{},
			[]wantErr{
				{3, "commands.a.ip", `ip needs network = "guest" (network defaults to "host"); add network = "guest" or remove ip`},
				{4, "commands.a.hostname", `hostname needs network = "guest" (network defaults to "host")`},
				{5, "commands.a.ports", `ports needs network = "guest" (network defaults to "host")`},
			}},
		{"ip with network none", "[commands.a]\nrun = [\"a\"]\nnetwork = \"none\"\nip = \"172.18.0.2\"\n", Options{},
			[]wantErr{{4, "commands.a.ip", `ip needs network = "guest" (this command has network = "none"); add network = "guest" or remove ip`}}},
		{"guest without ip", "[commands.a]\nrun = [\"a\"]\nnetwork = \"guest\"\n", Options{},
			[]wantErr{{3, "commands.a.network", `network = "guest" needs an address; add ip = "172.18.0.1" (any of 172.18.0.1-172.18.0.253)`}}},
		{"bad ips", `[commands.a]
supervise = true
[commands.a.children.n1]
run = ["a"]
ip = "172.18.0.300"
[commands.a.children.n2]
run = ["a"]
ip = "172.18.0.254"
[commands.a.children.n3]
run = ["a"]
ip = "172.18.0.0"
[commands.a.children.n4]
run = ["a"]
ip = "10.0.0.1"
[commands.a.children.n5]
run = ["a"]
ip = "::ffff:172.18.0.5"
[commands.a.children.n6]
run = ["a"]
ip = 5
[commands.a.children.n7]
run = ["a"]
ip = "172.18.0.255"
`, Options{},
			[]wantErr{
				{5, "commands.a.children.n1.ip", `"172.18.0.300" is not an IPv4 address; use 172.18.0.1-172.18.0.253`},
				{8, "commands.a.children.n2.ip", `172.18.0.254 is the bridge's own address; use 172.18.0.1-172.18.0.253`},
				{11, "commands.a.children.n3.ip", `172.18.0.0 is outside the run's guest range; use 172.18.0.1-172.18.0.253`},
				{14, "commands.a.children.n4.ip", `10.0.0.1 is outside the run's guest range`},
				{17, "commands.a.children.n5.ip", `"::ffff:172.18.0.5" is not an IPv4 address`},
				{20, "commands.a.children.n6.ip", `must be a string, not an integer; write ip = "172.18.0.1" (any of 172.18.0.1-172.18.0.253)`},
				{23, "commands.a.children.n7.ip", `172.18.0.255 is outside the run's guest range`},
			}},
		{"ip outside a custom bridge network", "[commands.a]\nrun = [\"a\"]\nnetwork = \"guest\"\nip = \"172.18.0.2\"\n",
			Options{BridgeNet: netip.MustParsePrefix("10.1.2.0/28")},
			[]wantErr{{4, "commands.a.ip", "172.18.0.2 is outside the run's guest range; use 10.1.2.1-10.1.2.13"}}},
		{"bad hostname", "[commands.a]\nrun = [\"a\"]\nnetwork = \"guest\"\nip = \"172.18.0.2\"\nhostname = \"my host\"\n", Options{},
			[]wantErr{{5, "commands.a.hostname", `"my host" is not a valid hostname; use letters, digits, '-' and '_' (labels separated by '.', at most 64 characters), e.g. "my-host"`}}},
		{"hostname edge cases", `[commands.a]
supervise = true
[commands.a.children.n1]
run = ["a"]
ip = "172.18.0.1"
hostname = "-x"
[commands.a.children.n2]
run = ["a"]
ip = "172.18.0.2"
hostname = "a..b"
[commands.a.children.n3]
run = ["a"]
ip = "172.18.0.3"
hostname = ""
[commands.a.children.n4]
run = ["a"]
ip = "172.18.0.4"
hostname = 4
[commands.a.children.n5]
run = ["a"]
ip = "172.18.0.5"
hostname = "172.18.0.2"
[commands.a.children.n6]
run = ["a"]
ip = "172.18.0.6"
hostname = "localhost"
[commands.a.children.n7]
run = ["a"]
ip = "172.18.0.7"
aliases = ["db", "localhost"]
`, Options{},
			[]wantErr{
				{6, "commands.a.children.n1.hostname", `"-x" is not a valid hostname`},
				{10, "commands.a.children.n2.hostname", `"a..b" is not a valid hostname`},
				{14, "commands.a.children.n3.hostname", `"" is not a valid hostname`},
				{18, "commands.a.children.n4.hostname", `must be a string, not an integer; write hostname = "node1"`},
				{22, "commands.a.children.n5.hostname", `"172.18.0.2" is an IP address, which cannot be a name`},
				{26, "commands.a.children.n6.hostname", `"localhost" names the loopback, not a guest`},
				{30, "commands.a.children.n7.aliases", `"localhost" names the loopback, not a guest`},
			}},
		{"bad ports", `[commands.a]
run = ["a"]
network = "guest"
ip = "172.18.0.2"
ports = [
  "8080",
  "a:80",
  "70000:80",
  "0:80",
  "80:0",
  "53:53/sctp",
  "53:53/UDP",
  "127.0.0.1:80:80",
  "80:80/",
  8081,
  ["x"],
  "x",
]
`, Options{},
			[]wantErr{
				{6, "commands.a.ports", `"8080" has no guest port; write "8080:8080" (HOSTPORT:GUESTPORT[/tcp|/udp])`},
				{7, "commands.a.ports", `"a:80": host port "a" is not a number; write HOSTPORT:GUESTPORT[/tcp|/udp], e.g. "8080:80"`},
				{8, "commands.a.ports", `"70000:80": host port 70000 is out of range; use 1-65535`},
				{9, "commands.a.ports", `"0:80": host port 0 is out of range; use 1-65535`},
				{10, "commands.a.ports", `"80:0": guest port 0 is out of range; use 1-65535`},
				{11, "commands.a.ports", `"53:53/sctp": protocol "sctp" is not tcp or udp; write /tcp or /udp`},
				{12, "commands.a.ports", `"53:53/UDP": protocol "UDP" is not tcp or udp; write "53:53/udp"`},
				{13, "commands.a.ports", `"127.0.0.1:80:80": only HOSTPORT:GUESTPORT[/tcp|/udp] is supported`},
				{14, "commands.a.ports", `"80:80/": protocol "" is not tcp or udp`},
				{15, "commands.a.ports", `port 8081 must be a string "HOSTPORT:GUESTPORT"; write "8081:8081"`},
				{16, "commands.a.ports", `each port must be a string "HOSTPORT:GUESTPORT[/tcp|/udp]", not an array`},
				{17, "commands.a.ports", `"x" is not HOSTPORT:GUESTPORT[/tcp|/udp]; write e.g. "8080:80"`},
			}},
		{"ports not a list", "[commands.a]\nrun = [\"a\"]\nnetwork = \"guest\"\nip = \"172.18.0.2\"\nports = \"80:80\"\n[commands.b]\nrun = [\"a\"]\nnetwork = \"guest\"\nip = \"172.18.0.2\"\nports = 80\n", Options{},
			[]wantErr{
				{5, "commands.a.ports", `must be a list; write ports = ["80:80"]`},
				{10, "commands.b.ports", `must be a list of "HOSTPORT:GUESTPORT[/tcp|/udp]" strings, not an integer; write e.g. ports = ["8080:80"]`},
			}},
		{"duplicate host port in one guest", "[commands.a]\nrun = [\"a\"]\nnetwork = \"guest\"\nip = \"172.18.0.2\"\nports = [\"80:80\", \"80:81/udp\",\n  \"80:82\"]\n", Options{},
			[]wantErr{{6, "commands.a.ports", "host port 80/tcp is already forwarded to commands.a (line 5); pick another host port"}}},

		// root and runtime
		{"bad root string", "[commands.a]\nrun = [\"a\"]\nroot = \"alpine:3\"\n", Options{},
			[]wantErr{{3, "commands.a.root", `"alpine:3" is not a root; use "host", { rootfs = "alpine:3" } for a directory in the project or { image = "alpine:3" } for an image`}}},
		{"root of another type", "[commands.a]\nrun = [\"a\"]\nroot = 1\n", Options{},
			[]wantErr{{3, "commands.a.root", `must be "host", { rootfs = "DIR" } or { image = "REF" }, not an integer`}}},
		{"root with both", "[commands.a]\nrun = [\"a\"]\nruntime = \"containerd\"\nroot = { rootfs = \"r\", image = \"i\" }\n", Options{},
			[]wantErr{{4, "commands.a.root", "sets both rootfs and image; keep one"}}},
		{"empty root table", "[commands.a]\nrun = [\"a\"]\nroot = {}\n", Options{},
			[]wantErr{{3, "commands.a.root", `is empty; write root = { rootfs = "DIR" } or root = { image = "REF" }, or root = "host"`}}},
		{"unknown root key", "[commands.a]\nrun = [\"a\"]\n[commands.a.root]\nimg = \"alpine\"\npath = \"r\"\n", Options{},
			[]wantErr{
				{4, "commands.a.root.img", `unknown key; did you mean "image"?`},
				{5, "commands.a.root.path", `unknown key; did you mean "rootfs"?`},
			}},
		{"empty rootfs and bad image", "[commands.a]\nrun = [\"a\"]\nroot = { rootfs = \"\" }\n[commands.b]\nrun = [\"a\"]\nruntime = \"containerd\"\nroot = { image = \"alpine 3\" }\n[commands.c]\nrun = [\"a\"]\nroot = { rootfs = 1 }\n", Options{},
			[]wantErr{
				{3, "commands.a.root.rootfs", `is empty; name a directory relative to the project, e.g. rootfs = "rootfs/alpine"`},
				{7, "commands.b.root.image", `"alpine 3" is not an image reference; write e.g. image = "docker.io/library/alpine:3"`},
				{10, "commands.c.root.rootfs", `must be a string, not an integer; write rootfs = "rootfs/alpine"`},
			}},
		{"image needs containerd", "[commands.a]\nrun = [\"a\"]\nroot = { image = \"alpine:3\" }\n", Options{},
			[]wantErr{{3, "commands.a.root.image", `image "alpine:3" needs runtime "containerd", but this command runs with "runc"; set runtime = "containerd" (here or in [settings]) or use root = { rootfs = "DIR" }`}}},
		{"image needs containerd, runtime from settings", "[settings]\nruntime = \"crun\"\n[commands.a]\nrun = [\"a\"]\n[commands.a.root]\nimage = \"alpine:3\"\n", Options{},
			[]wantErr{{6, "commands.a.root.image", `but this command runs with "crun"`}}},
		{"child overrides runtime under an inherited image", `[commands.c]
supervise = true
runtime = "containerd"
root = { image = "alpine:3" }
[commands.c.children.x]
run = ["a"]
bridge = true
runtime = "runc"
[commands.c.children.y]
run = ["a"]
bridge = true
root = { image = "busybox" }
runtime = "crun"
`, Options{},
			[]wantErr{
				{8, "commands.c.children.x.runtime", `"runc" cannot run the image root this child inherits; use runtime = "containerd", or give it root = "host" or { rootfs = "DIR" }`},
				{12, "commands.c.children.y.root.image", `image "busybox" needs runtime "containerd", but this child runs with "crun"`},
			}},
		{"bad runtime", "[commands.a]\nrun = [\"a\"]\nruntime = \"docker\"\n", Options{},
			[]wantErr{{3, "commands.a.runtime", `"docker" is not a runtime; use "runc", "crun" or "containerd"`}}},
		{"rootfs missing, a file, unreadable, the host's root", "[commands.a]\nrun = [\"a\"]\nroot = { rootfs = \"gone\" }\n[commands.b]\nrun = [\"a\"]\nroot = { rootfs = \"file\" }\n[commands.c]\nrun = [\"a\"]\nroot = { rootfs = \"/locked\" }\n[commands.d]\nrun = [\"a\"]\nroot = { rootfs = \"../..\" }\n",
			Options{Dir: "/proj", Stat: func(name string) (fs.FileInfo, error) {
				switch name {
				case "/proj/file":
					return fakeInfo{name: "file"}, nil
				case "/locked":
					return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrPermission}
				}
				return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
			}},
			[]wantErr{
				{3, "commands.a.root.rootfs", `"gone" does not exist (looked for /proj/gone); create it, or fix the path, which is relative to the project directory /proj`},
				{6, "commands.b.root.rootfs", `"file" is not a directory (/proj/file); point rootfs at the root filesystem's directory`},
				{9, "commands.c.root.rootfs", `cannot check "/locked": stat /locked: permission denied; make sure the directory is readable`},
				{12, "commands.d.root.rootfs", `"../.." is the host's root directory, which a container cannot use as its own; write root = "host"`},
			}},

		// supervise commands
		{"supervise not a boolean", "[commands.c]\nsupervise = \"true\"\n[commands.c.children.x]\nrun = [\"a\"]\nbridge = true\n[commands.d]\nsupervise = 1\nrun = [\"a\"]\n", Options{},
			[]wantErr{
				{2, "commands.c.supervise", `"true" is a string; write supervise = true without quotes`},
				{7, "commands.d.supervise", "must be true or false, not an integer; write supervise = true"},
			}},
		{"supervise with plain keys", "[commands.c]\nsupervise = true\nrun = [\"a\"]\nnetwork = \"guest\"\nip = \"172.18.0.1\"\nhostname = \"h\"\nports = [\"1:1\"]\n[commands.c.children.x]\nrun = [\"a\"]\nbridge = true\n", Options{},
			[]wantErr{
				{3, "commands.c.run", "a supervise command has no run of its own; move it into a child, e.g. [commands.c.children.main]"},
				{4, "commands.c.network", "a supervise command has no network of its own; set network on a child"},
				{5, "commands.c.ip", "a supervise command has no network of its own; set ip on a child (a child with ip is a guest on the run's bridge)"},
				{6, "commands.c.hostname", "set hostname on a child"},
				{7, "commands.c.ports", "set ports on a child"},
			}},
		{"supervise without children", "[commands.c]\nsupervise = true\n", Options{},
			[]wantErr{{1, "commands.c", `a supervise command needs at least one child; add [commands.c.children.NAME] with run and ip = "172.18.0.1" (or bridge = true)`}}},
		{"empty children table", "[commands.c]\nsupervise = true\n[commands.c.children]\n", Options{},
			[]wantErr{{3, "commands.c.children", "a supervise command needs at least one child"}}},
		{"children not a table", "[commands.c]\nsupervise = true\nchildren = [\"a\"]\n", Options{},
			[]wantErr{{3, "commands.c.children", "must be a table, not an array; write [commands.c.children.NAME] tables"}}},
		{"bad exit", "[commands.c]\nsupervise = true\nexit = \"first\"\n[commands.c.children.x]\nrun = [\"a\"]\nbridge = true\n", Options{},
			[]wantErr{{3, "commands.c.exit", `"first" is not an exit policy; use "any" or "all"`}}},
		{"exit and children on a plain command", "[commands.a]\nrun = [\"a\"]\nexit = \"all\"\n[commands.a.children.x]\nrun = [\"a\"]\nbridge = true\n[commands.b.children.y]\nrun = [\"b\"]\nbridge = true\n", Options{},
			[]wantErr{
				{3, "commands.a.exit", "exit applies only to supervise commands; remove it, or add supervise = true and children"},
				{4, "commands.a.children", "children need a supervise command; add supervise = true to [commands.a] and move run into a child"},
				{7, "commands.b.children", "children need a supervise command; add supervise = true to [commands.b]"},
			}},

		// children
		{"bad child name and child not a table", "[commands.c]\nsupervise = true\n[commands.c.children]\nN1 = 1\n", Options{},
			[]wantErr{
				{4, "commands.c.children.N1", `child name "N1" must match [a-z0-9][a-z0-9_-]* (at most 63 characters); rename it, e.g. "n1"`},
				{4, "commands.c.children.N1", "must be a table, not an integer; write [commands.c.children.N1]"},
			}},
		{"child without ip or bridge gets distinct free addresses", `[commands.c]
supervise = true
[commands.c.children.n1]
run = ["a"]
ip = "172.18.0.1"
[commands.c.children.n2]
run = ["a"]
[commands.c.children.n3]
run = ["a"]
bridge = false
`, Options{},
			[]wantErr{
				{6, "commands.c.children.n2", `needs ip = "172.18.0.2" to be a guest on the run's bridge (any of 172.18.0.1-172.18.0.253), or bridge = true to run in the bridge namespace`},
				{8, "commands.c.children.n3", `needs ip = "172.18.0.3"`},
			}},
		{"child both guest and bridge; bridge with hostname and ports", `[commands.c]
supervise = true
[commands.c.children.x]
run = ["a"]
bridge = true
ip = "172.18.0.1"
hostname = "x"
ports = ["1:1"]
`, Options{},
			[]wantErr{
				{6, "commands.c.children.x.ip", "a child is either a guest (ip) or a bridge child (bridge = true), not both; remove ip or bridge"},
				{7, "commands.c.children.x.hostname", "a bridge child has no address of its own, so no hostname; remove it, or make this child a guest with ip instead of bridge = true"},
				{8, "commands.c.children.x.ports", "so no ports"},
			}},
		{"child keys that belong elsewhere", `[commands.c]
supervise = true
[commands.c.children.x]
run = ["a"]
bridge = "yes"
network = "guest"
exit = "all"
hostnme = "x"
`, Options{},
			[]wantErr{
				{5, "commands.c.children.x.bridge", "must be true or false, not a string; write bridge = true"},
				{6, "commands.c.children.x.network", `a child has no network key; give it ip = "172.18.0.1" to make it a guest on the run's bridge, or bridge = true to run it in the bridge namespace`},
				{7, "commands.c.children.x.exit", "a child cannot supervise children of its own; define another supervise command instead"},
				{8, "commands.c.children.x.hostnme", `unknown key; did you mean "hostname"?`},
			}},
		{"child without run", "[commands.c]\nsupervise = true\n[commands.c.children.x]\nbridge = true\n", Options{},
			[]wantErr{{3, "commands.c.children.x", "has nothing to run"}}},
		{"duplicate ips, hostnames and host ports name both", `[commands.c]
supervise = true
[commands.c.children.n1]
run = ["a"]
ip = "172.18.0.1"
ports = ["7001:7000"]
[commands.c.children.n2]
run = ["a"]
ip = "172.18.0.1"
hostname = "N1"
ports = ["7001:7000/udp", "7001:7001"]
[commands.c.children.n3]
run = ["a"]
ip = "172.18.0.3"
[commands.c.children.n4]
run = ["a"]
ip = "172.18.0.4"
hostname = "n3"
`, Options{},
			[]wantErr{
				{9, "commands.c.children.n2.ip", "172.18.0.1 is already used by commands.c.children.n1 (line 5); give each guest its own address, e.g. 172.18.0.2"},
				{10, "commands.c.children.n2.hostname", `hostname "N1" is already used by commands.c.children.n1 (line 3); set hostname to a name no other guest of this command uses`},
				{11, "commands.c.children.n2.ports", "host port 7001/tcp is already forwarded to commands.c.children.n1 (line 6); pick another host port"},
				{18, "commands.c.children.n4.hostname", `hostname "n3" is already used by commands.c.children.n3 (line 12)`},
			}},
		{"names two guests would be served under", `[commands.c]
supervise = true
[commands.c.children.db]
run = ["a"]
ip = "172.18.0.1"
[commands.c.children.web]
run = ["a"]
ip = "172.18.0.2"
aliases = ["DB"]
[commands.c.children.api]
run = ["a"]
ip = "172.18.0.3"
hostname = "web"
[commands.c.children.x]
run = ["a"]
ip = "172.18.0.4"
aliases = ["10.0.0.1"]
`, Options{},
			[]wantErr{
				{9, "commands.c.children.web.aliases", `alias "DB" is already a name of commands.c.children.db (its name, hostname or an alias; names are served without regard to case); choose another alias`},
				{13, "commands.c.children.api.hostname", `hostname "web" is already used by commands.c.children.web`},
				{17, "commands.c.children.x.aliases", `"10.0.0.1" is an IP address`},
			}},

		// Positions in other TOML forms, and sorting.
		{"dotted keys at top level", "commands.a.run = \"x y\"\ncommands.a.env.X = 1\n", Options{},
			[]wantErr{
				{1, "commands.a.run", `write an argv list run = ["x", "y"]`},
				{2, "commands.a.env.X", "environment values are strings"},
			}},
		{"inline tables across lines", "[commands.a]\nrun = [\"a\"]\nroot = {\n  rootfs = \"r\",\n  imgae = \"i\",\n}\n", Options{},
			[]wantErr{{5, "commands.a.root.imgae", `unknown key; did you mean "image"?`}}},
		{"quoted and literal keys", "[commands.'a'.\"children\".n1]\nrun = [\"a\"]\n[commands.a]\nsupervise = true\n[commands.a.children.n1.env]\n\"X-Y\" = \"1\"\n'X Y' = \"2\"\n\"\\u0041\\tB\" = \"3\"\n", Options{},
			[]wantErr{
				{1, "commands.a.children.n1", `needs ip = "172.18.0.1"`},
				{6, "commands.a.children.n1.env.X-Y", "is not a valid environment variable name"},
				{7, `commands.a.children.n1.env."X Y"`, "is not a valid environment variable name"},
				{8, `commands.a.children.n1.env."A\tB"`, "is not a valid environment variable name"},
			}},
		{"errors sorted by line across sections", `[commands.b]
run = "x"
[settings]
runtime = "x"
[commands.a]
run = []
`, Options{},
			[]wantErr{
				{2, "commands.b.run", "a plain string is ambiguous"},
				{4, "settings.runtime", `"x" is not a runtime`},
				{6, "commands.a.run", "is empty"},
			}},
		{"a multi-line string does not confuse positions", `[commands.a]
run = { shell = """
[commands.fake]
x = 1
""" }
descripton = 'x'
`, Options{},
			[]wantErr{{6, "commands.a.descripton", `did you mean "description"?`}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseOptions("pontoon.toml", []byte(tc.src), tc.opts)
			if err == nil {
				t.Fatalf("ParseOptions accepted it: %+v", p)
			}
			if p != nil {
				t.Errorf("ParseOptions returned a project with an error")
			}
			wantErrors(t, err, tc.want)
		})
	}
}

func TestErrorFormat(t *testing.T) {
	src := `[commands.cluster]
supervise = true

[commands.cluster.children.n1]
run = ["kvnode", "--id", "1"]
ip = "172.18.0.1"

[commands.cluster.children.n2]
run = ["kvnode", "--id", "2"]
# the second node
hostname = "n2"
ip = "172.18.0.300"
`
	_, err := Parse("pontoon.toml", []byte(src))
	want := `pontoon.toml:12: commands.cluster.children.n2.ip: "172.18.0.300" is not an IPv4 address; use 172.18.0.1-172.18.0.253`
	if err == nil || err.Error() != want {
		t.Errorf("error:\n got %v\nwant %s", err, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.Line != 12 || e.File != "pontoon.toml" {
		t.Errorf("errors.As(*Error) = %+v", e)
	}

	list := ErrorList{{File: "f", Line: 1, Msg: "a"}, {File: "f", Line: 2, Key: "k", Msg: "b"}}
	if got := list.Error(); got != "f:1: a\nf:2: k: b" {
		t.Errorf("ErrorList.Error() = %q", got)
	}
}

func TestParseBadBridgeNet(t *testing.T) {
	_, err := ParseOptions("p.toml", []byte("[commands.a]\nrun = [\"a\"]\n"), Options{BridgeNet: netip.MustParsePrefix("10.0.0.0/31")})
	if err == nil || !strings.Contains(err.Error(), "too small") {
		t.Errorf("err = %v", err)
	}
	var list ErrorList
	if errors.As(err, &list) {
		t.Errorf("a bad option is not a file error: %v", err)
	}
}
