package userns

import "testing"

// TestMappedUID: the uid a space's root stands for is read from the uid map, not taken for
// 0; the initial namespace's identity map stands for nobody else.
func TestMappedUID(t *testing.T) {
	for _, c := range []struct {
		uidMap string
		uid    int
		want   int
		wantOK bool
	}{
		{"         0        999          1\n", 0, 999, true},
		{"0 1000 1\n1 100000 65536\n", 5, 100004, true},
		{"0 1000 1\n", 5, 0, false},
		{"         0          0 4294967295\n", 0, 0, false},
		{"", 0, 0, false},
	} {
		if got, ok := mappedUID(c.uidMap, c.uid); got != c.want || ok != c.wantOK {
			t.Errorf("mappedUID(%q, %d) = %d, %v; want %d, %v", c.uidMap, c.uid, got, ok, c.want, c.wantOK)
		}
	}
}
