package reception

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	smtp "github.com/cuemta/cuemta/reception/internal/smtpd"
)

// sinkTimeout bounds Sink.Accept. It is below the 10 minutes a client
// waits for the reply to the end of data (RFC 5321 §4.5.3.2.6), so the
// client hears a 451 rather than timing out and retrying blind.
const sinkTimeout = 5 * time.Minute

// Message checks, applied alike to DATA and BDAT on the whole message, so
// the outcome never depends on how the bytes were split into chunks or
// TCP segments.
const (
	// maxLineLength bounds a line of message data and a command line,
	// CRLF included: twice RFC 5321 §4.5.3.1.6's 1000, as real senders
	// exceed it.
	maxLineLength = 2000
	// maxHeaderSize bounds the header section (RFC 5322 §2.1) before
	// anything parses it: header rewriting and rules cost CPU in
	// proportion, and no legitimate header comes near 1 MiB.
	maxHeaderSize = 1 << 20
	// maxReceivedHeaders is the hop count past which a message is taken
	// to be looping (RFC 5321 §6.3: "a limit of at least 100"). A Go
	// constant for now; a ListenerLimits field needs a schema change.
	maxReceivedHeaders = 100
)

// Data implements smtp.Session for DATA and BDAT. go-smtp has already
// removed dot-stuffing (DATA) and enforces the size limit on both.
//
// The message is buffered within the server's Budget (messageBuffer) and
// copied once, into a buffer that leaves room for the Received header and
// a submission listener's fields, so the stored message is built without
// copying the body again. Everything reserved is released when Data
// returns, which it does however the transaction ends: the reply, a
// refusal, RSET or a lost connection during BDAT (go-smtp closes the
// reader), a timeout.
func (s *session) Data(r io.Reader) error {
	txn := s.txn.Load()
	if txn == nil {
		return errNoTransaction
	}
	tags := s.tagsOf(txn) // before the first read (see session)
	s.tc.beginData()      // inData is cleared by Reset, after go-smtp drains r
	buf := newMessageBuffer(s.srv.budget)
	defer buf.release()
	body, now, err := s.readMessage(r, buf, txn)
	if err != nil {
		var reply *smtp.SMTPError
		if errors.As(err, &reply) {
			s.log.Info("message refused", "trace", txn.id, "reply", reply.Code, "reason", reply.Message)
		}
		return err
	}
	sub := &Submission{
		From:         txn.from,
		Recipients:   slices.Clone(txn.rcpts),
		Body:         body,
		Listener:     s.srv.name,
		ClientIP:     clientIP(s.tc),
		Helo:         txn.helo,
		User:         s.user,
		TLS:          s.tls,
		Received:     now,
		TraceID:      txn.id,
		SMTPUTF8:     txn.utf8,
		EightBitMIME: txn.eightBit,
		DSN:          txn.dsn,
		RcptDSN:      slices.Clone(txn.rcptDSN),
		FromNetwork:  s.srv.relay.fromNetwork(s.tc.ip),
		Tags:         tags,
	}

	ctx, cancel := context.WithTimeout(s.srv.ctx, sinkTimeout)
	id, err := s.srv.sink.Accept(ctx, sub)
	cancel()
	var discarded *Discarded
	if errors.As(err, &discarded) {
		s.log.Info("message discarded", "trace", txn.id, "by", discarded.By, "reason", discarded.Reason)
		return errDiscardedReply
	}
	if err != nil {
		reply := sinkReply(err)
		s.log.Warn("message not accepted by sink", "trace", txn.id, "err", err,
			"reply", reply.Code)
		return reply
	}
	s.log.Debug("message queued", "trace", txn.id, "queue_id", id, "from", txn.from,
		"rcpts", len(sub.Recipients), "size", len(sub.Body), "user", s.user, "tls", s.tls)
	// Only now, with the message stored, does the client hear 250.
	return &smtp.SMTPError{
		Code:         250,
		EnhancedCode: smtp.EnhancedCode{2, 0, 0},
		Message:      "Ok: queued as " + oneLine(id),
	}
}

