package partition

import "testing"

// TestCarryRestore: what a change made while a --for is pending leaves that --for to restore.
func TestCarryRestore(t *testing.T) {
	iso := Partition{Kind: "isolate", Description: "isolate n1", Blocked: []Pair{{"n1", "n2"}, {"n2", "n1"}}}
	halves := Partition{Kind: "block", Description: "block n2 -> n1", Blocked: []Pair{{"n2", "n1"}}}
	loss := func(g string, pct float64) Impairment { return Impairment{Guest: g, Loss: pct} }
	none := State{}
	tests := []struct {
		name                   string
		restore, before, after State
		want                   State
		keep                   bool
	}{
		{"an impairment after a timed partition: the partition ends, the impairment stays",
			none, State{Partition: iso}, State{Partition: iso, Impairments: []Impairment{loss("n2", 5)}},
			State{Impairments: []Impairment{loss("n2", 5)}}, true},
		{"a partition after a timed impairment: the impairment ends, the partition stays",
			none, State{Impairments: []Impairment{loss("n1", 10)}}, State{Partition: halves, Impairments: []Impairment{loss("n1", 10)}},
			State{Partition: halves}, true},
		{"another partition after a timed partition: nothing of the --for's is left",
			none, State{Partition: iso}, State{Partition: halves},
			State{Partition: halves}, false},
		{"heal after anything: nothing is left",
			State{Impairments: []Impairment{loss("n3", 1)}}, State{Partition: iso, Impairments: []Impairment{loss("n3", 1), loss("n1", 10)}}, none,
			none, false},
		{"a timed impairment of one guest, then another guest's: only the first ends",
			State{Impairments: []Impairment{loss("n1", 1)}}, State{Impairments: []Impairment{loss("n1", 20)}}, State{Impairments: []Impairment{loss("n1", 20), loss("n2", 5)}},
			State{Impairments: []Impairment{loss("n1", 1), loss("n2", 5)}}, true},
	}
	for _, tt := range tests {
		got, keep := carryRestore(tt.restore, tt.before, tt.after)
		if keep != tt.keep || !sameState(got, tt.want) {
			t.Errorf("%s: %+v, keep %v; want %+v, keep %v", tt.name, got, keep, tt.want, tt.keep)
		}
	}
}
