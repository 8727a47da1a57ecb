package delivery

import (
	"testing"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/queue"
)

// TestMailFromVERP: with feedback.verp the MAIL FROM is
// bounce+<queue id>@<first feedback domain>; without it, or for the null
// sender, the envelope sender is sent unchanged.
func TestMailFromVERP(t *testing.T) {
	on := &config.Config{Feedback: config.Feedback{Domains: []string{"FB.example.com", "fbl.example.com"}, VERP: true}}
	off := &config.Config{Feedback: config.Feedback{Domains: []string{"fb.example.com"}}}
	tests := []struct {
		name string
		cfg  *config.Config
		from string
		want string
	}{
		{"verp", on, "news@example.com", "bounce+1j1j98svv1ok2h2g@fb.example.com"},
		{"null sender stays null", on, "", ""},
		{"verp off", off, "news@example.com", "news@example.com"},
		{"no policy", nil, "news@example.com", "news@example.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			att := &attempt{env: queue.Envelope{ID: "1j1j98svv1ok2h2g", From: tc.from}}
			if tc.cfg != nil {
				att.policy = &Policy{Config: tc.cfg}
			}
			if got := mailFrom(&job{att: att}); got != tc.want {
				t.Errorf("mailFrom = %q, want %q", got, tc.want)
			}
		})
	}
}
