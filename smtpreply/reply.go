// Package smtpreply is cuemta's one SMTP reply type, used from the wire to
// the log: the replies reception sends and its policy refusals, the
// replies the delivery client reads, what the rules see, the spool's last
// reply of a recipient, the delivery log, DSNs and the admin API.
//
// A Reply stays typed end to end. It is parsed once, where it enters
// (Parse for a written reply, FromLines for one read off the wire), and
// formatted once, where it leaves (String); nothing in between splits a
// string to find its code again.
package smtpreply

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Reply is one SMTP reply (RFC 5321 §4.2) and where it came from.
type Reply struct {
	Code int // three-digit reply code
	// Enhanced is the RFC 3463 status code ("5.1.1"); "" when the reply
	// had none.
	Enhanced string
	// Text is the reply text on one line, without code and enhanced code:
	// the lines of a multi-line reply joined with a single space (see
	// FromLines), so a phrase reads the same however the server wrapped it.
	Text string
	// Lines are a received reply's lines as they came, each without its
	// code and the separator after it ("250-", "550 ") but with any
	// enhanced code. Empty for a reply made here.
	Lines []string
	// Stage is the step of the session the reply answered (see the
	// smtpclient Stage constants); "" when not known.
	Stage string
	// Cause is what led to a reply made here, for logs; never sent.
	Cause error
}

// New is a reply made here.
func New(code int, enhanced, text string) Reply {
	return Reply{Code: code, Enhanced: enhanced, Text: text}
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

// IsZero reports a reply never received or made.
func (r *Reply) IsZero() bool { return r.Code == 0 }

// Error makes a Reply usable as an error: "smtp rcpt: 550 5.1.1 No such
// user" for a received one, with ": cause" after a reply made here.
func (r *Reply) Error() string {
	s := r.String()
	if r.Stage != "" {
		s = "smtp " + r.Stage + ": " + s
	}
	if r.Cause != nil {
		s += ": " + r.Cause.Error()
	}
	return s
}

func (r *Reply) Unwrap() error { return r.Cause }

// String is the reply on one line, "550 5.1.1 No such user", as logs,
// DSNs and the spool show it; Parse reads it back.
func (r *Reply) String() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(r.Code))
	if r.Enhanced != "" {
		b.WriteByte(' ')
		b.WriteString(r.Enhanced)
	}
	if r.Text != "" {
		b.WriteByte(' ')
		// Text from the wire is one line already; a reply made up from
		// an error may not be.
		b.WriteString(oneLine(r.Text))
	}
	return b.String()
}

// Status is the RFC 3463 status for a DSN or log: the enhanced code, or
// the class default (X.0.0, RFC 3463 §3.1) when the reply had none.
func (r *Reply) Status() string {
	if r.Enhanced != "" {
		return r.Enhanced
	}
	if c := r.Class(); c == 2 || c == 4 || c == 5 {
		return strconv.Itoa(c) + ".0.0"
	}
	return ""
}

func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Map(func(c rune) rune {
		if c == '\r' || c == '\n' {
			return ' '
		}
		return c
	}, s)
}

// enhancedRE matches an RFC 3463 status code at the start of reply text
// (RFC 2034 §4: it follows the reply code on every line).
var enhancedRE = regexp.MustCompile(`^([245])\.([0-9]{1,3})\.([0-9]{1,3})(?: |$)`)

// ValidEnhanced reports whether s is an RFC 3463 status code ("5.1.1"),
// of any class.
func ValidEnhanced(s string) bool {
	m := enhancedRE.FindString(s)
	return m != "" && m == s
}

// FromLines is a reply with this code received as these lines (as Reply.Lines
// holds them).
//
// A server may wrap a reply anywhere (RFC 5321 §4.2.1), so the lines are
// joined with a single space: a Gmail reply wrapped before "domain" still
// contains "reputation of the sending domain". Spaces and tabs around each
// line are dropped, and so are lines left empty, so that no join doubles a
// space. The enhanced code is taken from the first line (RFC 3463 §2: only
// when its class is the code's) and kept once, in Enhanced: servers repeat
// it at the start of every line (RFC 2034 §4 asks for it on each), so a
// continuation line that starts with the same code has it stripped before
// the join. A continuation line that starts with a different code keeps
// it, as text: it is not the reply's code.
func FromLines(code int, lines []string) Reply {
	r := Reply{Code: code, Lines: lines}
	var b strings.Builder
	for i, l := range lines {
		enh, rest := SplitEnhanced(code, l)
		if i == 0 {
			r.Enhanced = enh
		}
		if enh != "" && enh == r.Enhanced {
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
	r.Text = b.String()
	return r
}

// SplitEnhanced separates a leading enhanced code from text when its
// class matches the reply code's (RFC 3463 §2), so "250 2.0.0 Ok" and
// "550 5.1.1 ..." parse, but a 250 whose text starts "5.1.1" does not.
func SplitEnhanced(code int, text string) (enhanced, rest string) {
	m := enhancedRE.FindStringSubmatch(text)
	if m == nil || m[1] != strconv.Itoa(code/100) {
		return "", text
	}
	return strings.TrimSuffix(m[0], " "), text[len(m[0]):]
}

// Parse reads a reply written on one line, "421 4.7.28 text" (or
// "421-4.7.28 text", as a line of a multi-line reply reads), as String
// writes it, an operator types it, or the spool stored it.
func Parse(s string) (Reply, error) {
	s = strings.TrimSpace(s)
	if len(s) < 3 {
		return Reply{}, fmt.Errorf("%q is not an SMTP reply: want \"CODE [ENHANCED] TEXT\"", s)
	}
	code, err := strconv.Atoi(s[:3])
	if err != nil || code < 200 || code > 599 || s[0] == '+' {
		return Reply{}, fmt.Errorf("%q is not an SMTP reply: %q is not a reply code (200-599)", s, s[:3])
	}
	rest := s[3:]
	if rest != "" && rest[0] != ' ' && rest[0] != '-' {
		return Reply{}, fmt.Errorf("%q is not an SMTP reply: want a space after the code", s)
	}
	if rest != "" {
		rest = rest[1:]
	}
	r := FromLines(code, []string{rest})
	r.Lines = nil
	return r, nil
}
