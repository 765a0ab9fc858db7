package userns

import (
	"slices"
	"testing"
)

func TestRootEnviron(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want []string
	}{
		{[]string{"A=1", "PATH=/usr/bin:/bin"}, []string{"A=1", "PATH=/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"}},
		{[]string{"PATH=/sbin:/usr/bin:/usr/sbin:/usr/local/sbin"}, []string{"PATH=/sbin:/usr/bin:/usr/sbin:/usr/local/sbin"}},
		{[]string{"A=1"}, []string{"A=1", "PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"}},
	} {
		in := slices.Clone(c.in)
		if got := RootEnviron(c.in); !slices.Equal(got, c.want) {
			t.Errorf("RootEnviron(%q) = %q, want %q", c.in, got, c.want)
		}
		if !slices.Equal(in, c.in) {
			t.Errorf("RootEnviron changed its argument: %q", c.in)
		}
	}
}
