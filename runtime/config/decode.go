package config

import (
	"errors"
	"fmt"
	"github.com/pontoon-dev/pontoon/internal/suggest"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/pontoon-dev/pontoon/netsetup"
)

// checker walks the decoded document and collects every problem.
type checker struct {
	file   string
	opts   Options
	lines  *keyLines
	order  map[string][]string // keys of each table in file order, by pathID
	errs   ErrorList
	first  netip.Addr // guest range
	last   netip.Addr
	bridge netip.Addr
}

func parse(name string, data []byte, opts Options) (*Project, error) {
	bridgeNet := opts.BridgeNet
	if !bridgeNet.IsValid() {
		bridgeNet = DefaultBridgeNet()
	}
	first, last, bridge, err := netsetup.GuestRange(bridgeNet)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", name, err)
	}

	var raw map[string]any
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		return nil, ErrorList{syntaxError(name, data, err)}
	}
	c := &checker{
		file:   name,
		opts:   opts,
		lines:  scanKeyLines(string(data)),
		order:  keyOrder(md.Keys()),
		first:  first,
		last:   last,
		bridge: bridge,
	}
	c.noNUL(nil, raw)
	p := c.project(raw)
	if len(c.errs) > 0 {
		c.errs.sort()
		return nil, c.errs
	}
	return p, nil
}

func syntaxError(file string, data []byte, err error) *Error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		msg := "invalid TOML: " + pe.Message
		if key, ok := duplicateKey(pe.Message); ok {
			msg = strings.TrimSuffix(msg, ".") + "; " + duplicateFix(data, key, pe.Position.Line)
		}
		return &Error{File: file, Line: max(pe.Position.Line, 1), Key: pe.LastKey, Msg: msg}
	}
	return &Error{File: file, Line: 1, Msg: "invalid TOML: " + err.Error()}
}

// noNUL refuses a NUL byte in any string of the document: no argument, path, name or
// environment value can hold one, and the runtime would only fail on it once the bridge is
// made.
func (c *checker) noNUL(path []string, v any) {
	const msg = "a NUL byte (\\u0000), which no command, path or name can hold; remove it"
	switch x := v.(type) {
	case string:
		if strings.IndexByte(x, 0) >= 0 {
			c.errf(path, "contains "+msg)
		}
	case map[string]any:
		for _, k := range c.keys(path, x) {
			kp := sub(path, k)
			if strings.IndexByte(k, 0) >= 0 {
				c.errf(path, "has a key with "+msg)
				continue
			}
			c.noNUL(kp, x[k])
		}
	case []map[string]any:
		for i, e := range x {
			c.noNUL(elemPath(path, i), e)
		}
	case []any:
		for i, e := range x {
			c.noNUL(elemPath(path, i), e)
		}
	}
}

// duplicateKey finds the key in the TOML library's message for a key or table defined twice,
// "Key 'commands.a' has already been defined.": its ParseError names only the table the
// parser was in.
func duplicateKey(msg string) (string, bool) {
	rest, ok := strings.CutPrefix(msg, "Key '")
	if !ok {
		return "", false
	}
	key, rest, ok := strings.Cut(rest, "'")
	return key, ok && strings.HasPrefix(rest, " has already been defined")
}

// duplicateFix says where a key set twice was first set. The document did not decode, but
// the line scanner only needs what comes before the second definition to be valid.
func duplicateFix(data []byte, key string, line int) string {
	path := strings.Split(key, ".")
	lines := scanKeyLines(string(data))
	if lines.has(path) {
		if first := lines.line(path); first < line {
			return fmt.Sprintf("it is first set on line %d; keep one of the two", first)
		}
	}
	return "a key is set once in its table; keep one of the two"
}

