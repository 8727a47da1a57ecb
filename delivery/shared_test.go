package delivery

import "testing"

// TestSharedBatch: a shared decision takes 10 ms of the slowest bucket's
// tokens, one at least and 32 at most, so slow rates stay exact.
func TestSharedBatch(t *testing.T) {
	for _, tc := range []struct {
		rates []SharedRate
		want  int
	}{
		{[]SharedRate{{PerSecond: 10}}, 1},
		{[]SharedRate{{PerSecond: 199}}, 1},
		{[]SharedRate{{PerSecond: 1000}}, 10},
		{[]SharedRate{{PerSecond: 100000}}, 32},
		{[]SharedRate{{PerSecond: 100000}, {PerSecond: 500}}, 5}, // the provider's is slower
	} {
		if got := sharedBatch(tc.rates); got != tc.want {
			t.Errorf("sharedBatch(%v) = %d, want %d", tc.rates, got, tc.want)
		}
	}
}
