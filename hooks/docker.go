package hooks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/pontoon-dev/pontoon/internal/lazy"
	"github.com/pontoon-dev/pontoon/internal/statefile"
	"github.com/pontoon-dev/pontoon/internal/suggest"
	"github.com/pontoon-dev/pontoon/names"
	"github.com/pontoon-dev/pontoon/netsetup"
)

// EnvVar is the environment variable that stands for annotation key: pontoon.ip is PONTOON_IP.
func EnvVar(key string) string {
	return "PONTOON_" + strings.ToUpper(strings.TrimPrefix(key, "pontoon."))
}

// SettingsFromEnv returns the pontoon annotations the variables of env (KEY=VALUE, as in a
// config.json's process.env) stand for, or nil when env has none of them. Only the variables
// of EnvAnnotations count: others named PONTOON_* (PONTOON_STATE_DIR, ...) are not settings
// of the container. Settings without PONTOON_BRIDGE are returned too, for ParseRequest to
// refuse: a container given PONTOON_GUEST or PONTOON_IP means to join a bridge.
func SettingsFromEnv(env []string) map[string]string {
	vars := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "PONTOON_") {
			vars[k] = v
		}
	}
	var ann map[string]string
	for _, key := range EnvAnnotations {
		if v, ok := vars[EnvVar(key)]; ok {
			if ann == nil {
				ann = map[string]string{}
			}
			ann[key] = v
		}
	}
	// A variable one edit or two from a setting's (PONTOON_ALIAS) is a setting misspelled,
	// which ParseRequest refuses as the annotation it stands for; pontoon's own variables
	// (PONTOON_STATE_DIR, ...) are not.
	// Near a name of four letters or more: one edit from IP is a word of its own (ID, UP).
	var settings []string
	for _, key := range EnvAnnotations {
		if name := strings.TrimPrefix(EnvVar(key), "PONTOON_"); len(name) >= 4 {
			settings = append(settings, name)
		}
	}
	for k, v := range vars {
		name := strings.TrimPrefix(k, "PONTOON_")
		if slices.ContainsFunc(EnvAnnotations, func(a string) bool { return EnvVar(a) == k }) || ownEnv(k) || suggest.Closest(name, settings) == "" {
			continue
		}
		if ann == nil {
			ann = map[string]string{}
		}
		ann["pontoon."+strings.ToLower(strings.TrimPrefix(k, "PONTOON_"))] = v
	}
	return ann
}

// ownEnv reports pontoon's variables that are no settings of a container's: where the
// chain's state is (PONTOON_STATE_DIR, ...).
func ownEnv(k string) bool {
	return slices.ContainsFunc(netsetup.EnvSettings(), func(s netsetup.EnvSetting) bool { return s.Var == k })
}

// hasSettings reports whether ann holds any of the annotations a container asks for a
// bridge with (EnvAnnotations), pontoon.bridge or not.
func hasSettings(ann map[string]string) bool {
	for _, key := range EnvAnnotations {
		if _, ok := ann[key]; ok {
			return true
		}
	}
	return false
}

// EnvMessage rewords a message of ParseRequest about annotations for a container whose
// settings came from its environment: "annotation pontoon.ip" becomes "PONTOON_IP", and the
// suggested fix becomes a `-e` option.
func EnvMessage(msg string) string {
	for _, key := range EnvAnnotations {
		msg = strings.ReplaceAll(msg, "add "+key+"=", "add -e "+EnvVar(key)+"=")
	}
	// Whole names only: annotation pontoon.guest is a start of annotation pontoon.guests.
	return annotationWord.Get().ReplaceAllStringFunc(msg, func(m string) string {
		return EnvVar(strings.TrimPrefix(m, "annotation "))
	})
}

var annotationWord = lazy.Value[*regexp.Regexp]{Build: func() *regexp.Regexp {
	return regexp.MustCompile(`annotation pontoon\.[a-z0-9_-]+`)
}}

// bundleSpec is a bundle's config.json as raw fields, so that rewriting it keeps every field
// pontoon does not touch exactly as the engine wrote it.
type bundleSpec map[string]json.RawMessage

