package hooks

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/netsetup"
)

// What containerd's runc shim passes the runtime dockerd names (seen from Docker 20.10).
func TestParseRuncArgs(t *testing.T) {
	for _, c := range []struct {
		args []string
		want runcArgs
	}{
		{strings.Fields("--root /r --log /b/log.json --log-format json create --bundle /b --pid-file /b/init.pid ID"),
			runcArgs{command: "create", bundle: "/b", log: "/b/log.json", logFormat: "json"}},
		{strings.Fields("--root=/r --log=/l --debug --systemd-cgroup run -b /b ID"), runcArgs{command: "run", bundle: "/b", log: "/l"}},
		{strings.Fields("--root /r create --bundle=/b ID"), runcArgs{command: "create", bundle: "/b"}},
		{strings.Fields("--root /r create ID"), runcArgs{command: "create"}},
		{strings.Fields("--root /r --log /l --log-format json delete --force ID"), runcArgs{command: "delete", log: "/l", logFormat: "json"}},
		{strings.Fields("--root /r start --bundle /b ID"), runcArgs{command: "start"}}, // only create and run are read
		{[]string{"--version"}, runcArgs{}},
		{nil, runcArgs{}},
	} {
		if got := parseRuncArgs(c.args); got != c.want {
			t.Errorf("parseRuncArgs(%q) = %+v, want %+v", c.args, got, c.want)
		}
	}
}

func TestSettingsFromEnv(t *testing.T) {
	env := []string{"PATH=/bin", "PONTOON_BRIDGE=dev", "PONTOON_GUEST=web", "PONTOON_IP=172.18.0.10", "PONTOON_PORTS=8080:80", "PONTOON_STATE_DIR=/x"}
	want := map[string]string{AnnotationBridge: "dev", AnnotationGuest: "web", AnnotationIP: "172.18.0.10", AnnotationPorts: "8080:80"}
	if got := SettingsFromEnv(env); !reflect.DeepEqual(got, want) {
		t.Errorf("SettingsFromEnv = %v, want %v", got, want)
	}
	// Settings without PONTOON_BRIDGE are settings still, for ParseRequest to refuse.
	want = map[string]string{AnnotationGuest: "web", AnnotationIP: "172.18.0.10"}
	if got := SettingsFromEnv([]string{"PONTOON_GUEST=web", "PONTOON_IP=172.18.0.10"}); !reflect.DeepEqual(got, want) {
		t.Errorf("settings without PONTOON_BRIDGE: %v, want %v", got, want)
	}
	// Other PONTOON_* variables (a bridge child's chain locations, say) are no settings.
	if got := SettingsFromEnv([]string{"PATH=/bin", "PONTOON_STATE_DIR=/x", "PONTOON_NETNS_DIR=/y", "PONTOON_DEBUG=1", "PONTOON_ID=7", "PONTOON_API=x"}); got != nil {
		t.Errorf("settings of variables that are none: %v, want none", got)
	}
	// One a setting's name misspelled is taken for the setting it misspells, which
	// ParseRequest refuses by name.
	if got := SettingsFromEnv([]string{"PONTOON_GUESTS=a"}); !reflect.DeepEqual(got, map[string]string{"pontoon.guests": "a"}) {
		t.Errorf("a misspelled setting: %v", got)
	}
}

// Every message ParseRequest gives about a setting names the variable the setting came from.
func TestEnvMessage(t *testing.T) {
	for _, c := range []struct {
		env  []string
		want string
	}{
		{[]string{"PONTOON_BRIDGE=dev", "PONTOON_IP=172.18.0.1"}, "PONTOON_GUEST is missing; add -e PONTOON_GUEST=NAME (this container's name on the bridge)"},
		{[]string{"PONTOON_BRIDGE=", "PONTOON_GUEST=a", "PONTOON_IP=172.18.0.1"}, "PONTOON_BRIDGE is missing; add -e PONTOON_BRIDGE=NAME"},
		{[]string{"PONTOON_BRIDGE=dev", "PONTOON_GUEST=a", "PONTOON_IP=1.2.3"}, `PONTOON_IP="1.2.3" is not an IPv4 address`},
		{[]string{"PONTOON_BRIDGE=d/v", "PONTOON_GUEST=a", "PONTOON_IP=172.18.0.1"}, `PONTOON_BRIDGE="d/v" is invalid`},
		{[]string{"PONTOON_BRIDGE=dev", "PONTOON_GUEST=a", "PONTOON_IP=172.18.0.1", "PONTOON_HOSTNAME=a b"}, `PONTOON_HOSTNAME="a b" is invalid`},
		{[]string{"PONTOON_BRIDGE=dev", "PONTOON_GUEST=a", "PONTOON_IP=172.18.0.1", "PONTOON_PORTS=80"}, "PONTOON_PORTS: "},
		{[]string{"PONTOON_GUEST=a", "PONTOON_IP=172.18.0.1"}, "PONTOON_BRIDGE is missing; add -e PONTOON_BRIDGE=NAME (a bridge shown by `pontoon bridge list`), or remove PONTOON_GUEST, PONTOON_IP to run the container without pontoon's network"},
		{[]string{"PONTOON_BRIDGE=dev", "PONTOON_GUEST=a", "PONTOON_IP=172.18.0.1", "PONTOON_GUESTS=b"}, "PONTOON_GUESTS is not one pontoon reads; did you mean PONTOON_GUEST?"},
		{[]string{"PONTOON_BRIDGE=dev", "PONTOON_GUEST=a", "PONTOON_IP=172.18.0.1", "PONTOON_HOST_NAME=h"}, "PONTOON_HOST_NAME is not one pontoon reads; did you mean PONTOON_HOSTNAME?"},
		{[]string{"PONTOON_IP6=fd70:6f6e::5", "PONTOON_ALIASES=db"}, "PONTOON_BRIDGE is missing; add -e PONTOON_BRIDGE=NAME (a bridge shown by `pontoon bridge list`), or remove PONTOON_IP6, PONTOON_ALIASES to run"},
	} {
		_, err := ParseRequest(SettingsFromEnv(c.env))
		if err == nil {
			t.Fatalf("%v was accepted", c.env)
		}
		got := EnvMessage(err.Error())
		if !strings.HasPrefix(got, c.want) || strings.Contains(got, "annotation") {
			t.Errorf("%v: %q, want it to start with %q and not speak of annotations", c.env, got, c.want)
		}
	}
}

