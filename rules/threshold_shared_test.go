package rules

import (
	"testing"
	"time"
)

// TestTrackerShared: a shared count decides when it answers (capped at
// the rule's count, never below the local one); the local count decides
// when it cannot.
func TestTrackerShared(t *testing.T) {
	for _, tc := range []struct {
		name    string
		shared  int
		ok      bool
		seen    int
		reached bool
	}{
		{"others saw two", 3, true, 3, true},
		{"beyond the count", 9, true, 3, true},
		{"Redis lost the window", 0, true, 1, false},
		{"unavailable", 0, false, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewTracker(WithShared(func(rule, site string, count int, within time.Duration) (int, bool) {
				if rule != "r" || site != "s" || count != 3 || within != time.Minute {
					t.Errorf("shared counter asked %q %q %d %v", rule, site, count, within)
				}
				return tc.shared, tc.ok
			}))
			seen, reached := tr.Record("r", "s", 3, time.Minute)
			if seen != tc.seen || reached != tc.reached {
				t.Errorf("Record = %d, %v; want %d, %v", seen, reached, tc.seen, tc.reached)
			}
		})
	}
}
