package config

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// BurntSushi/toml records key positions internally but does not export
// them (MetaData offers Keys, Type, IsDefined and Undecoded only), so
// keyLines recovers the line of every key from the source text. It runs only
// on documents the TOML decoder has accepted, so it can assume valid syntax;
// on anything unexpected it stops, and lookups fall back to the nearest
// ancestor it did record.

// keyLines maps dotted key paths to the line where each is first written.
// Array elements are recorded as a path segment "#N" after the array's key.
type keyLines struct {
	explicit map[string]int // keys written as `k = v` or as a [table] header
	implicit map[string]int // tables that only appear as a prefix of a longer key
}

// pathID turns a key path into a map key; every part is prefixed with a NUL
// so that the root path and a path of one empty key differ.
func pathID(path []string) string {
	var b strings.Builder
	for _, p := range path {
		b.WriteByte(0)
		b.WriteString(p)
	}
	return b.String()
}

// line returns the line of path, of its nearest recorded ancestor, or 1.
func (k *keyLines) line(path []string) int {
	for n := len(path); n > 0; n-- {
		id := pathID(path[:n])
		if l, ok := k.explicit[id]; ok {
			return l
		}
		if l, ok := k.implicit[id]; ok {
			return l
		}
	}
	return 1
}

// has reports whether path itself was recorded.
func (k *keyLines) has(path []string) bool {
	id := pathID(path)
	_, a := k.explicit[id]
	_, b := k.implicit[id]
	return a || b
}

func elemPath(path []string, i int) []string {
	return append(append([]string(nil), path...), "#"+strconv.Itoa(i))
}

func scanKeyLines(src string) *keyLines {
	s := &lineScanner{
		src:    src,
		line:   1,
		out:    &keyLines{explicit: map[string]int{}, implicit: map[string]int{}},
		arrays: map[string]int{},
	}
	s.document()
	return s.out
}

type lineScanner struct {
	src    string
	i      int
	line   int
	out    *keyLines
	arrays map[string]int // [[x]] headers seen so far, per path
}

func (s *lineScanner) mark(path []string, line int) {
	id := ""
	for n, part := range path {
		id += "\x00" + part // pathID(path[:n+1])
		m := s.out.implicit
		if n == len(path)-1 {
			m = s.out.explicit
		}
		if _, ok := m[id]; !ok {
			m[id] = line
		}
	}
}

func (s *lineScanner) peek() byte {
	if s.i < len(s.src) {
		return s.src[s.i]
	}
	return 0
}

func (s *lineScanner) advance(n int) {
	for ; n > 0 && s.i < len(s.src); n-- {
		if s.src[s.i] == '\n' {
			s.line++
		}
		s.i++
	}
}

// skipBlank skips spaces and tabs.
func (s *lineScanner) skipBlank() {
	for s.i < len(s.src) && (s.src[s.i] == ' ' || s.src[s.i] == '\t') {
		s.i++
	}
}

// skipSpace skips whitespace, newlines and comments.
func (s *lineScanner) skipSpace() {
	for s.i < len(s.src) {
		switch s.src[s.i] {
		case ' ', '\t', '\r', '\n':
			s.advance(1)
		case '#':
			for s.i < len(s.src) && s.src[s.i] != '\n' {
				s.i++
			}
		default:
			return
		}
	}
}

func (s *lineScanner) document() {
	var table []string
	for {
		s.skipSpace()
		if s.i >= len(s.src) {
			return
		}
		line := s.line
		if s.peek() == '[' {
			isArray := strings.HasPrefix(s.src[s.i:], "[[")
			if isArray {
				s.advance(2)
			} else {
				s.advance(1)
			}
			key, ok := s.key()
			if !ok {
				return
			}
			s.skipBlank()
			end := "]"
			if isArray {
				end = "]]"
			}
			if !strings.HasPrefix(s.src[s.i:], end) {
				return
			}
			s.advance(len(end))
			s.mark(key, line)
			if isArray {
				id := pathID(key)
				n := s.arrays[id]
				s.arrays[id] = n + 1
				key = elemPath(key, n)
				s.mark(key, line)
			}
			table = key
			continue
		}
		key, ok := s.key()
		if !ok {
			return
		}
		full := append(append([]string(nil), table...), key...)
		s.mark(full, line)
		if !s.assignment(full) {
			return
		}
	}
}

// assignment scans "= value" after a key.
func (s *lineScanner) assignment(path []string) bool {
	s.skipBlank()
	if s.peek() != '=' {
		return false
	}
	s.advance(1)
	s.skipBlank()
	return s.value(path)
}

// key scans a possibly dotted key and returns its parts.
func (s *lineScanner) key() ([]string, bool) {
	var parts []string
	for {
		s.skipBlank()
		var part string
		switch s.peek() {
		case '"':
			str, ok := s.basicString()
			if !ok {
				return nil, false
			}
			part = str
		case '\'':
			str, ok := s.literalString()
			if !ok {
				return nil, false
			}
			part = str
		default:
			start := s.i
			for s.i < len(s.src) && isBareKeyByte(s.src[s.i]) {
				s.i++
			}
			if s.i == start {
				return nil, false
			}
			part = s.src[start:s.i]
		}
		parts = append(parts, part)
		s.skipBlank()
		if s.peek() != '.' {
			return parts, true
		}
		s.advance(1)
	}
}