// readMessage reads the whole message into buf, checks what go-smtp does
// not, and returns the message to store, the Received header (and the
// submission fields) added in place, and the time it was received.
func (s *session) readMessage(r io.Reader, buf *messageBuffer, txn *transaction) ([]byte, time.Time, error) {
	if err := buf.readFrom(r); err != nil {
		if errors.Is(err, errOverBudget) {
			b := s.srv.budget
			b.refusedData.Add(1)
			s.log.Info("message refused: message bytes in flight over budget", "trace", txn.id,
				"in_flight", b.InFlight(), "limit", b.Limit())
			// go-smtp reads and discards the rest of the data itself, so
			// the reply comes after the end of data (RFC 5321 §4.1.1.4),
			// holding no memory meanwhile.
			return nil, time.Time{}, errBudgetFull
		}
		return nil, time.Time{}, s.readError(err)
	}
	now := s.srv.now()
	received := receivedHeader(traceInfo{
		helo:     txn.helo,
		ip:       s.tc.ip,
		hostname: s.srv.policy.Hostname,
		tls:      s.tls,
		auth:     s.user != "",
		utf8:     txn.utf8,
		id:       txn.id,
		rcpts:    txn.rcpts,
		at:       now,
	})
	var most []string // the longest extra fields this listener may add
	if s.srv.submission {
		most = submissionFieldsMax(s.srv.policy.Hostname, now)
	}
	front := headroom(received, most)
	out := buf.assemble(front, 2)
	msg := out[front : front+buf.len()]
	if err := checkMessage(msg); err != nil {
		return nil, time.Time{}, err
	}
	var extra []string
	if s.srv.submission {
		extra = submissionFields(msg, s.srv.policy.Hostname, now)
	}
	return placeMessage(out, front, len(msg), received, extra), now, nil
}

// checkMessage applies the message checks go-smtp does not.
func checkMessage(msg []byte) error {
	// SMTP smuggling: go-smtp ends DATA only at CRLF.CRLF, but a bare LF or
	// CR passes through, and a server further down the line may take
	// "\n.\n" or "\r.\r" for the end of data and read what follows as a
	// second message. RFC 5321 §2.3.8 allows CR and LF only together.
	if hasBareCRorLF(msg) {
		return errBareLF
	}
	if hasLongLine(msg, maxLineLength) {
		return errLineTooLong
	}
	// Refused rather than truncated: a 552 keeps the message with the
	// sender (RFC 5321 §4.2.2 552: exceeded storage allocation; RFC 3463
	// X.3.4: an administrative per-message size limit). RFC 5322 sets no
	// header size limit, so the content is not malformed (not 5.6.0).
	end, ok := headerEndWithin(msg, maxHeaderSize)
	if !ok {
		return errHeaderTooBig
	}
	// RFC 5321 §6.3: refuse a looping message at the end of data, before
	// any rule sees it.
	if countFields(msg[:end], "Received", maxReceivedHeaders+1) > maxReceivedHeaders {
		return errMailLoop
	}
	return nil
}

// hasLongLine reports whether b has a line longer than limit octets, its
// CRLF included.
func hasLongLine(b []byte, limit int) bool {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return len(b) > limit
		}
		if i+1 > limit {
			return true
		}
		b = b[i+1:]
	}
	return false
}

// readError maps a failure to read the message to its reply.
func (s *session) readError(err error) error {
	var ne net.Error
	var cut *dataCut
	switch {
	case errors.Is(err, smtp.ErrDataTooLarge):
		// go-smtp reads and discards the rest of the data itself.
		return errTooBig
	case errors.Is(err, smtp.ErrDataReset):
		// BDAT aborted by RSET, EHLO or a lost connection: no reply.
		return err
	case errors.As(err, &cut):
		// trackedConn has cut the transfer off and closes after the reply.
		return cut.reply
	case errors.As(err, &ne) && ne.Timeout():
		// The client may still send the rest of the message later, which
		// would be read as commands: close after replying.
		s.tc.hangup.Store(true)
		return errDataTimeout
	}
	s.tc.hangup.Store(true)
	return errDataFailed
}

// hasBareCRorLF reports whether b has a LF not preceded by CR or a CR not
// followed by LF. Every LF must follow a CR; then the CRs can only all be
// paired if there are as many as LFs.
func hasBareCRorLF(b []byte) bool {
	lf := 0
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			break
		}
		if i+j == 0 || b[i+j-1] != '\r' {
			return true
		}
		lf++
		i += j + 1
	}
	return bytes.Count(b, []byte{'\r'}) != lf
}

// clientIP is Submission.ClientIP: "" for a transport without IPs.
func clientIP(tc *trackedConn) string {
	if !tc.ip.IsValid() {
		return ""
	}
	return tc.ip.String()
}

// oneLine keeps a value from adding lines to a reply (go-smtp splits text
// at "\n" into a multi-line reply).
func oneLine(s string) string {
	return strings.Map(func(c rune) rune {
		if c == '\r' || c == '\n' {
			return ' '
		}
		return c
	}, s)
}
