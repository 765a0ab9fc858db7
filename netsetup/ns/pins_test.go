package ns

import "testing"

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{
		`/run/netns/a`:          "/run/netns/a",
		`/tmp/with\040space`:    "/tmp/with space",
		`/tmp/tab\011and\134bs`: "/tmp/tab\tand\\bs",
		`/tmp/short\04`:         `/tmp/short\04`,
	} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMountsFindsRoot(t *testing.T) {
	ms, err := Mounts()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Point == "/" {
			return
		}
	}
	t.Errorf("no mount on / among %d mounts", len(ms))
}