// request finds what the bundle's container asks for: its pontoon.* annotations (Docker
// >= 24 passes --annotation into config.json) or else its PONTOON_* variables. fromEnv says
// which; ann is nil when it asks for nothing. Settings without pontoon.bridge (or
// PONTOON_BRIDGE) are a request too, which ParseRequest refuses: ignoring them would run the
// container without the network it was given settings for.
func (s bundleSpec) request() (ann map[string]string, fromEnv bool, err error) {
	if raw, ok := s["annotations"]; ok {
		if err := json.Unmarshal(raw, &ann); err != nil {
			return nil, false, fmt.Errorf("read the annotations: %w", err)
		}
		if HasRequest(ann) {
			return ann, false, nil
		}
	}
	var proc struct {
		Env []string `json:"env"`
	}
	if raw, ok := s["process"]; ok {
		if err := json.Unmarshal(raw, &proc); err != nil {
			return nil, false, fmt.Errorf("read the process: %w", err)
		}
	}
	env := SettingsFromEnv(proc.Env)
	if env == nil {
		if hasSettings(ann) {
			return ann, false, nil
		}
		return nil, false, nil
	}
	for k, v := range env {
		if ann == nil {
			ann = map[string]string{}
		}
		ann[k] = v
	}
	return ann, true, nil
}

// asksPontoon is the cheap first look at a config.json: only a file that mentions one of
// pontoon's settings at all is decoded.
func asksPontoon(data []byte) bool {
	// Any PONTOON_ variable: a misspelled setting (PONTOON_BRIGDE) alone is refused too.
	if bytes.Contains(data, []byte(`"PONTOON_`)) {
		return true
	}
	for _, key := range EnvAnnotations {
		if bytes.Contains(data, []byte(`"`+key+`"`)) {
			return true
		}
	}
	return false
}

// PrepareBundle makes the container of the OCI bundle in dir join a pontoon bridge, if its
// config.json asks for one (see SettingsFromEnv): it validates the settings with
// ParseRequest, records them as annotations, adds pontoon's createRuntime and poststop hooks
// (hookPath run with Args(stage, env)), and bind-mounts pontoon's /etc/hosts and
// /etc/resolv.conf over the engine's. It reports whether the bundle asked for pontoon. On
// error config.json is unchanged; the error is one line, in the words the container's settings
// were given in.
func PrepareBundle(dir, hookPath string, env netsetup.Env) (bool, error) {
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("read the bundle's %s: %w", path, err)
	}
	if !asksPontoon(data) {
		return false, nil
	}
	var spec bundleSpec
	if err := json.Unmarshal(data, &spec); err != nil {
		return false, fmt.Errorf("read the bundle's %s: %w", path, err)
	}
	ann, fromEnv, err := spec.request()
	if err != nil {
		return false, fmt.Errorf("read the bundle's %s: %w", path, err)
	}
	if ann == nil {
		return false, nil
	}
	req, err := ParseRequest(ann)
	if err != nil {
		if fromEnv {
			return true, fmt.Errorf("%s", EnvMessage(err.Error()))
		}
		return true, err
	}
	if hasPontoonHook(spec, hookPath) {
		// Prepared already: an engine that retries create hands the same bundle again.
		return true, nil
	}
	named, err := spec.setHostname(req.Hostname)
	if err != nil {
		return true, err
	}
	files, err := guestFiles(dir, spec, req, env)
	if err != nil {
		return true, err
	}
	if sources, _ := spec.mountSources(); named && engineFile(sources["/etc/hostname"], filepath.Base(dir)) {
		files["/etc/hostname"] = filepath.Join(dir, "pontoon-hostname")
		if err := hostnameFile(files["/etc/hostname"], req.Hostname); err != nil {
			return true, err
		}
	}
	if fromEnv {
		ann[AnnotationSettingsFrom] = "env"
	}
	if err := spec.set("annotations", ann); err != nil {
		return true, err
	}
	if err := spec.addHooks(hookPath, env); err != nil {
		return true, err
	}
	if err := spec.mountFiles(files); err != nil {
		return true, err
	}
	out, err := json.Marshal(spec)
	if err != nil {
		return true, fmt.Errorf("write the bundle's %s: %w", path, err)
	}
	perm := os.FileMode(0o600)
	if fi, err := os.Stat(path); err == nil {
		perm = fi.Mode().Perm()
	}
	if err := statefile.Write(path, out, perm); err != nil {
		return true, fmt.Errorf("write the bundle's %s: %w", path, err)
	}
	return true, nil
}