func isBareKeyByte(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// value scans one value and records the keys and array elements inside it.
func (s *lineScanner) value(path []string) bool {
	switch {
	case strings.HasPrefix(s.src[s.i:], `"""`):
		return s.multiline(`"""`, true)
	case strings.HasPrefix(s.src[s.i:], `'''`):
		return s.multiline(`'''`, false)
	case s.peek() == '"':
		_, ok := s.basicString()
		return ok
	case s.peek() == '\'':
		_, ok := s.literalString()
		return ok
	case s.peek() == '[':
		return s.array(path)
	case s.peek() == '{':
		return s.inlineTable(path)
	}
	// Numbers, booleans and date-times: none contains a delimiter, though a
	// date-time may contain a space.
	start := s.i
	for s.i < len(s.src) && !strings.ContainsRune(",]}\r\n#", rune(s.src[s.i])) {
		s.i++
	}
	return s.i > start
}

func (s *lineScanner) array(path []string) bool {
	s.advance(1)
	for n := 0; ; n++ {
		s.skipSpace()
		if s.peek() == ']' {
			s.advance(1)
			return true
		}
		elem := elemPath(path, n)
		s.mark(elem, s.line)
		if !s.value(elem) {
			return false
		}
		s.skipSpace()
		switch s.peek() {
		case ',':
			s.advance(1)
		case ']':
		default:
			return false
		}
	}
}

func (s *lineScanner) inlineTable(path []string) bool {
	s.advance(1)
	for {
		s.skipSpace()
		if s.peek() == '}' {
			s.advance(1)
			return true
		}
		line := s.line
		key, ok := s.key()
		if !ok {
			return false
		}
		full := append(append([]string(nil), path...), key...)
		s.mark(full, line)
		if !s.assignment(full) {
			return false
		}
		s.skipSpace()
		switch s.peek() {
		case ',':
			s.advance(1)
		case '}':
		default:
			return false
		}
	}
}

// basicString scans a single-line "..." string and returns its value.
func (s *lineScanner) basicString() (string, bool) {
	s.advance(1)
	var b strings.Builder
	for s.i < len(s.src) {
		c := s.src[s.i]
		switch c {
		case '"':
			s.i++
			return b.String(), true
		case '\n':
			return "", false
		case '\\':
			if !s.escape(&b) {
				return "", false
			}
		default:
			b.WriteByte(c)
			s.i++
		}
	}
	return "", false
}

// simpleEscape is the byte a one-letter escape stands for.
func simpleEscape(c byte) (byte, bool) {
	switch c {
	case 'b':
		return '\b', true
	case 't':
		return '\t', true
	case 'n':
		return '\n', true
	case 'f':
		return '\f', true
	case 'r':
		return '\r', true
	case 'e':
		return 0x1b, true
	case '"', '\\':
		return c, true
	}
	return 0, false
}

// hexDigits is how many hex digits follow an escape's letter, 0 for no hex escape.
func hexDigits(c byte) int {
	switch c {
	case 'x':
		return 2
	case 'u':
		return 4
	case 'U':
		return 8
	}
	return 0
}

// escape decodes the escape sequence at s.i the way TOML 1.1 defines it.
func (s *lineScanner) escape(b *strings.Builder) bool {
	if s.i+1 >= len(s.src) {
		return false
	}
	c := s.src[s.i+1]
	if r, ok := simpleEscape(c); ok {
		b.WriteByte(r)
		s.i += 2
		return true
	}
	digits := hexDigits(c)
	if digits == 0 || s.i+2+digits > len(s.src) {
		return false
	}
	v, err := strconv.ParseUint(s.src[s.i+2:s.i+2+digits], 16, 32)
	if err != nil || !utf8.ValidRune(rune(v)) {
		return false
	}
	b.WriteRune(rune(v))
	s.i += 2 + digits
	return true
}

// literalString scans a single-line '...' string and returns its value.
func (s *lineScanner) literalString() (string, bool) {
	s.advance(1)
	end := strings.IndexAny(s.src[s.i:], "'\n")
	if end < 0 || s.src[s.i+end] != '\'' {
		return "", false
	}
	v := s.src[s.i : s.i+end]
	s.i += end + 1
	return v, true
}

// multiline scans a """...""" or ”'...”' string, which may span lines.
func (s *lineScanner) multiline(delim string, escapes bool) bool {
	s.advance(3)
	for s.i < len(s.src) {
		if escapes && s.src[s.i] == '\\' {
			s.advance(2)
			continue
		}
		if strings.HasPrefix(s.src[s.i:], delim) {
			s.advance(3)
			// Up to two quotes right before the closing delimiter belong to
			// the string: """a""""" ends in a"".
			for extra := 0; extra < 2 && s.peek() == delim[0]; extra++ {
				s.advance(1)
			}
			return true
		}
		s.advance(1)
	}
	return false
}
