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
	// Text is the reply text on one line, without code and enhanced code:
	// the lines of a multi-line reply are joined with a single space (see
	// ReplyText), so a phrase reads the same however the server wrapped it.
	Text  string
	Stage string
	// Lines are the reply's lines as received, each without its code and
	// the separator after it ("250-", "550 ") but with any enhanced code:
	// "4.7.28 Our system has detected ...". A one-line reply has one.
	Lines []string
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
		// Text from the wire is one line already; a reply made up from a
		// network error may not be.
		b.WriteString(strings.ReplaceAll(r.Text, "\n", " "))
	}
	return b.String()
}

// enhancedRE matches an RFC 3463 status code at the start of reply text
// (RFC 2034 §4: it follows the reply code on every line).
var enhancedRE = regexp.MustCompile(`^([245])\.([0-9]{1,3})\.([0-9]{1,3})(?: |$)`)

// ReplyText returns the enhanced code and the one-line text of a reply
// with this code, given its lines as Reply.Lines holds them.
//
// A server may wrap a reply anywhere (RFC 5321 §4.2.1), so the lines are
// joined with a single space: a Gmail reply wrapped before "domain" still
// contains "reputation of the sending domain". Spaces and tabs around each
// line are dropped, and so are lines left empty, so that no join doubles a
// space. The enhanced code is taken from the first line (RFC 3463 §2: only
// when its class is the code's) and kept once, in enhanced: servers repeat
// it at the start of every line (RFC 2034 §4 asks for it on each), so a
// continuation line that starts with the same code has it stripped before
// the join. A continuation line that starts with a different code keeps
// it, as text: it is not the reply's code.
func ReplyText(code int, lines []string) (enhanced, text string) {
	var b strings.Builder
	for i, l := range lines {
		enh, rest := splitEnhanced(code, l)
		if i == 0 {
			enhanced = enh
		}
		if enh != "" && enh == enhanced {
			l = rest
		}
		l = strings.Trim(l, " \t")
		if l == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(l)
	}
	return enhanced, b.String()
}

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