// setHostname makes the guest's hostname (pontoon.hostname) the container's own, as `docker
// run --hostname` would, and says whether it did; a container that shares another UTS
// namespace (the host's) keeps that one's. The engine's /etc/hostname follows (hostnameFile).
func (s bundleSpec) setHostname(h string) (bool, error) {
	if h == "" {
		return false, nil
	}
	var linux struct {
		Namespaces []struct {
			Type string `json:"type"`
			Path string `json:"path"`
		} `json:"namespaces"`
	}
	if raw, ok := s["linux"]; ok {
		if err := json.Unmarshal(raw, &linux); err != nil {
			return false, fmt.Errorf("read the container's namespaces: %w", err)
		}
	}
	for _, n := range linux.Namespaces {
		if n.Type == "uts" && n.Path == "" {
			return true, s.set("hostname", h)
		}
	}
	return false, nil
}

// hostnameFile writes the hostname h into the file at path, as the engine writes the one it
// mounts at /etc/hostname.
func hostnameFile(path, h string) error {
	if err := os.WriteFile(path, []byte(h+"\n"), 0o644); err != nil {
		return fmt.Errorf("write the container's /etc/hostname: %w", err)
	}
	return nil
}

func (s bundleSpec) set(key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	s[key] = raw
	return nil
}

// hasPontoonHook reports whether the spec already runs hookPath as a createRuntime hook.
func hasPontoonHook(s bundleSpec, hookPath string) bool {
	var h specs.Hooks
	if raw, ok := s["hooks"]; !ok || json.Unmarshal(raw, &h) != nil {
		return false
	}
	for _, x := range h.CreateRuntime {
		if x.Path == hookPath && len(x.Args) > 1 && x.Args[1] == "hook" {
			return true
		}
	}
	return false
}

// addHooks appends pontoon's hooks to the engine's own (Docker's network key hook among
// them), leaving every other stage and field of "hooks" as it was.
func (s bundleSpec) addHooks(hookPath string, env netsetup.Env) error {
	hooks := map[string]json.RawMessage{}
	if raw, ok := s["hooks"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &hooks); err != nil {
			return fmt.Errorf("read the bundle's hooks: %w", err)
		}
	}
	argv0 := filepath.Base(hookPath)
	for _, st := range []struct{ field, stage string }{{"createRuntime", StageCreateRuntime}, {"poststop", StagePoststop}} {
		var list []json.RawMessage
		if raw, ok := hooks[st.field]; ok && string(raw) != "null" {
			if err := json.Unmarshal(raw, &list); err != nil {
				return fmt.Errorf("read the bundle's %s hooks: %w", st.field, err)
			}
		}
		h, err := json.Marshal(specs.Hook{Path: hookPath, Args: append([]string{argv0}, Args(st.stage, env)...)})
		if err != nil {
			return err
		}
		list = append(list, h)
		raw, err := json.Marshal(list)
		if err != nil {
			return err
		}
		hooks[st.field] = raw
	}
	return s.set("hooks", hooks)
}

