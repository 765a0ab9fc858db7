package netsetup

import (
	"regexp"
	"strings"
	"testing"
)

// TestValidName checks the hand-written name check against the rule it implements, spelled
// as a regular expression, on names at and around every boundary.
func TestValidName(t *testing.T) {
	rule := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	names := []string{"", "a", "Z", "0", "-", ".", "_", "a-", "a.b_c-d", "-a", ".a", "_a", "a b", "a/b",
		"a\n", "ä", "a\x00", strings.Repeat("a", 62), strings.Repeat("a", 63), strings.Repeat("a", 64), "b1", "g200"}
	for c := 0; c < 256; c++ {
		names = append(names, string(rune(c)), "a"+string([]byte{byte(c)}), string([]byte{byte(c)})+"a")
	}
	for _, n := range names {
		if got, want := ValidName(n), rule.MatchString(n); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", n, got, want)
		}
	}
}
