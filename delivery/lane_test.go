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

// TestFailureOf: the DSN entry rebuilt from the reply the spool kept for
// a recipient whose DSN is still to be queued.
func TestFailureOf(t *testing.T) {
	tests := []struct {
		reply, status string
		expired       bool
	}{
		{"550 5.1.1 unknown user", "5.1.1", false},
		{"554 no enhanced code", "5.0.0", false},
		{"421 4.7.28 rate limited", "4.4.7", true}, // a temporary last reply: it expired
		{"451 temporary", "4.4.7", true},
		{"553 5.6.7 SMTPUTF8 is required", "5.6.7", false},
		{"", "5.0.0", false},
		{"garbled", "5.0.0", false},
	}
	for _, tt := range tests {
		f := failureOf(queue.Recipient{Addr: "a@b.test", LastReply: tt.reply})
		if f.status != tt.status || f.expired != tt.expired || f.diagnostic != tt.reply || f.rcpt != "a@b.test" {
			t.Errorf("failureOf(%q) = %+v, want status %s expired %v", tt.reply, f, tt.status, tt.expired)
		}
	}
}
