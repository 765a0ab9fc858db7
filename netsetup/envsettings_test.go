package netsetup_test

import (
	"slices"
	"testing"

	"github.com/pontoon-dev/pontoon/netsetup"
)

// TestEnvEncodings: an Env survives the trip through the process environment, and its
// flags name exactly the settings that differ from the defaults.
func TestEnvEncodings(t *testing.T) {
	e := netsetup.Env{StateDir: "/tmp/s", NetnsDir: "/tmp/n", HostNetns: "/proc/7/ns/net", ResolvConf: "/tmp/r"}
	environ := append([]string{"PATH=/bin", "PONTOON_STATE_DIR=/elsewhere"}, e.Environ()...)
	if got := netsetup.EnvFromEnviron(environ); got != e {
		t.Errorf("EnvFromEnviron(%q) = %+v, want %+v", environ, got, e)
	}
	want := []string{"--state-dir", "/tmp/s", "--netns-dir", "/tmp/n", "--host-netns", "/proc/7/ns/net", "--resolv-conf", "/tmp/r"}
	if got := e.Args(); !slices.Equal(got, want) {
		t.Errorf("Args = %q, want %q", got, want)
	}
	partial := netsetup.Env{NetnsDir: "/tmp/n"}
	if got := partial.Environ(); !slices.Equal(got, []string{"PONTOON_NETNS_DIR=/tmp/n"}) {
		t.Errorf("Environ of an Env with one field set = %q", got)
	}
	if got := netsetup.EnvFromEnviron([]string{"PONTOON_STATE_DIR="}); got != (netsetup.Env{}) {
		t.Errorf("an empty variable gave %+v, want the defaults", got)
	}
	for _, s := range netsetup.EnvSettings() {
		if s.Default == "" || s.Usage == "" {
			t.Errorf("setting %s lacks a default or usage text", s.Flag)
		}
	}
}
