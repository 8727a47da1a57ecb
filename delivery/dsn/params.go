package dsn

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cuemta/cuemta/smtpreply"
)

// Actions a recipient's report may carry (RFC 3464 §2.3.3).
const (
	ActionFailed    = "failed"
	ActionDelayed   = "delayed"
	ActionDelivered = "delivered"
	ActionRelayed   = "relayed"
	ActionExpanded  = "expanded"
)

// Params describe one notification.
type Params struct {
	// ReportingMTA is this MTA's host name (Reporting-MTA: dns; name).
	ReportingMTA string
	// From is the notification's author, e.g. "MAILER-DAEMON@host".
	From string
	// To is the original message's envelope sender.
	To string
	// MessageID is the notification's own Message-ID (with or without
	// angle brackets). The MIME boundary is derived from it, so the same
	// Params give the same bytes. Empty: msgheader.MessageID makes one,
	// <random@ReportingMTA>.
	MessageID string
	// EnvelopeID is the original ENVID, if any (RFC 3461 §4.4).
	EnvelopeID string
	// Arrival is when the original message was received.
	Arrival time.Time
	// Now is the notification's Date.
	Now time.Time
	// Recipients are the recipients being reported on; at least one.
	Recipients []Recipient
	// OriginalHeaders are the original message's header section (a whole
	// message may be given: only the headers are returned), unless Full.
	OriginalHeaders []byte
	// Full returns OriginalHeaders whole, as a message/rfc822 part (RFC
	// 3461 §4.3 RET=FULL, RFC 3464 §2), instead of its header section.
	Full bool
	// Reason is human text placed above the per-recipient details.
	// Empty: a standard explanation.
	Reason string
}

// Recipient is the report on one recipient (RFC 3464 §2.3).
type Recipient struct {
	Addr string // Final-Recipient
	// OriginalAddr is the ORCPT address, if any (RFC 3461 §4.2).
	OriginalAddr string
	Action       string // ActionFailed, ActionDelayed, ...
	Status       string // RFC 3463 code, e.g. "5.1.1"
	// RemoteMTA is the host that gave the diagnostic, if any.
	RemoteMTA string
	// Diagnostic is the remote reply, "smtp; 550 5.1.1 ..." (a missing
	// "smtp; " type is added).
	Diagnostic string
	// LastAttempt is the time of the last delivery attempt, if known.
	LastAttempt time.Time
	// WillRetryUntil is when a delayed message will be given up, if known.
	WillRetryUntil time.Time
	// Category is cuemta's bounce category of the failure (package
	// category), written as X-Cuemta-Category; "" writes none.
	Category string
}

func (p *Params) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, f := range [][2]string{
		{"ReportingMTA", p.ReportingMTA}, {"From", p.From}, {"To", p.To},
		{"MessageID", p.MessageID}, {"EnvelopeID", p.EnvelopeID},
	} {
		if strings.ContainsAny(f[1], "\r\n") {
			bad("%s contains a line break", f[0])
		}
	}
	if p.ReportingMTA == "" {
		bad("ReportingMTA is empty")
	}
	if p.From == "" {
		bad("From is empty")
	}
	if NeverBounce(p.To) {
		bad("no notification may go to %q (RFC 5321 §4.5.5)", p.To)
	}
	if p.Now.IsZero() {
		bad("Now is zero")
	}
	if len(p.Recipients) == 0 {
		bad("no recipients")
	}
	for i, r := range p.Recipients {
		switch r.Action {
		case ActionFailed, ActionDelayed, ActionDelivered, ActionRelayed, ActionExpanded:
		default:
			bad("recipient %d: unknown action %q", i, r.Action)
		}
		if !smtpreply.ValidEnhanced(r.Status) {
			bad("recipient %d: status %q is not an RFC 3463 code", i, r.Status)
		}
		if r.Addr == "" {
			bad("recipient %d: empty address", i)
		}
		for _, v := range []string{r.Addr, r.OriginalAddr, r.RemoteMTA, r.Category} {
			if strings.ContainsAny(v, "\r\n") {
				bad("recipient %d: line break in %q", i, v)
			} else if strings.ContainsFunc(v, isControl) {
				// RFC 3464 §2.1: the fields are header-like text.
				bad("recipient %d: control character in %q", i, v)
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("dsn: %w", errors.Join(errs...))
	}
	return nil
}

// NeverBounce reports whether no DSN may be sent to sender: the null
// reverse-path (RFC 5321 §4.5.5, RFC 3464 §2) and, by common practice
// (Postfix, Exim), MAILER-DAEMON, which is how bounces sign themselves.
func NeverBounce(sender string) bool {
	s := strings.TrimSpace(sender)
	s = strings.TrimSuffix(strings.TrimPrefix(s, "<"), ">")
	if s == "" {
		return true
	}
	local := s
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		local = s[:i]
	}
	return strings.EqualFold(strings.Trim(local, `"`), "mailer-daemon")
}

// isControl reports an ASCII control character (tab aside) or DEL.
func isControl(r rune) bool { return (r < 0x20 && r != '\t') || r == 0x7f }
