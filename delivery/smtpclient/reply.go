package smtpclient

import (
	"regexp"
	"strconv"
	"strings"
)

// Stages of an SMTP session, as recorded in Reply.Stage and NetError.Stage.
const (
	StageConnect  = "connect"
	StageGreeting = "greeting"
	StageEHLO     = "ehlo"
	StageSTARTTLS = "starttls"
	StageAuth     = "auth"
	StageMail     = "mail"
	StageRcpt     = "rcpt"
	StageData     = "data" // the DATA command
	StageEOD      = "eod"  // the reply after the final "."
	StageRset     = "rset"
	StageQuit     = "quit"
)

// Reply is one server reply.
type Reply struct {
	Code int
	// Enhanced is the RFC 3463 status code ("5.1.1") if the reply had one.
	Enhanced string
	// Text is the reply text without code and enhanced code; the lines of
	// a multi-line reply are joined with "\n".
	Text  string
	Stage string
}

// Class is the first digit of the code: 2 success, 3 intermediate,
// 4 transient failure, 5 permanent failure (RFC 5321 §4.2.1).
func (r *Reply) Class() int { return r.Code / 100 }

// Temporary reports a 4xx reply: try again later.
func (r *Reply) Temporary() bool { return r.Class() == 4 }

// Permanent reports a 5xx reply: do not retry as is.
func (r *Reply) Permanent() bool { return r.Class() == 5 }

// Positive reports a 2xx reply.
func (r *Reply) Positive() bool { return r.Class() == 2 }

// Error makes a Reply usable as the error of a failed step.
func (r *Reply) Error() string {
	return "smtp " + r.Stage + ": " + r.String()
}

// String is the reply on one line: "550 5.1.1 No such user".
func (r *Reply) String() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(r.Code))
	if r.Enhanced != "" {
		b.WriteByte(' ')
		b.WriteString(r.Enhanced)
	}
	if r.Text != "" {
		b.WriteByte(' ')
		b.WriteString(strings.ReplaceAll(r.Text, "\n", " "))
	}
	return b.String()
}

// enhancedRE matches an RFC 3463 status code at the start of reply text
// (RFC 2034 §4: it follows the reply code on every line).
var enhancedRE = regexp.MustCompile(`^([245])\.([0-9]{1,3})\.([0-9]{1,3})(?: |$)`)

// splitEnhanced separates a leading enhanced code from text when its class
// matches the reply code's (RFC 3463 §2), so "250 2.0.0 Ok" and
// "550 5.1.1 ..." parse, but a 250 whose text starts "5.1.1" does not.
func splitEnhanced(code int, text string) (string, string) {
	m := enhancedRE.FindStringSubmatch(text)
	if m == nil || m[1] != strconv.Itoa(code/100) {
		return "", text
	}
	return strings.TrimSuffix(m[0], " "), text[len(m[0]):]
}
