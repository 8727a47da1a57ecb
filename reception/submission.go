package reception

import (
	"context"
	"net/netip"
	"time"

	"github.com/cuemta/cuemta/dnsbl"
	"github.com/cuemta/cuemta/internal/dsnparams"
)

// Submission is one message as received, handed to the Sink after DATA or
// the last BDAT chunk.
type Submission struct {
	From       string // envelope sender; "" is the null sender <>
	Recipients []string
	// Body is the whole message with CRLF line endings, starting with the
	// Received header this server added (and Message-ID/Date when a
	// submission listener added them).
	Body     []byte
	Listener string // listener name
	ClientIP string
	Helo     string // the client's latest HELO/EHLO argument
	User     string // authenticated user, "" if none
	TLS      bool   // the message arrived over STARTTLS
	Received time.Time

	// TraceID identifies this transaction in the Received header ("id")
	// and in this package's log lines; the queue ID does not exist yet when
	// the header is written.
	TraceID string
	// SMTPUTF8 is set when MAIL FROM carried SMTPUTF8 (RFC 6531): the
	// envelope or header may hold UTF-8 and must only be relayed to servers
	// that offer SMTPUTF8.
	SMTPUTF8 bool
	// EightBitMIME is set when MAIL FROM carried BODY=8BITMIME (RFC 6152).
	EightBitMIME bool
	// DSN holds MAIL FROM's RET and ENVID, RcptDSN each recipient's NOTIFY
	// and ORCPT (RFC 3461), in the order of Recipients.
	DSN     dsnparams.Mail
	RcptDSN []dsnparams.Rcpt
	// FromNetwork is set when the client is in relay.networks: mail from
	// our own hosts, which inbound verification leaves alone.
	FromNetwork bool
	// Tags are what the stage rules added to the connection and the
	// transaction, in order.
	Tags []string
}

// Sink stores a message durably and returns its queue ID. It runs message
// policy and may refuse: a *Reply anywhere in the returned error's chain is
// sent to the client as is; any other error becomes
// 451 4.3.0 "Requested action aborted: local storage error, try again later".
type Sink interface {
	Accept(ctx context.Context, s *Submission) (id string, err error)
}

// SpaceReporter may be implemented by a Sink that can tell before a
// message is sent that it could not store it: while LowSpace reports true,
// MAIL FROM is answered 452 4.3.1 "Insufficient system storage" (RFC 5321
// §4.2.2, RFC 3463 X.3.1 mail system full), as Postfix does when its queue
// file system is short of space, so clients do not upload a message only
// to have it refused. LowSpace is called once per MAIL command: keep it
// cheap.
type SpaceReporter interface {
	LowSpace() bool
}

// Policy is what a listener needs to know beyond its own config.Listener.
type Policy struct {
	// Hostname is this MTA's name: it is in the 220 greeting, the "by"
	// clause of the Received header and generated Message-IDs. Required.
	Hostname string
	// Relay decides which recipients are accepted; see RelayPolicy.
	Relay RelayPolicy
	// Now is the clock for the Received and Date headers and
	// Submission.Received; nil means time.Now.
	Now func() time.Time
	// Rates are the reception rate limits of this config (reception.limits).
	Rates Rates

	// State that outlives this Server, owned by the caller so that it
	// survives a reload (see Guard and ConnCounts). Nil: the Server makes
	// its own, which then lives and dies with it.
	//
	// Guard is shared by every listener: AUTH throttling, the bcrypt
	// slots and the rate-limit counts.
	Guard *Guard
	// Conns are the connection counts of this Server's listener.
	Conns *ConnCounts
	// Budget bounds the message bytes held in memory by every server that
	// shares it (config reception.maxBytesInFlight); beyond it a
	// transaction is answered 452 4.3.1. The engine passes one Budget to
	// all its servers, across reloads. nil: a budget of this server's own,
	// of DefaultMaxBytesInFlight.
	Budget *Budget
	// Suppressions refuses, at RCPT, recipients on the suppression list
	// for every tenant (550 5.7.1); nil: none.
	Suppressions Suppressor
	// Stages are the stage rules (rules.connect, helo, mail, rcpt):
	// *rules.Set; nil: none.
	Stages StagePolicy
	// DNSBL answers dnsbl(), rhsbl() and client_name in stage rules;
	// nil: nothing is listed and client_name is empty.
	DNSBL *dnsbl.Checker
	// Greylist decides the recipients a greylist rule names; nil: a
	// greylist rule accepts (and logs that it cannot greylist).
	Greylist Greylister
}

// RelayPolicy keeps the server from being an open relay. A recipient is
// accepted when any of these holds:
//   - the session is authenticated (AUTH after STARTTLS);
//   - the client's IP is in Networks, except on a submission listener with
//     auth enabled, where only authentication lets a client relay;
//   - the recipient's domain is in Domains (exact match, case-insensitive,
//     no subdomains): this MTA is that domain's MX or relay.
//
// Otherwise RCPT is answered 550 5.7.1 Relaying denied (530 5.7.0
// Authentication required on a submission listener with auth enabled).
// A domain in Recipients accepts only the local parts listed there: any
// other recipient of it is answered 550 5.1.1, whoever sends.
type RelayPolicy struct {
	Networks []netip.Prefix
	Domains  []string // ASCII (A-label) domain names
	// Recipients: for a domain of Domains that lists its recipients, the
	// accepted local parts (compared case-insensitively).
	Recipients map[string][]string
}
