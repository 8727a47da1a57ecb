package config

import "testing"

// TestRejectEnhancedDefault: a reject without an enhanced code gets one of
// its code's class, so that the reply goes out with it.
func TestRejectEnhancedDefault(t *testing.T) {
	cfg := loadString(t, `listeners: mx: addr: "127.0.0.1:2525"
rules: message: [
	{name: "temp", when: "size > 10", reject: code: 451},
	{name: "perm", when: "size > 20", reject: code: 554},
	{name: "own", when: "size > 30", reject: {code: 550, enhanced: "5.1.1"}},
]
`)
	for i, want := range []string{"4.7.1", "5.7.1", "5.1.1"} {
		if got := cfg.Rules.Message[i].Reject.Enhanced; got != want {
			t.Errorf("rule %d: enhanced %q, want %q", i, got, want)
		}
	}
}

func TestClassConflict(t *testing.T) {
	tests := []struct {
		code     int
		enhanced string
		conflict bool
	}{
		{550, "5.7.1", false},
		{421, "4.7.28", false},
		{250, "2.0.0", false},
		{550, "4.7.1", true},
		{421, "5.7.1", true},
		{250, "5.1.1", true},
		{354, "2.0.0", true},
		{421, "", false},    // none given
		{421, "5.7", false}, // not an enhanced code: the schema's to say
	}
	for _, tt := range tests {
		if got := ClassConflict(tt.code, tt.enhanced) != ""; got != tt.conflict {
			t.Errorf("ClassConflict(%d, %q): conflict %v, want %v", tt.code, tt.enhanced, got, tt.conflict)
		}
	}
	if got := ClassFix(550, "4.7.1"); got != "5.7.1" {
		t.Errorf("ClassFix = %q", got)
	}
}
