package config

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup"
)

// The readers of single values: each checks one value and records what is
// wrong with it, saying how to write it instead.

const maxNameLen = 63 // so a name can serve as a hostname

func validName(s string) bool {
	if s == "" || len(s) > maxNameLen || s[0] == '_' || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '_' || ch == '-') {
			return false
		}
	}
	return true
}

// fixName turns s into a name validName accepts, or returns fallback.
func fixName(s, fallback string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	out := strings.TrimLeft(b.String(), "-_")
	if len(out) > maxNameLen {
		out = out[:maxNameLen]
	}
	if !validName(out) {
		return fallback
	}
	return out
}

func (c *checker) name(path []string, name, what, fallback string) {
	if !validName(name) {
		c.errf(path, "%s name %q must match [a-z0-9][a-z0-9_-]* (at most %d characters); rename it, e.g. %q",
			what, name, maxNameLen, fixName(name, fallback))
	}
}

const runExample = `run = ["make", "test"]`

func (c *checker) run(path []string, v any) Run {
	switch x := v.(type) {
	case []any:
		if len(x) == 0 {
			c.errf(path, "is empty; give the program and its arguments, e.g. %s", runExample)
			return Run{}
		}
		argv := make([]string, 0, len(x))
		for i, e := range x {
			line := c.lines.line(elemPath(path, i))
			s, ok := e.(string)
			switch {
			case !ok && isScalar(e):
				c.errAt(path, line, "argument %d is %s, not a string; quote it: \"%v\"", i, typeName(e), e)
			case !ok:
				c.errAt(path, line, "argument %d is %s; every argument must be a string, e.g. %s", i, typeName(e), runExample)
			case i == 0 && strings.TrimSpace(s) == "":
				c.errAt(path, line, "the program (first element) is empty; name the program to run, e.g. %s", runExample)
			default:
				argv = append(argv, s)
			}
		}
		return Run{Argv: argv}
	case string:
		if strings.TrimSpace(x) == "" {
			c.errf(path, "is empty; give the program and its arguments, e.g. %s", runExample)
			return Run{}
		}
		c.errf(path, "a plain string is ambiguous; write an argv list run = [%s], or mark a shell command explicitly: run = { shell = %q }",
			quoteArgs(strings.Fields(x)), x)
	case map[string]any:
		unknownKeys(c, path, x, runSchema.Get())
		if _, ok := x["shell"]; !ok {
			c.errf(path, `needs shell = "..." (run = { shell = "make test | tee log" }), or use an argv list %s`, runExample)
			return Run{}
		}
		var r Run
		readFields(c, path, x, runSchema.Get(), &r)
		return r
	default:
		c.errf(path, `must be an argv list or { shell = "..." }, not %s; write e.g. %s`, typeName(v), runExample)
	}
	return Run{}
}

func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = strconv.Quote(a)
	}
	return strings.Join(q, ", ")
}

func validEnvName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '_') {
			return false
		}
	}
	return true
}

// env reads an env table over the inherited base.
func (c *checker) env(path []string, t map[string]any, base map[string]string) map[string]string {
	own := map[string]string{}
	for _, k := range c.keys(path, t) {
		kp := sub(path, k)
		if !validEnvName(k) {
			c.errf(kp, "%q is not a valid environment variable name; use letters, digits and '_', not starting with a digit", k)
			continue
		}
		if reservedEnv(k) {
			c.errf(kp, "pontoon sets %s for each child (its bridge, name, address, or where the chain's state is); remove it", k)
			continue
		}
		switch x := t[k].(type) {
		case string:
			own[k] = x
		case int64, float64, bool:
			c.errf(kp, "is %s; environment values are strings: write %s = \"%v\"", typeName(x), k, x)
		default:
			c.errf(kp, "must be a string, not %s; write %s = \"value\"", typeName(x), k)
		}
	}
	return mergeEnv(base, own)
}

// reservedEnv reports whether pontoon sets the variable k for a child: set in pontoon.toml it
// would point the child's pontoon commands at another bridge or state.
func reservedEnv(k string) bool {
	switch k {
	case "PONTOON_BRIDGE", "PONTOON_GUEST", "PONTOON_IP", "PONTOON_IP6":
		return true
	}
	return slices.ContainsFunc(netsetup.EnvSettings(), func(s netsetup.EnvSetting) bool { return s.Var == k })
}

