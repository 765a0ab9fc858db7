package suggest

import "testing"

func TestSuggest(t *testing.T) {
	allowed := []string{"description", "run", "env", "workdir", "ports", "ip"}
	for word, want := range map[string]string{
		"descripton": "description", "Run": "run", "rn": "run", "port": "ports", "wrkdir": "workdir",
		"envv": "env", "ipp": "ip", "zzz": "", "x": "", "workingdirectory": "", "wokrdir": "workdir", "rnu": "run",
	} {
		if got := Closest(word, allowed); got != want {
			t.Errorf("Closest(%q) = %q, want %q", word, got, want)
		}
	}
}
