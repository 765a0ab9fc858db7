// Package suggest finds what a user probably meant by a word that is not one of the names
// pontoon knows: the "did you mean" of every message about a misspelled key, flag, command
// or setting.
package suggest

import "strings"

// Closest returns the candidate closest to word by edit distance, regardless of case, or ""
// when none is close enough to be a plausible typo: one edit in a short word, two from five
// letters, three from nine.
func Closest(word string, candidates []string) string {
	w := strings.ToLower(word)
	limit := 1
	switch {
	case len(w) >= 9:
		limit = 3
	case len(w) >= 5:
		limit = 2
	}
	best, bestD := "", limit+1
	for _, c := range candidates {
		if d := Distance(w, strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// Distance counts the insertions, deletions, substitutions and swaps of adjacent bytes that
// turn a into b (optimal string alignment distance); a swap counts once because "hots" for
// "host" is a typical typo.
func Distance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
