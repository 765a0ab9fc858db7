package testkit

import "testing"

func TestStableRuleset(t *testing.T) {
	set := "\tset asked {\n\t\ttype ipv4_addr\n\t\tsize 256\n\t\tflags dynamic,timeout\n\t\ttimeout 3s\n"
	for _, elems := range []string{
		"\t\telements = { 172.18.0.5, 172.18.0.6 }\n",
		"\t\telements = { 172.18.0.5 expires 2s996ms,\n\t\t\t     172.18.0.6 expires 1s }\n",
		"",
	} {
		if got, want := StableRuleset(set+elems+"\t}\n"), set+"\t}\n"; got != want {
			t.Errorf("got\n%s\nwant\n%s", got, want)
		}
	}
	static := "\tset guests {\n\t\ttype ipv4_addr\n\t\tsize 253\n\t\telements = { 172.18.0.1 }\n\t}\n"
	if got := StableRuleset(static); got != static {
		t.Errorf("a static set's elements were dropped:\n%s", got)
	}
}
