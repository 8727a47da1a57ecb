package reception

import (
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cuemta/cuemta/internal/dsnparams"
	smtp "github.com/cuemta/cuemta/reception/internal/smtpd"
)

// session is one SMTP session from HELO/EHLO on; go-smtp makes a new one
// after STARTTLS. Its methods run on the connection's goroutine, except
// Data for BDAT, which go-smtp runs on its own goroutine while the
// connection goroutine feeds it chunks; Data therefore reads the session
// only before its first read of the message.
type session struct {
	srv  *Server
	conn *smtp.Conn
	tc   *trackedConn
	tls  bool
	log  *slog.Logger

	user string // authenticated user
	// txn is atomic because Reset may run on the connection goroutine
	// while a BDAT Data goroutine is starting.
	txn atomic.Pointer[transaction]
}

// transaction is the state from MAIL to the end of the message.
type transaction struct {
	id       string // trace ID: Received "id" and logs
	helo     string // go-smtp's copy may change under a BDAT Data goroutine
	from     string
	utf8     bool
	eightBit bool
	dsn      dsnparams.Mail
	rcptDSN  []dsnparams.Rcpt // beside rcpts
	rcpts    []string
	seen     map[string]bool // normalised recipients, to drop duplicates
	tags     []string        // added by the mail and rcpt rules
}

// newSession implements smtp.Backend.
func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	tc, err := connOf(c.Conn())
	if err != nil {
		return nil, err
	}
	if tc.draining.Load() {
		tc.hangup.Store(true)
		return nil, errShuttingDown
	}
	_, isTLS := c.TLSConnectionState()
	return &session{
		srv:  s,
		conn: c,
		tc:   tc,
		tls:  isTLS,
		log:  s.log.With("conn", tc.id, "client_ip", clientIP(tc)),
	}, nil
}

// Mail implements smtp.Session.
func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	switch {
	case s.tc.draining.Load():
		s.tc.hangup.Store(true) // RFC 5321 §3.8: 421, then close
		return errShuttingDown
	case s.txn.Load() != nil:
		return errNestedMail
	}
	// go-smtp has checked SIZE= against the maximum (RFC 1870 §6.2).
	if from != "" {
		if _, err := checkMailbox(from, opts.UTF8); err != nil {
			return addressReply(err, errBadSenderSyntax, errSenderNotAllowed)
		}
	}
	// RFC 5321 §4.2.2 452 with RFC 3463 X.3.1 (mail system full): the
	// client keeps the message and retries, as for a 452 after the data.
	if sr, ok := s.srv.sink.(SpaceReporter); ok && sr.LowSpace() {
		s.log.Info("sender refused: spool low on space", "from", from)
		return errSystemFull
	}
	// RFC 1870 §6.1: a declared SIZE lets the server refuse a message it
	// cannot take before it is sent; here, one that would not fit in the
	// memory budget now (nothing is reserved: a client holds only what it
	// has sent). RFC 5321 §4.2.2 452, RFC 3463 X.3.1 mail system full.
	if b := s.srv.budget; opts.Size > 0 && !b.fits(opts.Size) {
		b.refusedMail.Add(1)
		s.log.Info("sender refused: message bytes in flight over budget", "from", from,
			"size", opts.Size, "in_flight", b.InFlight(), "limit", b.Limit())
		return errBudgetFull
	}
	dsn, err := mailDSN(opts)
	if err != nil {
		return err
	}
	tags, err := s.mailRules(from)
	if err != nil {
		return err
	}
	// Counted last, so that a MAIL refused for another reason costs the
	// client nothing.
	if err := s.srv.guard.admitMessage(&s.srv.policy.Rates, s.tc.ip, s.user); err != nil {
		s.log.Info("sender refused: message rate limit", "from", from, "user", s.user, "reply", err.Message)
		return err
	}
	s.txn.Store(&transaction{
		id:       newID(10),
		helo:     s.conn.Hostname(),
		from:     from,
		utf8:     opts.UTF8,
		eightBit: opts.Body == smtp.Body8BitMIME,
		dsn:      dsn,
		seen:     make(map[string]bool),
		tags:     tags,
	})
	s.tc.busy.Store(true)
	return nil
}