// guestFiles writes the guest's /etc/hosts and /etc/resolv.conf into the bundle directory,
// which the engine removes with the container, and returns them by destination: those the
// engine mounts of its own, or none, not one the user mounted there (-v x:/etc/hosts).
func guestFiles(dir string, s bundleSpec, req Request, env netsetup.Env) (map[string]string, error) {
	sources, err := s.mountSources()
	if err != nil {
		return nil, err
	}
	id := filepath.Base(dir)
	files := map[string]string{}
	if src, ok := sources["/etc/resolv.conf"]; !ok || engineFile(src, id) {
		resolv, err := names.GuestResolvConf(env, req.Bridge)
		if err != nil {
			return nil, fmt.Errorf("write the container's resolv.conf: %w", err)
		}
		files["/etc/resolv.conf"] = filepath.Join(dir, "pontoon-resolv.conf")
		if err := os.WriteFile(files["/etc/resolv.conf"], resolv, 0o644); err != nil {
			return nil, fmt.Errorf("write the container's /etc/resolv.conf: %w", err)
		}
	}
	if src, ok := sources["/etc/hosts"]; !ok || engineFile(src, id) {
		// The engine's own file holds what the user asked of it (--add-host): the guest's
		// lines go on top of it, its names off the loopback.
		hosts := []byte("# written by pontoon\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
		if ok {
			if b, err := os.ReadFile(src); err == nil {
				hosts = b
			}
		}
		files["/etc/hosts"] = filepath.Join(dir, "pontoon-hosts")
		if err := os.WriteFile(files["/etc/hosts"], hosts, 0o644); err != nil {
			return nil, fmt.Errorf("write the container's /etc/hosts: %w", err)
		}
		if err := addHostsLine(files["/etc/hosts"], guestHostsLines(s, req, guestIP6(env, req))); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// engineFile tells the engine's own hosts or resolv.conf for container id (Docker's
// containers/ID/hosts) from a file the user mounted there, which pontoon leaves alone.
func engineFile(src, id string) bool {
	return filepath.Base(filepath.Dir(src)) == id
}

// guestHostsLines are the guest's /etc/hosts lines, each ending in a newline, as `pontoon
// run` writes them for its children: its IPv4 address, then its IPv6 address when it has one
// (ip6 valid), each with its names once each (annotated hostname, the configuration's
// hostname, guest name, aliases).
func guestHostsLines(s bundleSpec, req Request, ip6 netip.Addr) string {
	var hostname string
	if raw, ok := s["hostname"]; ok {
		json.Unmarshal(raw, &hostname)
	}
	var names []string
	for _, n := range append([]string{req.Hostname, hostname, req.Guest}, req.Aliases...) {
		if n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	line := "\t" + strings.Join(names, " ") + "\n"
	out := req.IP.String() + line
	if ip6.IsValid() {
		out += ip6.String() + line
	}
	return out
}

// guestIP6 is the IPv6 address the attach will give the guest req asks for: the one asked
// for, or the one derived from its IPv4 address; none on an IPv4-only chain, or when the
// gateway's plan cannot be read (the attach then refuses the container, saying why).
func guestIP6(env netsetup.Env, req Request) netip.Addr {
	plan, err := netsetup.CurrentPlan(env)
	if err != nil {
		return netip.Addr{}
	}
	return plan.ResolveGuestIP6(req.IP6, req.IP)
}

// mountSources maps each mount's destination to its source.
func (s bundleSpec) mountSources() (map[string]string, error) {
	mounts, err := s.mounts()
	if err != nil {
		return nil, err
	}
	sources := map[string]string{}
	for _, m := range mounts {
		var dest, src string
		json.Unmarshal(m["destination"], &dest)
		json.Unmarshal(m["source"], &src)
		sources[filepath.Clean(dest)] = src
	}
	return sources, nil
}

func (s bundleSpec) mounts() ([]map[string]json.RawMessage, error) {
	var mounts []map[string]json.RawMessage
	if raw, ok := s["mounts"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &mounts); err != nil {
			return nil, fmt.Errorf("read the container's mounts: %w", err)
		}
	}
	return mounts, nil
}

// mountFiles points the engine's bind mounts of the files' destinations at pontoon's files,
// and adds read-only bind mounts where the engine has none.
func (s bundleSpec) mountFiles(files map[string]string) error {
	mounts, err := s.mounts()
	if err != nil {
		return err
	}
	done := map[string]bool{}
	for _, m := range mounts {
		var dest string
		json.Unmarshal(m["destination"], &dest)
		if src, ok := files[dest]; ok {
			m["source"], _ = json.Marshal(src)
			done[dest] = true
		}
	}
	for _, dest := range []string{"/etc/hosts", "/etc/resolv.conf"} {
		if _, ok := files[dest]; !ok || done[dest] {
			continue
		}
		m := map[string]json.RawMessage{}
		m["destination"], _ = json.Marshal(dest)
		m["type"], _ = json.Marshal("bind")
		m["source"], _ = json.Marshal(files[dest])
		m["options"], _ = json.Marshal([]string{"rbind", "ro"})
		mounts = append(mounts, m)
	}
	return s.set("mounts", mounts)
}
