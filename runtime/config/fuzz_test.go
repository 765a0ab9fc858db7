package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that it returns either a
// project or an ErrorList of positioned errors, and that the key scanner
// finds every key of every document the TOML decoder accepts.
func FuzzParse(f *testing.F) {
	f.Add([]byte(clusterSrc))
	f.Add([]byte("[commands.a]\nrun = { shell = \"x\" }\nroot = { image = \"i\" }\nports = [\"1:1\"]\n"))
	f.Add([]byte("commands.a.run = [\"a\",\n 1]\n[[commands.b]]\n'x.y' = \"\"\"\n]\"\"\"\n"))
	f.Add([]byte("a = { b = [ { c = '}' } ], d.e = 1979-05-27 07:32:00 }\n"))
	f.Add([]byte("[commands.c]\nsupervise = true\nstop_timeout = \"3s\"\n[commands.c.children.b]\nrun = [\"a\"]\nbridge = true\ninit = false\n"))
	f.Add([]byte("[commands.c]\nsupervise = true\n[commands.c.children.n1]\nrun = [\"a\"]\nip = \"172.18.0.1\"\n[commands.c.children.n2]\nrun = [\"a\"]\nip = \"172.18.0.1\"\n"))
	if seeds, _ := filepath.Glob("testdata/*.toml"); len(seeds) > 0 {
		for _, s := range seeds {
			if b, err := os.ReadFile(s); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("pontoon.toml", data)
		if err == nil {
			if p == nil || len(p.Commands) == 0 {
				t.Fatalf("no error and no commands")
			}
			for _, c := range p.Commands {
				checkCommand(t, c)
			}
		} else {
			if p != nil {
				t.Fatalf("a project and an error")
			}
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error is not a non-empty ErrorList: %v", err)
			}
			nlines := strings.Count(string(data), "\n") + 1
			for i, e := range list {
				if e.Line < 1 || e.Line > nlines || e.File != "pontoon.toml" || e.Msg == "" {
					t.Fatalf("bad error %+v (file has %d lines)", e, nlines)
				}
				if i > 0 && list[i-1].Line > e.Line {
					t.Fatalf("errors not sorted")
				}
			}
		}
		checkKeyLines(t, string(data))
	})
}

// checkCommand asserts the invariants a valid Command promises.
func checkCommand(t *testing.T, c Command) {
	t.Helper()
	if c.Supervise {
		if len(c.Children) == 0 || c.Run.Argv != nil || c.Run.Shell != "" || c.Guest != nil || (c.Exit != ExitAny && c.Exit != ExitAll) {
			t.Fatalf("bad supervise command %+v", c)
		}
	} else if (len(c.Run.Argv) == 0) == (c.Run.Shell == "") || len(c.Children) != 0 || (c.Network == NetworkGuest) != (c.Guest != nil) {
		t.Fatalf("bad plain command %+v", c)
	}
	for _, ch := range c.Children {
		if ch.Bridge == (ch.Guest != nil) || (len(ch.Run.Argv) == 0) == (ch.Run.Shell == "") {
			t.Fatalf("bad child %+v", ch)
		}
		if ch.Guest != nil && !ch.Guest.IP.IsValid() {
			t.Fatalf("guest child without address %+v", ch)
		}
	}
	if c.StopTimeout <= 0 || c.StopTimeout > MaxStopTimeout {
		t.Fatalf("stop timeout %v out of bounds", c.StopTimeout)
	}
	if c.Root.Kind == RootImage && c.Runtime != RuntimeContainerd {
		t.Fatalf("image root with %s", c.Runtime)
	}
}
