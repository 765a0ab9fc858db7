package testkit

import "regexp"

// dynamicElements is the element list of a set with timeouts, as nft lists it (with or
// without -s).
var dynamicElements = regexp.MustCompile(`(?s)(flags dynamic,timeout\n\s*timeout [^\n]*)\n\s*elements = \{[^}]*\}`)

// StableRuleset drops from an nft listing the elements of dynamic sets with timeouts (a
// bridge's record of the addresses its guests asked for): the packet path adds them and
// they expire, like counters, so two listings of the same rules differ by them.
func StableRuleset(listing string) string { return dynamicElements.ReplaceAllString(listing, "$1") }
