package reception

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	smtp "github.com/cuemta/cuemta/reception/internal/smtpd"
	"github.com/cuemta/cuemta/smtpreply"
)

// Reply is a typed SMTP outcome, for example a policy refusal from a Sink:
// the project's one reply type. It is converted to a plain
// *smtp.SMTPError only at the go-smtp boundary, because go-smtp
// recognises reply codes only on an unwrapped *SMTPError. Its Cause is
// for logs and never sent to the client.
type Reply = smtpreply.Reply

// errStorage is the reply for a Sink error that carries no *Reply.
var errStorage = newReply(451, "4.3.0", "Requested action aborted: local storage error, try again later")

// sinkReply turns an error from Sink.Accept into the reply for the client.
func sinkReply(err error) *smtp.SMTPError {
	var r *Reply
	if !errors.As(err, &r) || r.Code < 400 || r.Code > 599 {
		// A 2xx/3xx "error" is a Sink bug; failing safe keeps the message
		// with the client.
		return errStorage
	}
	return smtpError(r)
}

// smtpError converts r to the plain *smtp.SMTPError go-smtp sends as is.
func smtpError(r *Reply) *smtp.SMTPError {
	return &smtp.SMTPError{
		Code:         r.Code,
		EnhancedCode: parseEnhanced(r.Enhanced, r.Code),
		// A Sink's text must not add lines to the reply (RFC 5321 §4.2.1).
		Message: oneLine(r.Text),
	}
}

// parseEnhanced converts an RFC 3463 code to go-smtp's form. An empty,
// malformed or class-mismatched code (RFC 3463 §2) becomes
// EnhancedCodeNotSet, which go-smtp sends as the class default (for
// example 4.0.0 for a 451).
func parseEnhanced(s string, code int) smtp.EnhancedCode {
	if !smtpreply.ValidEnhanced(s) || int(s[0]-'0') != code/100 {
		return smtp.EnhancedCodeNotSet
	}
	var ec smtp.EnhancedCode
	for i, p := range strings.SplitN(s, ".", 3) {
		ec[i], _ = strconv.Atoi(p) // digits only, checked above
	}
	return ec
}

// newReply builds a fixed reply of this package. It panics on a malformed
// enhanced code, which only a programming error can produce.
func newReply(code int, enhanced, text string) *smtp.SMTPError {
	ec := parseEnhanced(enhanced, code)
	if ec == smtp.EnhancedCodeNotSet {
		panic(fmt.Sprintf("reception: bad enhanced code %q for %d", enhanced, code))
	}
	return &smtp.SMTPError{Code: code, EnhancedCode: ec, Message: text}
}

// Replies of this package. The codes cite RFC 5321 §4.2 and RFC 3463.
var (
	errRelayDenied      = newReply(550, "5.7.1", "Relaying denied")
	errAuthRequired     = newReply(530, "5.7.0", "Authentication required")                           // RFC 4954 §6
	errTooManyRcpts     = newReply(452, "4.5.3", "Too many recipients")                               // RFC 5321 §4.5.3.1.10
	errTooBig           = newReply(552, "5.3.4", "Message size exceeds fixed maximum message size")   // RFC 1870 §6
	errBareLF           = newReply(550, "5.6.0", "Bare LF/CR not allowed")                            // RFC 5321 §2.3.8
	errLineTooLong      = newReply(550, "5.6.0", "Line too long")                                     // RFC 5321 §4.5.3.1.6
	errDataTimeout      = newReply(421, "4.4.2", "Timeout waiting for message data, closing channel") // RFC 5321 §4.5.3.2
	errDataFailed       = newReply(421, "4.4.0", "Error reading message data, closing channel")
	errNestedMail       = newReply(503, "5.5.1", "Nested MAIL command")      // RFC 5321 §4.1.4
	errNoTransaction    = newReply(503, "5.5.1", "Bad sequence of commands") // RFC 5321 §4.1.4
	errShuttingDown     = newReply(421, "4.3.2", "Service shutting down, try again later")
	errSystemFull       = newReply(452, "4.3.1", "Insufficient system storage, try again later")
	errBadRcptSyntax    = newReply(501, "5.1.3", "Bad recipient address syntax") // RFC 3463 X.1.3
	errBadSenderSyntax  = newReply(501, "5.1.7", "Bad sender address syntax")    // RFC 3463 X.1.7
	errRcptNotAllowed   = newReply(553, "5.1.3", "Quoted local parts are not accepted")
	errSenderNotAllowed = newReply(553, "5.1.7", "Quoted local parts are not accepted")
	errNeedSMTPUTF8     = newReply(553, "5.6.7", "Non-ASCII address requires SMTPUTF8")              // RFC 6531 §3.5
	errHeaderTooBig     = newReply(552, "5.3.4", "Message header exceeds fixed maximum header size") // RFC 5321 §4.2.2, RFC 3463 X.3.4
	errMailLoop         = newReply(554, "5.4.6", "Routing loop detected: too many Received headers") // RFC 5321 §6.3, RFC 3463 X.4.6
	errTooManyRcptFails = newReply(421, "4.7.0", "Too many rejected recipients, closing connection")
	errTooManyCommands  = newReply(421, "4.7.0", "Too many NOOP/RSET commands, closing connection")
)

// Replies of the message-data limits: the budget of bytes in flight and
// the data phase's rate and time bounds (datalimits.go).
var (
	// RFC 5321 §4.2.2 452 (insufficient system storage), RFC 3463 X.3.1
	// (mail system full).
	errBudgetFull = newReply(452, "4.3.1", "Insufficient system storage: too much mail in transit, try again later")
	// RFC 5321 §3.8 (421, then close), §4.5.3.2; RFC 3463 X.4.2 bad
	// connection.
	errDataTooSlow = newReply(421, "4.4.2", "Message data too slow, closing channel")
	errDataTooLong = newReply(421, "4.4.2", "Message data took too long, closing channel")
)
