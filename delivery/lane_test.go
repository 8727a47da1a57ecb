package delivery

import (
	"strings"
	"testing"

	_ "github.com/cuemta/cuemta/internal/golden"
	"github.com/cuemta/cuemta/queue"
)

func TestEnqueueByPriority(t *testing.T) {
	tests := []struct {
		name string
		in   []int // priorities in arrival order
		want string
	}{
		{"fifo within a priority", []int{5, 5, 5}, "a5 b5 c5"},
		{"urgent overtakes bulk", []int{2, 2, 9, 2}, "c9 a2 b2 d2"},
		{"stays behind equal urgent", []int{9, 5, 9, 0, 5}, "a9 c9 b5 e5 d0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &lane{}
			for i, p := range tt.in {
				id := string(rune('a'+i)) + string(rune('0'+p))
				l.enqueueLocked(&job{att: &attempt{env: queue.Envelope{ID: id, Priority: p}}})
			}
			var got []string
			for _, j := range l.queue {
				got = append(got, j.att.env.ID)
			}
			if g := strings.Join(got, " "); g != tt.want {
				t.Errorf("queue = %s, want %s", g, tt.want)
			}
		})
	}
}

func TestStatusOf(t *testing.T) {
	tests := []struct{ reply, want string }{
		{"550 5.1.1 unknown user", "5.1.1"},
		{"421 4.7.28 rate limited", "4.7.28"},
		{"554 no enhanced code", "5.0.0"},
		{"451 temporary", "4.0.0"},
		{"", "5.0.0"},
	}
	for _, tt := range tests {
		if got := statusOf(tt.reply, "5.0.0"); got != tt.want {
			t.Errorf("statusOf(%q) = %q, want %q", tt.reply, got, tt.want)
		}
	}
}