// A bundle whose container asks for nothing, or for something bad, keeps its config.json
// byte for byte. Settings without the bridge are bad ones: the container is refused, not run
// without the network it was given settings for.
func TestPrepareBundleLeavesOthersAlone(t *testing.T) {
	const plain = `{"ociVersion":"1.0.2","process":{"env":["PATH=/bin","PONTOON_STATE_DIR=/x","PONTOON_DEBUG=x"],"args":["sh"]},"hooks":{"prestart":[{"path":"/proc/1/exe","args":["libnetwork-setkey"]}]},"root":{"path":"rootfs"},"annotations":{"pontoon.names-error":"x"}}`
	const bad = `{"ociVersion":"1.0.2","process":{"env":["PONTOON_BRIDGE=dev","PONTOON_GUEST=x","PONTOON_IP=300.1.1.1"]},"x-unknown":[1,2]}`
	noBridge := func(vars ...string) string {
		return `{"ociVersion":"1.0.2","process":{"env":["PATH=/bin","` + strings.Join(vars, `","`) + `"],"args":["sh"]},"root":{"path":"rootfs"}}`
	}
	const missing = "PONTOON_BRIDGE is missing; add -e PONTOON_BRIDGE=NAME"
	for _, c := range []struct {
		name, config string
		asks         bool
		err          string
	}{
		{"plain", plain, false, ""},
		{"no settings", `{"ociVersion":"1.0.2","process":{"args":["sh"]}}`, false, ""},
		{"bad", bad, true, `PONTOON_IP="300.1.1.1" is not an IPv4 address`},
		{"bad annotation", `{"annotations":{"pontoon.bridge":"dev","pontoon.guest":"x"}}`, true, "annotation pontoon.ip is missing"},
		{"guest and ip without bridge", noBridge("PONTOON_GUEST=x9", "PONTOON_IP=172.18.0.17"), true, missing + " (a bridge shown by `pontoon bridge list`), or remove PONTOON_GUEST, PONTOON_IP to run"},
		{"guest without bridge", noBridge("PONTOON_GUEST=x9"), true, missing},
		{"ip without bridge", noBridge("PONTOON_IP=172.18.0.17"), true, missing},
		{"ip6 without bridge", noBridge("PONTOON_IP6=fd70:6f6e::17"), true, missing},
		{"hostname without bridge", noBridge("PONTOON_HOSTNAME=h"), true, missing},
		{"ports without bridge", noBridge("PONTOON_PORTS=8080:80"), true, missing},
		{"aliases without bridge", noBridge("PONTOON_ALIASES=db"), true, missing},
		// Alone, a misspelled setting ran the container off the network in silence.
		{"misspelled bridge alone", noBridge("PONTOON_BRIGDE=dev"), true, "PONTOON_BRIGDE is not one pontoon reads; did you mean PONTOON_BRIDGE?"},
		{"empty guest without bridge", noBridge("PONTOON_GUEST="), true, missing},
		{"annotations without bridge", `{"annotations":{"pontoon.guest":"x9","pontoon.ip":"172.18.0.17"}}`, true,
			"annotation pontoon.bridge is missing; add pontoon.bridge=NAME (a bridge shown by `pontoon bridge list`), or remove annotation pontoon.guest, annotation pontoon.ip to run"},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "config.json")
		if err := os.WriteFile(path, []byte(c.config), 0o600); err != nil {
			t.Fatal(err)
		}
		asks, err := PrepareBundle(dir, "/usr/bin/pontoon", netsetup.Env{StateDir: filepath.Join(dir, "state")})
		if asks != c.asks || (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s: PrepareBundle = %v, %v; want %v and an error with %q", c.name, asks, err, c.asks, c.err)
		}
		if got, _ := os.ReadFile(path); string(got) != c.config {
			t.Errorf("%s: config.json changed:\n%s", c.name, got)
		}
	}
}
