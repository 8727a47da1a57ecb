// Package dsnparams holds the RFC 3461 delivery status notification
// parameters of one mail transaction as its client gave them, through
// SMTP (reception) or the injection API (admin), on their way to intake,
// which stores them in the queue's compact form (queue.Ret, queue.Notify).
//
// Invariant: values here have been checked by whoever received them
// (syntax, lengths, no control characters) and are in one case: the
// RET and NOTIFY keywords upper-case, ORCPT's address type lower-case.
// Both front doors fill the same types, so the spool cannot tell which
// one a message came through.
package dsnparams

// Mail is what MAIL FROM says about notifications (RFC 3461 §4.3, §4.4):
// Ret "FULL", "HDRS" or "" (not given), EnvID decoded from xtext.
type Mail struct {
	Ret   string
	EnvID string
}

// Rcpt is what one RCPT TO says about notifications (RFC 3461 §4.1,
// §4.2): the NOTIFY keywords as given ("NEVER", or some of "SUCCESS",
// "FAILURE", "DELAY"; none: not given) and ORCPT as "type;address",
// decoded ("rfc822;Bob@example.com").
type Rcpt struct {
	Notify []string
	ORCPT  string
}
