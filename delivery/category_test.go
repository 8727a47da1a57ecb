package delivery

import (
	"testing"

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
