package delivery

import (
	"testing"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/queue"
)

// LastCategory derives `cuemta queue show`'s category from what the spool
// keeps of a recipient.
func TestLastCategory(t *testing.T) {
	tests := []struct {
		name string
		r    queue.Recipient
		want string
	}{
		{"never tried", queue.Recipient{Status: queue.RcptPending}, ""},
		{"delivered", queue.Recipient{Status: queue.RcptDelivered, LastReply: "250 2.0.0 ok"}, ""},
		{"deferred by a rate limit", queue.Recipient{Status: queue.RcptPending, LastReply: "421 4.7.28 unusual rate"}, "rate-limited"},
		{"deferred, no server answered", queue.Recipient{Status: queue.RcptPending, LastReply: "451 4.4.1 dial tcp: connection refused"}, "no-answer"},
		{"deferred by a rule's throttle", queue.Recipient{Status: queue.RcptPending, LastReply: "451 4.7.0 suspended"}, "policy"},
		{"bounced, user unknown", queue.Recipient{Status: queue.RcptFailed, LastReply: "550 5.1.1 no such user"}, "bad-mailbox"},
		{"failed on a temporary reply: expired", queue.Recipient{Status: queue.RcptFailed, LastReply: "451 4.7.1 try later"}, "expired"},
		{"DSN still to queue", queue.Recipient{Status: queue.RcptBouncing, LastReply: "552 5.2.2 mailbox full"}, "quota"},
		{"unparsable", queue.Recipient{Status: queue.RcptFailed, LastReply: "garbage"}, "other"},
		{"unparsable, pending", queue.Recipient{Status: queue.RcptPending, LastReply: "garbage"}, "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := LastCategory(tt.r); got != tt.want {
				t.Errorf("LastCategory(%+v) = %q, want %q", tt.r, got, tt.want)
			}
		})
	}
}

// Mail a suspension holds back is categorised by the suspension, not by
// the 451 4.7.0 recorded for it.
func TestHeldCategory(t *testing.T) {
	cfg := &config.Config{
		Rules: config.Rules{Response: []*config.ResponseRule{{Name: "global-block", Category: "reputation"}}},
		Profiles: map[string]*config.Profile{"google": {Rules: []*config.ResponseRule{
			{Name: "google-unusual-rate", Category: "rate-limited"},
			{Name: "google-no-category"},
		}}},
	}
	tests := []struct {
		name string
		s    suspension
		want string
	}{
		{"throttle back-off", suspension{Origin: originBackoff, Reason: "throttled: 421 4.7.0 slow down"}, "rate-limited"},
		{"connection failures", suspension{Origin: originConnectFailures, Reason: "site unreachable (5 consecutive connection failures)"}, "no-answer"},
		{"operator", suspension{Origin: originAdmin, Reason: "maintenance"}, "other"},
		{"global rule's category", suspension{Origin: "global-block", Reason: "550 5.7.1 blocked (rule global-block)"}, "reputation"},
		{"profile rule's category", suspension{Origin: "google-unusual-rate", Reason: "421 4.7.28 unusual rate (rule google-unusual-rate)"}, "rate-limited"},
		{"rule without one: the reply's", suspension{Origin: "google-no-category", Reason: "421 4.7.26 unauthenticated (rule google-no-category)"}, "authentication"},
		{"rule gone after a reload: the reply's", suspension{Origin: "removed", Reason: "452 4.2.2 full (rule removed)"}, "quota"},
		{"rule gone, reason unparsable", suspension{Origin: "removed", Reason: "whatever"}, "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := heldCategory(cfg, tt.s); got != tt.want {
				t.Errorf("heldCategory(%+v) = %q, want %q", tt.s, got, tt.want)
			}
		})
	}
}
