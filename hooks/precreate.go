package hooks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pontoon-dev/pontoon/names"
	"github.com/pontoon-dev/pontoon/netsetup"
)

// Podman gives a container its /etc/hosts, /etc/hostname and /run/.containerenv as bind
// mounts of files in the container's own directory, which the engine removes with
// the container; with --network none podman mounts no /etc/resolv.conf and refuses --dns.
// The precreate stage of a hooks.d entry receives the container's config.json on stdin
// before the runtime sees it and returns it, maybe changed, on stdout: there pontoon adds
// the guest's lines to the engine's hosts file and mounts a resolv.conf naming the bridge's
// name server. Editing the configuration, not the started container, needs no access to
// the container's mount namespace and works the same with every runtime.

// isSpec tells a config.json (precreate's input) from a container state (every other
// stage's): a state always has a status.
func isSpec(data []byte) bool {
	var probe struct {
		Status string          `json:"status"`
		Root   json.RawMessage `json:"root"`
		Proc   json.RawMessage `json:"process"`
	}
	if json.Unmarshal(data, &probe) != nil {
		return false
	}
	return probe.Status == "" && (probe.Root != nil || probe.Proc != nil)
}

// AnnotationNamesError carries a failure of the precreate stage to createRuntime, which
// refuses the container with it: podman shows neither the message of a failed precreate
// hook nor its stderr, only that it failed.
const AnnotationNamesError = "pontoon.names-error"

func precreate(env netsetup.Env, data []byte, stdout io.Writer) error {
	out, err := PrepareSpec(env, data)
	if err != nil {
		if out, err = withNamesError(data, err); err != nil {
			return err
		}
	}
	if _, err := stdout.Write(out); err != nil {
		return fmt.Errorf("write the container's configuration to stdout: %w", err)
	}
	return nil
}

// PrepareSpec returns the config.json data with pontoon's names for a container that asks
// for a pontoon bridge and whose engine mounts its files from a directory of the container
// (podman's userdata): the engine's hosts file gets a line for each of the guest's addresses
// (IPv4, and IPv6 unless the chain is IPv4 only) with its names (hostname, guest name,
// aliases), and /etc/resolv.conf becomes a read-only mount of a file pontoon writes next to
// it, naming the bridge's name server. A resolv.conf or
// /etc/hosts the user mounted is left as it is, as is every other container's configuration,
// and one with settings ParseRequest refuses (the attach at createRuntime says why). Nothing
// outside the container's directory is written.
func PrepareSpec(env netsetup.Env, data []byte) ([]byte, error) {
	if !asksPontoon(data) {
		return data, nil
	}
	var spec bundleSpec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("read the container's configuration from stdin: %w", err)
	}
	var ann map[string]string
	if raw, ok := spec["annotations"]; ok {
		json.Unmarshal(raw, &ann)
	}
	if !HasRequest(ann) {
		return data, nil
	}
	req, err := ParseRequest(ann)
	if err != nil {
		return data, nil
	}
	named, err := spec.setHostname(req.Hostname)
	if err != nil {
		return nil, err
	}
	sources, err := spec.mountSources()
	if err != nil {
		return nil, err
	}
	dir := containerDir(sources)
	if dir == "" {
		return data, nil
	}
	if src := sources["/etc/hostname"]; named && src == filepath.Join(dir, "hostname") {
		if err := hostnameFile(src, req.Hostname); err != nil {
			return nil, err
		}
	}
	// resolv.conf first: its failure (the likelier one) leaves the hosts file as it was.
	if _, ok := sources["/etc/resolv.conf"]; !ok {
		resolv, err := names.GuestResolvConf(env, req.Bridge)
		if err != nil {
			return nil, fmt.Errorf("write the container's resolv.conf: %w", err)
		}
		path := filepath.Join(dir, "pontoon-resolv.conf")
		if err := os.WriteFile(path, resolv, 0o644); err != nil {
			return nil, fmt.Errorf("write the container's resolv.conf: %w", err)
		}
		if err := spec.mountFiles(map[string]string{"/etc/resolv.conf": path}); err != nil {
			return nil, err
		}
	}
	if src := sources["/etc/hosts"]; src == filepath.Join(dir, "hosts") {
		if err := addHostsLine(src, guestHostsLines(spec, req, guestIP6(env, req))); err != nil {
			return nil, err
		}
	}
	return json.Marshal(spec)
}

// containerDir is podman's directory of the container (…/userdata), which it mounts
// /run/.containerenv from in every container, or "" when the configuration is not
// podman's. A file of the user's own, even one named hosts, never makes a directory the
// container's.
func containerDir(sources map[string]string) string {
	src := sources["/run/.containerenv"]
	if !filepath.IsAbs(src) || filepath.Base(src) != ".containerenv" || filepath.Base(filepath.Dir(src)) != "userdata" {
		return ""
	}
	return filepath.Dir(src)
}

// addHostsLine appends the guest's lines to the engine's hosts file, each once: the engine
// runs precreate again each time the container starts, and a line already there from an
// earlier start (the IPv4 one, when the chain has since gained IPv6) is not added twice. The
// guest's names leave the engine's loopback lines (podman maps a container without a network
// to 127.0.0.1 by its name), which come first and would make the guest its own 127.0.0.1.
func addHostsLine(path, lines string) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("add the guest's line to the container's hosts file: %w", err)
	}
	own := map[string]bool{}
	for _, line := range strings.Split(lines, "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			for _, n := range f[1:] {
				own[n] = true
			}
		}
	}
	var out []byte
	for _, line := range strings.SplitAfter(string(old), "\n") {
		out = append(out, withoutOwnLoopback(line, own)...)
	}
	for _, line := range strings.SplitAfter(lines, "\n") {
		if line == "" || bytes.Contains(out, []byte("\n"+line)) || bytes.HasPrefix(out, []byte(line)) {
			continue
		}
		if len(out) > 0 && out[len(out)-1] != '\n' {
			out = append(out, '\n')
		}
		out = append(out, line...)
	}
	if bytes.Equal(out, old) {
		return nil
	}
	// Rewritten in place: the engine may already hold the file open or mounted.
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return fmt.Errorf("add the guest's line to the container's hosts file: %w", err)
	}
	return nil
}

// withoutOwnLoopback is a hosts file line without the names in own when it maps them to a
// loopback address, and nothing when no name is left on it; any other line as it is.
func withoutOwnLoopback(line string, own map[string]bool) string {
	f := strings.Fields(line)
	if len(f) < 2 || strings.HasPrefix(f[0], "#") {
		return line
	}
	if a, err := netip.ParseAddr(f[0]); err != nil || !a.IsLoopback() {
		return line
	}
	kept := slices.DeleteFunc(slices.Clone(f[1:]), func(n string) bool { return own[n] })
	switch {
	case len(kept) == len(f)-1:
		return line
	case len(kept) == 0:
		return ""
	}
	return f[0] + "\t" + strings.Join(kept, " ") + "\n"
}

// withNamesError returns the configuration data, unchanged but for AnnotationNamesError
// saying what failed.
func withNamesError(data []byte, failed error) ([]byte, error) {
	var spec bundleSpec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, failed
	}
	ann := map[string]string{}
	if raw, ok := spec["annotations"]; ok {
		json.Unmarshal(raw, &ann)
	}
	ann[AnnotationNamesError] = OneLine(failed)
	if err := spec.set("annotations", ann); err != nil {
		return nil, failed
	}
	return json.Marshal(spec)
}
