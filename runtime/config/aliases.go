package config

import (
	"net/netip"
	"strings"

	"github.com/pontoon-dev/pontoon/netsetup"
)

// aliasesField is the aliases key of guests: further names the bridge's name server
// answers for them.
var aliasesField = field[decl]{key: "aliases", refuse: guestOnly,
	read: func(c *checker, p []string, v any, d *decl) { d.guest.Aliases = c.aliases(p, v) }}

// aliases reads a list of names; a bad one is an error at its own path.
func (c *checker) aliases(path []string, v any) []string {
	arr, ok := v.([]any)
	if !ok {
		if s, isStr := v.(string); isStr {
			c.errf(path, "must be a list; write aliases = [%q]", s)
		} else {
			c.errf(path, `must be a list of names, not %s; write e.g. aliases = ["db", "primary"]`, typeName(v))
		}
		return nil
	}
	if len(arr) > netsetup.MaxAliases {
		c.errf(path, "has %d names; give a guest at most %d aliases", len(arr), netsetup.MaxAliases)
		return nil
	}
	var out []string
	for i, x := range arr {
		line := c.lines.line(elemPath(path, i))
		s, ok := x.(string)
		if !ok {
			c.errAt(path, line, "each alias must be a string, not %s; write e.g. %q", typeName(x), "db")
			continue
		}
		if !netsetup.ValidHostname(s) {
			c.errAt(path, line, "%q is not a valid alias; use letters, digits, '-' and '_' (labels separated by '.', at most 64 characters), e.g. %q", s, fixName(s, "db"))
			continue
		}
		if _, err := netip.ParseAddr(s); err == nil {
			c.errAt(path, line, "%q is an IP address, which cannot be a name; give a name such as %q", s, "db")
			continue
		}
		if netsetup.LoopbackName(s) {
			c.errAt(path, line, "%q names the loopback, not a guest; give a name such as %q", s, "db")
			continue
		}
		dup := false
		for _, o := range out {
			if strings.EqualFold(o, s) {
				c.errAt(path, line, "%q is listed twice; give each alias once", s)
				dup = true
			}
		}
		if !dup {
			out = append(out, s)
		}
	}
	return out
}