// Rcpt implements smtp.Session. A refused recipient counts against
// maxRcptFailures; past it the reply is 421 and the connection closes.
func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	err := s.rcpt(to, opts)
	if err == nil || err == errSuppressed || err == errGreylisted {
		// A suppressed recipient is a known address the sender should
		// drop, not a guess: a bulk sender's session is not cut for it;
		// nor for a greylisted one, which it will retry.
		return err
	}
	if s.tc.rcptFailures.Add(1) > maxRcptFailures {
		s.log.Info("connection closed: too many refused recipients", "failures", s.tc.rcptFailures.Load())
		s.tc.hangup.Store(true)
		return errTooManyRcptFails
	}
	return err
}

func (s *session) rcpt(to string, opts *smtp.RcptOptions) error {
	txn := s.txn.Load()
	if txn == nil {
		return errNoTransaction // go-smtp checks this first
	}
	dsn, err := rcptDSN(opts)
	if err != nil {
		return err
	}
	var domain string
	postmaster := to == "postmaster"
	if postmaster {
		// RFC 5321 §4.5.1: "<Postmaster>" without a domain must be
		// accepted, whoever sends it. It is this MTA's own postmaster
		// (the config has no postmaster address): postmaster@Hostname. The
		// client cannot choose the domain, so it opens no relay.
		to = "postmaster@" + s.srv.policy.Hostname
		domain, _ = normalizeDomain(s.srv.policy.Hostname)
	} else {
		var err error
		if domain, err = checkMailbox(to, txn.utf8); err != nil {
			return addressReply(err, errBadRcptSyntax, errRcptNotAllowed)
		}
		if err := s.checkRecipient(to, domain); err != nil {
			s.log.Info("recipient refused", "trace", txn.id, "rcpt", to, "reply", err.Error())
			return err
		}
	}
	key := to[:strings.LastIndexByte(to, '@')+1] + domain
	if sup := s.srv.policy.Suppressions; sup != nil && sup.SuppressedAtRcpt(key,
		RcptContext{From: txn.from, Listener: s.srv.name, ClientIP: clientIP(s.tc), User: s.user}) {
		s.log.Info("recipient refused: suppressed", "trace", txn.id, "rcpt", key)
		return errSuppressed // RFC 3463 §3.8 X.7.1; the other recipients go on
	}
	if txn.seen[key] {
		return nil // RFC 5321 §3.3 allows a duplicate; deliver once
	}

	// go-smtp's own limit would also advertise LIMITS (RFC 9422); this
	// gives the exact reply of RFC 5321 §4.5.3.1.10. The lowest of the
	// listener's limit and the client's and user's reception limits
	// applies.
	limit, reply, kind := s.srv.policy.Rates.recipientLimit(s.srv.limits.maxRecipients, s.tc.ip, s.user)
	if len(txn.rcpts) >= limit {
		if reply == nil {
			return errTooManyRcpts
		}
		s.srv.guard.limited(limitRecipients, kind)
		return reply
	}
	// After the relay check, suppression and limits, which no rule can
	// undo: an accept only ends the rcpt rules.
	if err := s.rcptRules(txn, key, postmaster); err != nil {
		return err
	}
	txn.seen[key] = true
	txn.rcpts = append(txn.rcpts, key) // the domain in its one stored form (A-labels)
	txn.rcptDSN = append(txn.rcptDSN, dsn)
	return nil
}

// relayCheck applies RelayPolicy to one recipient domain.
func (s *session) relayCheck(domain string) *smtp.SMTPError {
	r := s.srv.relay
	switch {
	case s.user != "", r.acceptsDomain(domain):
		return nil
	case s.srv.submissionAuth:
		// RFC 6409 §4.3: a submission server relays for authenticated
		// users only, whatever network they come from.
		return errAuthRequired
	case r.fromNetwork(s.tc.ip):
		return nil
	}
	return errRelayDenied
}

func addressReply(err error, syntax, notAllowed *smtp.SMTPError) error {
	switch {
	case errors.Is(err, errAddrQuoted):
		return notAllowed
	case errors.Is(err, errAddrNonASCII):
		return errNeedSMTPUTF8
	}
	return syntax
}

// Reset implements smtp.Session: go-smtp calls it at RSET, a new EHLO and
// after every message, so it ends the transaction.
func (s *session) Reset() {
	s.txn.Store(nil)
	s.tc.inData.Store(false)
	s.tc.busy.Store(false)
}

// Logout implements smtp.Session.
func (s *session) Logout() error {
	s.Reset()
	return nil
}

// now returns the policy clock's time.
func (s *Server) now() time.Time {
	if s.policy.Now != nil {
		return s.policy.Now()
	}
	return time.Now()
}
