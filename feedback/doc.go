// Package feedback is the intake of the reports that come back after
// mail has left: complaints in the Abuse Reporting Format (RFC 5965, as
// Yahoo, Microsoft JMRP and Comcast send them), delivery status
// notifications (RFC 3464) and the common non-standard bounces (plain
// text quoting the original headers).
//
// A listener of mode "feedback" hands each message it receives to a
// Handler, which parses it (Parse), matches it to the message it is about
// (the VERP return path bounce+<queue id>@domain first, then the returned
// message's Message-ID in an Index of recent messages) and emits one
// complaint or bounce event per recipient through the server's event
// path, and a suppression for the recipients that must not be mailed
// again.
//
// Invariant: no report is dropped silently. A report is answered 250 only
// once it has been handled (events emitted) or, when it matches nothing
// or does not parse, logged, counted (cuemta_feedback_reports_total) and
// written under spool.dir/feedback/unmatched; when that write fails, the
// sender gets 451 and retries. Unmatched reports emit no event and
// suppress nobody: a report about mail this server did not send (or a
// forged one) must not change what it sends.
package feedback
