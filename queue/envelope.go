package queue

import "time"

// Envelope is everything the spool knows about a message except its body.
// Times come back from the spool in UTC with nanosecond precision.
type Envelope struct {
	ID         string // unique, URL-safe; Enqueue assigns one when empty
	From       string // envelope sender; "" is the null sender <>
	Recipients []Recipient
	Received   time.Time // Enqueue sets Now() when zero

	Listener, ClientIP, User, Tenant, Campaign, Pool, Route, DKIM string

	Priority    int
	Size        int64 // body length in bytes; Enqueue sets it
	Attempts    int   // delivery attempts so far; RecordAttempt counts them
	NextAttempt time.Time
	// Generation is the configuration generation the message was accepted
	// under; the spool stores it and never changes it.
	Generation uint64
	// SMTPUTF8 is set when the message came with MAIL FROM ... SMTPUTF8
	// (RFC 6531 §3.4) or was injected with a non-ASCII address: its
	// envelope or header may hold UTF-8, so delivery asks for SMTPUTF8
	// and refuses a hop that lacks it when anything needs it.
	SMTPUTF8 bool
	// EightBitMIME is set when the body as stored holds 8-bit data that
	// the client declared (BODY=8BITMIME, RFC 6152 §2) or an injection
	// carried: delivery declares it to a hop that offers 8BITMIME and
	// converts the body to 7-bit for one that does not.
	EightBitMIME bool
}

// Recipient is one envelope recipient and its delivery state.
type Recipient struct {
	Addr      string
	Status    RcptStatus
	LastReply string // last SMTP reply or error text for this recipient
}

// RcptStatus is a recipient's delivery state.
type RcptStatus uint8

// Recipient states.
const (
	RcptPending RcptStatus = iota
	RcptDelivered
	RcptFailed // permanently, and the bounce (if any) is queued
	// RcptBouncing failed permanently, but the bounce for it could not be
	// queued yet (the spool refused the DSN): the message stays queued so
	// that the next attempt sends the DSN instead of losing it.
	RcptBouncing
)

func (s RcptStatus) String() string {
	switch s {
	case RcptPending:
		return "pending"
	case RcptDelivered:
		return "delivered"
	case RcptFailed:
		return "failed"
	case RcptBouncing:
		return "bouncing"
	}
	return "unknown"
}

// RecipientResult is the outcome of one delivery attempt for one recipient.
type RecipientResult struct {
	Addr   string
	Status RcptStatus
	Reply  string
}

// Outcome is why a message left the spool.
type Outcome uint8

// Outcomes passed to Complete.
const (
	OutcomeDelivered Outcome = iota + 1
	OutcomeBounced
	OutcomeExpired
	OutcomeDeleted
)

func (o Outcome) String() string {
	switch o {
	case OutcomeDelivered:
		return "delivered"
	case OutcomeBounced:
		return "bounced"
	case OutcomeExpired:
		return "expired"
	case OutcomeDeleted:
		return "deleted"
	}
	return "unknown"
}

// clone returns a deep copy, so the caller's slice is never shared.
func (e *Envelope) clone() Envelope {
	c := *e
	c.Recipients = append([]Recipient(nil), e.Recipients...)
	return c
}
