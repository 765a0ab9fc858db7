package hooks

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/runtime/config"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/pontoon-dev/pontoon/netsetup"
)

func TestParseRequest(t *testing.T) {
	ok := map[string]string{AnnotationBridge: "br", AnnotationGuest: "n1", AnnotationIP: "172.18.0.1"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range ok {
			m[a] = b
		}
		if v == "<delete>" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name string
		ann  map[string]string
		want Request
		err  string // substring of the error; "" means success
	}{
		{name: "minimal", ann: ok, want: Request{Bridge: "br", Guest: "n1", IP: mustAddr("172.18.0.1")}},
		{name: "hostname and ports", ann: with(AnnotationPorts, "8080:80, 5353:53/udp"),
			want: Request{Bridge: "br", Guest: "n1", IP: mustAddr("172.18.0.1"), Ports: []netsetup.Port{{HostPort: 8080, GuestPort: 80, Proto: "tcp"}, {HostPort: 5353, GuestPort: 53, Proto: "udp"}}}},
		{name: "no bridge", ann: with(AnnotationBridge, "<delete>"), err: "annotation pontoon.bridge is missing; add pontoon.bridge="},
		// A misspelled setting was dropped in silence.
		{name: "misspelled", ann: with("pontoon.alias", "db"), err: "annotation pontoon.alias is not one pontoon reads; did you mean annotation pontoon.aliases?"},
		{name: "unknown", ann: with("pontoon.zzz", "1"), err: "annotation pontoon.zzz is not one pontoon reads; remove it (pontoon reads pontoon.bridge, pontoon.guest"},
		{name: "misspelled in capitals", ann: with("pontoon.IP6", "fd70:6f6e::7"), err: "annotation pontoon.IP6 is not one pontoon reads; did you mean annotation pontoon.ip6?"},
		// A key of another's under a domain prefix that starts the same is not pontoon's.
		{name: "domain prefix", ann: with("pontoon.dev/team", "x"), want: Request{Bridge: "br", Guest: "n1", IP: mustAddr("172.18.0.1")}},
		{name: "empty bridge", ann: with(AnnotationBridge, ""), err: "annotation pontoon.bridge is missing"},
		{name: "bad bridge", ann: with(AnnotationBridge, "a b"), err: `annotation pontoon.bridge="a b" is invalid`},
		{name: "shell in bridge", ann: with(AnnotationBridge, "x;rm -rf /"), err: "is invalid"},
		{name: "no guest", ann: with(AnnotationGuest, "<delete>"), err: "annotation pontoon.guest is missing"},
		{name: "bad guest", ann: with(AnnotationGuest, "-x"), err: `annotation pontoon.guest="-x" is invalid`},
		{name: "no ip", ann: with(AnnotationIP, "<delete>"), err: "annotation pontoon.ip is missing"},
		{name: "ip6", ann: with(AnnotationIP6, "fd70:6f6e::beef"), want: Request{Bridge: "br", Guest: "n1", IP: mustAddr("172.18.0.1"), IP6: mustAddr("fd70:6f6e::beef")}},
		{name: "bad ip6", ann: with(AnnotationIP6, "172.18.0.9"), err: `annotation pontoon.ip6="172.18.0.9" is not an IPv6 address`},
		{name: "bad ip", ann: with(AnnotationIP, "172.18.0.300"), err: `annotation pontoon.ip="172.18.0.300" is not an IPv4 address`},
		{name: "ipv6", ann: with(AnnotationIP, "fd00::1"), err: "is not an IPv4 address"},
		{name: "bad hostname", ann: with(AnnotationHostname, "a/b"), err: "annotation pontoon.hostname"},
		{name: "bad port", ann: with(AnnotationPorts, "80"), err: `port "80" has no guest port; write "80:80"`},
		{name: "port zero", ann: with(AnnotationPorts, "0:80"), err: "host port 0 is out of range; use 1-65535"},
		{name: "bad proto", ann: with(AnnotationPorts, "80:80/sctp"), err: `protocol "sctp"`},
		{name: "dup port", ann: with(AnnotationPorts, "80:80,80:81"), err: "host port 80/tcp appears twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequest(tt.ann)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Fatalf("error spans lines: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.ann[AnnotationHostname] != "" {
				tt.want.Hostname = tt.ann[AnnotationHostname]
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestPortsRoundTrip(t *testing.T) {
	in := []netsetup.Port{{HostPort: 8080, GuestPort: 80, Proto: "tcp"}, {HostPort: 5353, GuestPort: 53, Proto: "udp"}}
	out, err := ParsePorts(FormatPorts(in))
	if err != nil || !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip: %v %v", out, err)
	}
	r := Request{Bridge: "b", Guest: "g", IP: mustAddr("172.18.0.3"), Hostname: "h", Ports: in}
	back, err := ParseRequest(r.Annotations())
	if err != nil || !reflect.DeepEqual(back, r) {
		t.Fatalf("annotations round trip: %+v %v", back, err)
	}
}

func TestMissingPort(t *testing.T) {
	b := &netsetup.BridgeState{Ports: []netsetup.Port{
		{HostPort: 8080, Guest: "web", GuestPort: 80, Proto: "tcp"},
		{HostPort: 5353, Guest: "172.18.0.2", GuestPort: 53, Proto: "udp"},
	}}
	tests := []struct {
		guest, ip string
		ports     []netsetup.Port
		missing   bool
	}{
		{"web", "172.18.0.1", nil, false},
		{"web", "172.18.0.1", []netsetup.Port{{HostPort: 8080, GuestPort: 80, Proto: "tcp"}}, false},
		{"dns", "172.18.0.2", []netsetup.Port{{HostPort: 5353, GuestPort: 53, Proto: "udp"}}, false},
		{"other", "172.18.0.3", []netsetup.Port{{HostPort: 8080, GuestPort: 80, Proto: "tcp"}}, true},
		{"web", "172.18.0.1", []netsetup.Port{{HostPort: 8080, GuestPort: 81, Proto: "tcp"}}, true},
		{"web", "172.18.0.1", []netsetup.Port{{HostPort: 8080, GuestPort: 80, Proto: "udp"}}, true},
	}
	for _, tt := range tests {
		_, got := missingPort(b, Request{Guest: tt.guest, IP: mustAddr(tt.ip), Ports: tt.ports})
		if got != tt.missing {
			t.Errorf("%s %v: missing=%v, want %v", tt.guest, tt.ports, got, tt.missing)
		}
	}
}

func TestParseArgs(t *testing.T) {
	env := netsetup.Env{StateDir: "/s", NetnsDir: "/n", HostNetns: "/h", ResolvConf: "/r"}
	for _, stage := range []string{StageCreateRuntime, StagePrestart, StagePoststop, StageAuto} {
		args := Args(stage, env)
		if args[0] != "hook" {
			t.Fatalf("Args starts with %q", args[0])
		}
		gotStage, gotEnv, err := ParseArgs(args[1:])
		if err != nil || gotStage != stage || gotEnv != env {
			t.Fatalf("ParseArgs(%q) = %q %+v %v", args, gotStage, gotEnv, err)
		}
	}
	if got := Args(StagePoststop, netsetup.Env{}); !reflect.DeepEqual(got, []string{"hook", "poststop"}) {
		t.Fatalf("Args with the default env = %q", got)
	}
	for _, bad := range [][]string{nil, {"start"}, {"poststop", "--bogus"}, {"poststop", "extra"}} {
		if _, _, err := ParseArgs(bad); err == nil {
			t.Errorf("ParseArgs(%q) succeeded", bad)
		}
	}
}

func TestMainBadInput(t *testing.T) {
	tests := []struct {
		args  []string
		stdin string
		code  int
		msg   string
	}{
		{[]string{"nope"}, "", 2, `unknown stage "nope"`},
		{[]string{"poststop"}, "not json", 1, "read the container state from stdin"},
		{[]string{"create-runtime"}, `{"id":"c1","status":"creating"}`, 1, "the state has no pid"},
	}
	for _, tt := range tests {
		var stderr strings.Builder
		code := Main(tt.args, strings.NewReader(tt.stdin), &stderr)
		if code != tt.code || !strings.Contains(stderr.String(), tt.msg) || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("Main(%q) = %d %q; want %d and one line with %q", tt.args, code, stderr.String(), tt.code, tt.msg)
		}
	}
}

func TestAnnotationsFromBundle(t *testing.T) {
	dir := t.TempDir()
	cfg := `{"ociVersion":"1.0.2","annotations":{"pontoon.bridge":"b","pontoon.guest":"g","pontoon.ip":"172.18.0.9"}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	// The state of runc 1.0 carries no annotations.
	got, err := Annotations(specs.State{ID: "c", Pid: 1, Bundle: dir})
	if err != nil || got[AnnotationIP] != "172.18.0.9" {
		t.Fatalf("Annotations = %v, %v", got, err)
	}
	// Annotations in the state win.
	own := map[string]string{AnnotationBridge: "x"}
	got, err = Annotations(specs.State{ID: "c", Pid: 1, Bundle: dir, Annotations: own})
	if err != nil || got[AnnotationBridge] != "x" {
		t.Fatalf("Annotations = %v, %v", got, err)
	}
	if _, err := Annotations(specs.State{ID: "c", Bundle: filepath.Join(dir, "missing")}); err == nil {
		t.Fatal("no error for a bundle without config.json")
	}
}

func TestPodmanHook(t *testing.T) {
	data, err := PodmanHook("/usr/local/bin/pontoon", netsetup.Env{StateDir: "/tmp/s"})
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(data, &h); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"version": "1.0.0",
		"hook":    map[string]any{"path": "/usr/local/bin/pontoon", "args": []any{"pontoon", "hook", "auto", "--state-dir", "/tmp/s"}},
		"when":    map[string]any{"annotations": map[string]any{`^pontoon\.[^/]+$`: ".*"}},
		"stages":  []any{"precreate", "createRuntime", "poststop"},
	}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("hooks.d entry:\n%s", data)
	}
	if _, err := PodmanHook("pontoon", netsetup.Env{}); err == nil {
		t.Fatal("relative hook path accepted")
	}
	if _, err := InstallPodman(t.TempDir(), filepath.Join(t.TempDir(), "missing"), netsetup.Env{}); err == nil {
		t.Fatal("InstallPodman accepted a missing binary")
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// A hostname a project file accepts is accepted by the hook too: both use netsetup's rule.
func TestHostnameRuleMatchesProjectFile(t *testing.T) {
	for _, h := range []string{"_db", "node-1.example", "n1"} {
		if _, err := config.Parse("pontoon.toml", []byte("[commands.c]\nrun = [\"true\"]\nnetwork = \"guest\"\nip = \"172.18.0.1\"\nhostname = \""+h+"\"\n")); err != nil {
			t.Fatalf("project file refused hostname %q: %v", h, err)
		}
		if _, err := ParseRequest(map[string]string{AnnotationBridge: "b", AnnotationGuest: "g", AnnotationIP: "172.18.0.1", AnnotationHostname: h}); err != nil {
			t.Errorf("hook refused hostname %q that a project file accepts: %v", h, err)
		}
	}
	if _, err := ParseRequest(map[string]string{AnnotationBridge: "b", AnnotationGuest: "g", AnnotationIP: "172.18.0.1", AnnotationHostname: "-bad"}); err == nil {
		t.Error("hook accepted hostname -bad")
	}
}