// mergeEnv returns a copy of base with over's entries added; nil if both are empty.
func mergeEnv(base, over map[string]string) map[string]string {
	if len(base) == 0 && len(over) == 0 {
		return nil
	}
	out := make(map[string]string, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

func (c *checker) workdir(p []string, s string) (string, bool) {
	if !strings.HasPrefix(s, "/") {
		c.errf(p, "%q must be an absolute path inside the container; write workdir = %q", s, path.Join(DefaultWorkdir, s))
		return "", false
	}
	return path.Clean(s), true
}

// rootDecl is a root table as read: root is valid when ok.
type rootDecl struct {
	root Root
	ok   bool
}

func (c *checker) root(p []string, v any) (Root, bool) {
	switch x := v.(type) {
	case string:
		if x == string(RootHost) {
			return Root{Kind: RootHost}, true
		}
		c.errf(p, `%q is not a root; use "host", { rootfs = %q } for a directory in the project or { image = %q } for an image`, x, x, x)
	case map[string]any:
		unknownKeys(c, p, x, rootSchema.Get())
		_, hasRootfs := x["rootfs"]
		_, hasImage := x["image"]
		switch {
		case hasRootfs && hasImage:
			c.errf(p, "sets both rootfs and image; keep one")
		case hasRootfs || hasImage:
			var d rootDecl
			readFields(c, p, x, rootSchema.Get(), &d)
			return d.root, d.ok
		case len(x) == 0:
			c.errf(p, `is empty; write root = { rootfs = "DIR" } or root = { image = "REF" }, or root = "host"`)
			// Otherwise only unknown keys were given, and each is reported.
		}
	default:
		c.errf(p, `must be "host", { rootfs = "DIR" } or { image = "REF" }, not %s`, typeName(v))
	}
	return Root{}, false
}

func (c *checker) rootfs(p []string, s string, d *rootDecl) {
	if s == "" {
		c.errf(p, `is empty; name a directory relative to the project, e.g. rootfs = "rootfs/alpine"`)
		return
	}
	d.root, d.ok = Root{Kind: RootRootfs, Path: filepath.Clean(s)}, true
}

func (c *checker) image(p []string, s string, d *rootDecl) {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' }) {
		c.errf(p, `%q is not an image reference; write e.g. image = "docker.io/library/alpine:3"`, s)
		return
	}
	d.root, d.ok = Root{Kind: RootImage, Image: s}, true
}

// checkRootfs makes sure a rootfs directory exists when the project
// directory is known.
func (c *checker) checkRootfs(p []string, rel string) {
	if c.opts.Dir == "" {
		return
	}
	full := rel
	if !filepath.IsAbs(rel) {
		full = filepath.Join(c.opts.Dir, rel)
	}
	stat := c.opts.Stat
	if stat == nil {
		stat = os.Stat
	}
	fi, err := stat(full)
	switch {
	case filepath.Clean(full) == "/":
		c.errf(p, "%q is the host's root directory, which a container cannot use as its own; write root = \"host\" for the host's files", rel)
	case errors.Is(err, fs.ErrNotExist):
		c.errf(p, "%q does not exist (looked for %s); create it, or fix the path, which is relative to the project directory %s", rel, full, c.opts.Dir)
	case err != nil:
		c.errf(p, "cannot check %q: %v; make sure the directory is readable", rel, err)
	case !fi.IsDir():
		c.errf(p, "%q is not a directory (%s); point rootfs at the root filesystem's directory", rel, full)
	}
}

func (c *checker) rangeText() string { return c.first.String() + "-" + c.last.String() }

func (c *checker) ip(path []string, v any) netip.Addr {
	s, ok := v.(string)
	if !ok {
		c.errf(path, "must be a string, not %s; write ip = %q (any of %s)", typeName(v), c.first.String(), c.rangeText())
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil || !a.Is4():
		c.errf(path, "%q is not an IPv4 address; use %s", s, c.rangeText())
	case a == c.bridge:
		c.errf(path, "%s is the bridge's own address; use %s", a, c.rangeText())
	case a.Compare(c.first) < 0 || a.Compare(c.last) > 0:
		c.errf(path, "%s is outside the run's guest range; use %s", a, c.rangeText())
	default:
		return a
	}
	return netip.Addr{}
}

// ip6 reads a guest's own IPv6 address; whether it lies in the gateway's plan is checked
// when the guest is attached, against the plan the gateway runs.
func (c *checker) ip6(path []string, v any) netip.Addr {
	s, ok := v.(string)
	if !ok {
		c.errf(path, "must be a string, not %s; write ip6 = \"fd70:6f6e::10\" (an address in the plan's guest /64), or leave it out for the one derived from ip", typeName(v))
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() || a.Is4In6() || a.Zone() != "" {
		c.errf(path, "%q is not an IPv6 address; write one in the plan's guest /64, e.g. \"fd70:6f6e::10\", or leave ip6 out for the one derived from ip", s)
		return netip.Addr{}
	}
	return a
}

func (c *checker) hostname(path []string, s string) (string, bool) {
	if !netsetup.ValidHostname(s) {
		c.errf(path, "%q is not a valid hostname; use letters, digits, '-' and '_' (labels separated by '.', at most 64 characters), e.g. %q",
			s, fixName(s, "node1"))
		return "", false
	}
	if _, err := netip.ParseAddr(s); err == nil {
		c.errf(path, "%q is an IP address, which cannot be a name; give a name such as %q", s, "node1")
		return "", false
	}
	if netsetup.LoopbackName(s) {
		c.errf(path, "%q names the loopback, not a guest; give a name such as %q", s, "node1")
		return "", false
	}
	return s, true
}

// ports reads a list of port forwards and where each is written.
func (c *checker) ports(path []string, v any) ([]netsetup.Port, [][]string) {
	arr, ok := v.([]any)
	if !ok {
		if s, isStr := v.(string); isStr {
			c.errf(path, "must be a list; write ports = [%q]", s)
		} else {
			c.errf(path, `must be a list of "%s" strings, not %s; write e.g. ports = ["8080:80"]`, netsetup.GuestPortForm, typeName(v))
		}
		return nil, nil
	}
	var out []netsetup.Port
	var paths [][]string
	for i, e := range arr {
		ep := elemPath(path, i)
		line := c.lines.line(ep)
		s, ok := e.(string)
		if !ok {
			if n, isInt := e.(int64); isInt {
				c.errAt(path, line, `port %d must be a string "HOSTPORT:GUESTPORT"; write "%d:%d"`, n, n, n)
			} else {
				c.errAt(path, line, `each port must be a string "%s", not %s; write e.g. "8080:80"`, netsetup.GuestPortForm, typeName(e))
			}
			continue
		}
		p, err := netsetup.ParseGuestPort(s)
		if err != nil {
			c.errAt(path, line, "%v", err)
			continue
		}
		out = append(out, p)
		paths = append(paths, ep)
	}
	return out, paths
}

// stopTimeout reads a duration such as "3s" that CheckStopTimeout allows.
func (c *checker) stopTimeout(p []string, s string) (time.Duration, bool) {
	k := p[len(p)-1]
	d, err := time.ParseDuration(s)
	if err != nil {
		if MissingUnit(s) {
			c.errf(p, "%q has no unit; write %s = \"%ss\" (or \"ms\", \"m\")", s, k, s)
		} else {
			c.errf(p, "%q is not a duration; write a number with a unit, e.g. %s = \"3s\", \"500ms\" or \"2m\"", s, k)
		}
		return 0, false
	}
	switch err := CheckStopTimeout(d); {
	case errors.Is(err, ErrNoStopTime):
		c.errf(p, "%q %v; give more than zero, e.g. %s = \"3s\"", s, err, k)
	case err != nil:
		c.errf(p, "%q %v; write at most %s = %q", s, err, k, shortDuration(MaxStopTimeout))
	default:
		return d, true
	}
	return 0, false
}

// The reasons CheckStopTimeout gives; each place a stop timeout is written in says how to
// write it there.
var (
	ErrNoStopTime      = errors.New("leaves the containers no time to stop")
	ErrStopTimeTooLong = errors.New("is longer than the limit of " + shortDuration(MaxStopTimeout))
)

// CheckStopTimeout is the one rule for how long containers get between the stop signal and
// SIGKILL, whether pontoon.toml's stop_timeout or run's --stop-timeout gives it: nil for a d
// in (0, MaxStopTimeout], else ErrNoStopTime or ErrStopTimeTooLong.
func CheckStopTimeout(d time.Duration) error {
	switch {
	case d <= 0:
		return ErrNoStopTime
	case d > MaxStopTimeout:
		return ErrStopTimeTooLong
	}
	return nil
}

// MissingUnit reports whether s is a duration written without its unit ("5", "1.5"): digits
// with at most one decimal point, not "inf", "1e3" or "-5".
func MissingUnit(s string) bool {
	digits, points := 0, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] >= '0' && s[i] <= '9':
			digits++
		case s[i] == '.':
			points++
		default:
			return false
		}
	}
	return digits > 0 && points <= 1
}

// shortDuration writes d without zero trailing units: 10m rather than 10m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
