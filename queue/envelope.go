package queue

import (
	"strings"
	"time"
)

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
	// EnvID is MAIL FROM's ENVID (RFC 3461 §4.4), xtext-decoded: echoed
	// in every DSN as Original-Envelope-Id and passed to a next hop that
	// offers DSN.
	EnvID string
	// Ret is MAIL FROM's RET (RFC 3461 §4.3): what of the message a
	// failure DSN returns. RetUnset returns the headers.
	Ret Ret
}

// Ret is the RET parameter of MAIL FROM (RFC 3461 §4.3).
type Ret uint8

// RET values.
const (
	RetUnset Ret = iota
	RetFull      // RET=FULL: the whole message comes back
	RetHdrs      // RET=HDRS: only its header section
)

func (r Ret) String() string {
	switch r {
	case RetFull:
		return "FULL"
	case RetHdrs:
		return "HDRS"
	}
	return ""
}

// Notify is a recipient's NOTIFY parameter (RFC 3461 §4.1) as a set of
// bits; zero means the client gave none, which this MTA reads as
// FAILURE,DELAY (the RFC leaves the default to the MTA).
type Notify uint8

// NOTIFY values. NotifyNever is never combined with the others.
const (
	NotifyNever Notify = 1 << iota
	NotifySuccess
	NotifyFailure
	NotifyDelay

	notifyKnown = NotifyNever | NotifySuccess | NotifyFailure | NotifyDelay
)

// Wants reports whether a DSN of the given kind (NotifySuccess,
// NotifyFailure or NotifyDelay) is asked for.
func (n Notify) Wants(kind Notify) bool {
	if n == 0 {
		return kind == NotifyFailure || kind == NotifyDelay
	}
	return n&NotifyNever == 0 && n&kind != 0
}

// String is the parameter's value as sent on RCPT TO ("" when unset).
func (n Notify) String() string {
	if n&NotifyNever != 0 {
		return "NEVER"
	}
	var parts []string
	for _, v := range [...]struct {
		bit  Notify
		name string
	}{{NotifySuccess, "SUCCESS"}, {NotifyFailure, "FAILURE"}, {NotifyDelay, "DELAY"}} {
		if n&v.bit != 0 {
			parts = append(parts, v.name)
		}
	}
	return strings.Join(parts, ",")
}

// Recipient is one envelope recipient and its delivery state.
type Recipient struct {
	Addr      string
	Status    RcptStatus
	LastReply string // last SMTP reply or error text for this recipient
	// Notify is RCPT TO's NOTIFY (RFC 3461 §4.1).
	Notify Notify
	// ORCPT is RCPT TO's ORCPT (RFC 3461 §4.2), decoded, with its
	// address type: "rfc822;Bob@example.com" or "utf-8;...". Empty: none.
	ORCPT string
	// DelayNotified is set once the sender has been sent a "delayed" DSN
	// for this recipient, so that it is sent only once.
	DelayNotified bool
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
	// DelayNotified records that a "delayed" DSN went out for the
	// recipient in this attempt (it stays set once set).
	DelayNotified bool
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
