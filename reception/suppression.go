package reception

// Suppressor is the suppression list as RCPT sees it. At RCPT the tenant
// is not known yet (the message rules name it after DATA), so only the
// entries for every tenant apply here; package intake applies a tenant's
// own entries once the rules have run.
type Suppressor interface {
	// SuppressedAtRcpt reports whether rcpt (domain normalised) is on the
	// list for every tenant. It records the refusal (the delivery log's
	// suppression event) itself, with what the rest of the arguments say
	// of the transaction. It is called once per RCPT: keep it cheap.
	SuppressedAtRcpt(rcpt string, t RcptContext) bool
}

// RcptContext describes the transaction a recipient was offered in.
type RcptContext struct {
	From, Listener, ClientIP, User string
}

// errSuppressed answers a recipient on the suppression list. RFC 3463
// §3.8: X.7.1 delivery not authorized, message refused; permanent, so the
// sender's own bounce handling records it.
var errSuppressed = newReply(550, "5.7.1", "Recipient suppressed")
