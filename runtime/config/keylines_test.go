package config

import (
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

func TestKeyLines(t *testing.T) {
	src := strings.Join([]string{
		`# comment [not.a.table]`,           // 1
		`top = "a # not a comment"`,         // 2
		`[ t . "q.k" . 'lit' ]  # a header`, // 3
		`ml = """`,                          // 4
		`[fake]`,                            // 5
		`x = 1 """`,                         // 6
		`after = '''a`,                      // 7
		`b'''''`,                            // 8
		`arr = [ 1,`,                        // 9
		`  # comment ]`,                     // 10
		`  { k = "v" }, [2, 3],`,            // 11
		`  "]"`,                             // 12
		`]`,                                 // 13
		`d.e.f = 1979-05-27 07:32:00Z`,      // 14
		"crlf = 1\r",                        // 15
		`it = { a = 1, b = { c = "}" },`,    // 16
		`  d = [ "x" ] }`,                   // 17
		`[[aot]]`,                           // 18
		`n = 1`,                             // 19
		`[[aot]]`,                           // 20
		`n = 2`,                             // 21
		`[tbl.sub]`,                         // 22
		`esc = "\"\\\u00e9"`,                // 23
		`"\u00e9" = 1`,                      // 24
		`"" = 2`,                            // 25
		`[tbl]`,                             // 26
		`late = true`,                       // 27
	}, "\n")
	if _, err := toml.Decode(src, new(map[string]any)); err != nil {
		t.Fatalf("the test document is not valid TOML: %v", err)
	}
	kl := scanKeyLines(src)
	for _, tc := range []struct {
		path []string
		line int
	}{
		{[]string{"top"}, 2},
		{[]string{"t"}, 3},
		{[]string{"t", "q.k"}, 3},
		{[]string{"t", "q.k", "lit"}, 3},
		{[]string{"t", "q.k", "lit", "ml"}, 4},
		{[]string{"t", "q.k", "lit", "after"}, 7},
		{[]string{"t", "q.k", "lit", "arr"}, 9},
		{elemPath([]string{"t", "q.k", "lit", "arr"}, 0), 9},
		{elemPath([]string{"t", "q.k", "lit", "arr"}, 1), 11},
		{sub(elemPath([]string{"t", "q.k", "lit", "arr"}, 1), "k"), 11},
		{elemPath([]string{"t", "q.k", "lit", "arr"}, 2), 11},
		{elemPath([]string{"t", "q.k", "lit", "arr"}, 3), 12},
		{[]string{"t", "q.k", "lit", "d", "e", "f"}, 14},
		{[]string{"t", "q.k", "lit", "d"}, 14},
		{[]string{"t", "q.k", "lit", "crlf"}, 15},
		{[]string{"t", "q.k", "lit", "it", "b", "c"}, 16},
		{[]string{"t", "q.k", "lit", "it", "d"}, 17},
		{[]string{"aot"}, 18},
		{elemPath([]string{"aot"}, 1), 20},
		{sub(elemPath([]string{"aot"}, 1), "n"), 21},
		{[]string{"tbl", "sub", "esc"}, 23},
		{[]string{"tbl", "sub", "é"}, 24},
		{[]string{"tbl", "sub", ""}, 25},
		// [tbl] appears first as a prefix on line 22, but its own header
		// on line 26 is where it is written.
		{[]string{"tbl"}, 26},
		{[]string{"tbl", "late"}, 27},
		// Unknown paths fall back to the nearest recorded ancestor.
		{[]string{"tbl", "missing", "deeper"}, 26},
		{[]string{"nowhere"}, 1},
	} {
		if got := kl.line(tc.path); got != tc.line {
			t.Errorf("line(%q) = %d, want %d", tc.path, got, tc.line)
		}
	}
	if kl.has([]string{"fake"}) {
		t.Errorf("a table header inside a multi-line string was recorded")
	}
	checkKeyLines(t, src)
}

// checkKeyLines asserts that every key the TOML decoder saw in src was
// found by scanKeyLines on a line that contains it. Keys inside arrays are
// skipped: MetaData names them without an element index.
func checkKeyLines(t *testing.T, src string) {
	t.Helper()
	var doc map[string]any
	md, err := toml.Decode(src, &doc)
	if err != nil {
		return
	}
	kl := scanKeyLines(src)
	lines := strings.Split(src, "\n")
	for _, k := range md.Keys() {
		if insideArray(doc, k) {
			continue
		}
		if !kl.has(k) {
			t.Fatalf("key %q not found in %q", k.String(), src)
		}
		l := kl.line(k)
		if l < 1 || l > len(lines) {
			t.Fatalf("key %q on line %d of %d", k.String(), l, len(lines))
		}
		// A bare last part is written as is on its line.
		last := k[len(k)-1]
		if last != "" && strings.Trim(last, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == "" &&
			!strings.Contains(lines[l-1], last) {
			t.Fatalf("key %q recorded on line %d, which is %q; source %q", k.String(), l, lines[l-1], src)
		}
	}
}

// insideArray reports whether a proper prefix of k names an array in doc.
// (MetaData.Type cannot tell: an empty key under [[x]] overwrites the type
// recorded for x.)
func insideArray(doc map[string]any, k toml.Key) bool {
	var v any = doc
	for _, part := range k[:len(k)-1] {
		m, ok := v.(map[string]any)
		if !ok {
			return true
		}
		v = m[part]
	}
	_, isTable := v.(map[string]any)
	return !isTable
}