// keyOrder lists, for every table, its keys in order of first appearance.
// MetaData.Keys omits tables that only appear as part of a longer key
// ([commands.x.children.a] without [commands.x]), so each key's prefixes are
// taken into account too.
func keyOrder(keys []toml.Key) map[string][]string {
	order := map[string][]string{}
	seen := map[string]bool{}
	for _, k := range keys {
		parent := ""
		for _, part := range k {
			id := parent + "\x00" + part // pathID, built one part at a time
			if !seen[id] {
				seen[id] = true
				order[parent] = append(order[parent], part)
			}
			parent = id
		}
	}
	return order
}

// keys returns the keys of table m at path in file order.
func (c *checker) keys(path []string, m map[string]any) []string {
	var out, rest []string
	seen := make(map[string]bool, len(m))
	for _, k := range c.order[pathID(path)] {
		if _, ok := m[k]; ok && !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for k := range m {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

func sub(path []string, keys ...string) []string {
	return append(append([]string(nil), path...), keys...)
}

// keyString writes a key path as TOML does, with array elements as 1-based indexes
// (run[2], steps[1].for) rather than as keys.
func keyString(path []string) string {
	var b strings.Builder
	for _, part := range path {
		if n, err := strconv.Atoi(strings.TrimPrefix(part, "#")); err == nil && strings.HasPrefix(part, "#") && b.Len() > 0 {
			fmt.Fprintf(&b, "[%d]", n+1)
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(toml.Key{part}.String())
	}
	return b.String()
}

// errf records a problem with the key at path, on the line where it is written.
func (c *checker) errf(path []string, format string, args ...any) {
	c.errAt(path, c.lines.line(path), format, args...)
}

func (c *checker) errAt(path []string, line int, format string, args ...any) {
	c.errs = append(c.errs, &Error{File: c.file, Line: line, Key: keyString(path), Msg: fmt.Sprintf(format, args...)})
}

func (c *checker) unknownKey(path []string, allowed []string, aliases map[string]string) {
	k := path[len(path)-1]
	hint := aliases[k]
	if hint == "" {
		if s := suggest.Closest(k, allowed); s != "" {
			hint = strconv.Quote(s)
		}
	}
	if hint != "" {
		c.errf(path, "unknown key; did you mean %s?", hint)
		return
	}
	c.errf(path, "unknown key; allowed here: %s", strings.Join(allowed, ", "))
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []map[string]any:
		return "an array of tables"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return "a date-time"
}

func isScalar(v any) bool {
	switch v.(type) {
	case int64, float64, bool:
		return true
	}
	return false
}

// table checks that the value at path is a table; how says how to write one there.
func (c *checker) table(path []string, v any, how string) (map[string]any, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		c.errf(path, "must be a table, not %s; write %s", typeName(v), how)
	}
	return m, ok
}

// kind is the shape of value a key takes; a value of another shape gets the
// kind's type error, which ends with the key's example.
type kind int

const (
	// anything: the handler checks the value itself, because the key takes
	// several forms (run, root, ports) or its fix depends on the bridge
	// network (ip).
	anything    kind = iota
	text             // a string
	flag             // true or false
	choice           // one of a key's choices, a string
	stringTable      // a table of strings
	duration         // a Go duration string such as "3s"
)

// field is one key of a TOML table: its name, the kind of value it takes
// with an example for the type error, and the handler that reads a value of
// that kind into the table's result T.
type field[T any] struct {
	key     string
	kind    kind
	example string            // the value in "write KEY = EXAMPLE"
	choices []string          // choice: the values allowed
	what    string            // choice: what a value is, article included ("an exit policy"), as in "is not a runtime"
	aliases map[string]string // choice: values other tools use, mapped to the one meant
	// first: read before the other keys, which mean something else
	// depending on it (supervise, bridge).
	first bool
	// refuse, when set, is asked before the value is read: a key that does
	// not belong in this table as decoded so far gets the message it
	// returns, or none when it returns "" (an earlier error explains it).
	refuse func(c *checker, path []string, d *T) (msg string, refused bool)
	// read stores a value of the field's kind (a string for text, choice and
	// duration, a bool for flag, a map for stringTable, anything for anything).
	read func(c *checker, path []string, v any, d *T)
}

// schema is one TOML table: its keys in the order "allowed here" lists them.
type schema[T any] struct {
	fields  []field[T]
	aliases map[string]string // unknown keys other tools use, with the hint to give
	// misplaced, when set, says where a key that belongs in another table
	// goes; "" for a key that is simply unknown.
	misplaced func(c *checker, path []string, key string) string
}

// allowed lists the table's keys.
func (s *schema[T]) allowed() []string {
	out := make([]string, len(s.fields))
	for i, f := range s.fields {
		out[i] = f.key
	}
	return out
}

func (s *schema[T]) has(key string) bool {
	for _, f := range s.fields {
		if f.key == key {
			return true
		}
	}
	return false
}

// unknownKeys reports, in file order, every key of t that s does not hold.
func unknownKeys[T any](c *checker, path []string, t map[string]any, s *schema[T]) {
	for _, k := range c.keys(path, t) {
		if s.has(k) {
			continue
		}
		if s.misplaced != nil {
			if msg := s.misplaced(c, path, k); msg != "" {
				c.errf(sub(path, k), "%s", msg)
				continue
			}
		}
		c.unknownKey(sub(path, k), s.allowed(), s.aliases)
	}
}

// readFields reads every key of t that s holds, the first fields before the
// others and otherwise in the schema's order, into d.
func readFields[T any](c *checker, path []string, t map[string]any, s *schema[T], d *T) {
	for _, first := range []bool{true, false} {
		for i := range s.fields {
			f := &s.fields[i]
			v, ok := t[f.key]
			if !ok || f.first != first {
				continue
			}
			kp := sub(path, f.key)
			if f.refuse != nil {
				if msg, refused := f.refuse(c, kp, d); refused {
					if msg != "" {
						c.errf(kp, "%s", msg)
					}
					continue
				}
			}
			if v, ok := checkKind(c, kp, f, v); ok {
				f.read(c, kp, v, d)
			}
		}
	}
}

// decode reports t's unknown keys and reads the others into d.
func decode[T any](c *checker, path []string, t map[string]any, s *schema[T], d *T) {
	unknownKeys(c, path, t, s)
	readFields(c, path, t, s, d)
}

// checkKind returns v if it is of f's kind, else records the type error.
func checkKind[T any](c *checker, path []string, f *field[T], v any) (any, bool) {
	k := f.key
	switch f.kind {
	case text:
		if _, ok := v.(string); !ok {
			c.errf(path, "must be a string, not %s; write %s = %s", typeName(v), k, f.example)
			return nil, false
		}
	case flag:
		if _, ok := v.(bool); !ok {
			if s, isStr := v.(string); isStr && (s == "true" || s == "false") {
				c.errf(path, "%q is a string; write %s = %s without quotes", s, k, s)
			} else {
				c.errf(path, "must be true or false, not %s; write %s = %s", typeName(v), k, f.example)
			}
			return nil, false
		}
	case choice:
		s, ok := v.(string)
		if !ok {
			c.errf(path, "must be a string, not %s; use %s", typeName(v), quoteList(f.choices))
			return nil, false
		}
		if !slices.Contains(f.choices, s) {
			hint := didYouMean(s, f.choices)
			if a, ok := f.aliases[s]; ok {
				hint = "; did you mean " + strconv.Quote(a) + "?"
			}
			c.errf(path, "%q is not %s; use %s%s", s, f.what, quoteList(f.choices), hint)
			return nil, false
		}
	case stringTable:
		if _, ok := v.(map[string]any); !ok {
			c.errf(path, "must be a table of strings, not %s; write %s = %s", typeName(v), k, f.example)
			return nil, false
		}
	case duration:
		switch x := v.(type) {
		case string:
		case int64:
			c.errf(path, "%d has no unit; write %s = \"%ds\" (a duration such as %s, \"500ms\" or \"2m\")", x, k, x, f.example)
			return nil, false
		default:
			c.errf(path, "must be a duration string, not %s; write %s = %s", typeName(v), k, f.example)
			return nil, false
		}
	}
	return v, true
}
