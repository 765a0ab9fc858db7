package config

import (
	"fmt"
	"github.com/pontoon-dev/pontoon/internal/suggest"
	"sort"
	"strconv"
	"strings"
)

// Error is one problem found in a project file. Msg says what is wrong with
// the value at Key and how to fix it.
type Error struct {
	File string // the file name given to Parse or Load
	Line int    // 1-based line where Key is written (or its table, if Key is missing)
	Key  string // dotted TOML key path, such as commands.cluster.children.n1.ip; empty for syntax errors without a key
	Msg  string
}

// Error formats e as "FILE:LINE: KEY: MSG".
func (e *Error) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Key, e.Msg)
}

// ErrorList is every problem found in one project file, sorted by line.
// Parse and Load return it (as error) whenever the file is rejected, so a
// developer can fix all problems in one pass.
type ErrorList []*Error

// Error joins the errors one per line.
func (l ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap gives errors.Is and errors.As access to each *Error.
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

func (l ErrorList) sort() {
	sort.SliceStable(l, func(i, j int) bool { return l[i].Line < l[j].Line })
}

// didYouMean returns "; did you mean "x"?" for the closest candidate, or ""
// if none is close.
func didYouMean(word string, candidates []string) string {
	if s := suggest.Closest(word, candidates); s != "" {
		return "; did you mean " + strconv.Quote(s) + "?"
	}
	return ""
}

// quoteList renders names as "a", "b" or "c".
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	switch len(q) {
	case 0:
		return ""
	case 1:
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}
