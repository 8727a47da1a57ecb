package dsn

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"mime/quotedprintable"
	"strings"
)

// dateFormat is the RFC 5322 §3.3 date-time, also used by RFC 3464's
// date fields.
const dateFormat = "Mon, 02 Jan 2006 15:04:05 -0700"

// Build returns the notification as a complete RFC 5322 message with CRLF
// line endings.
func Build(p Params) ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	msgID := strings.Trim(p.MessageID, "<>")
	if msgID == "" {
		var b [12]byte
		rand.Read(b[:])
		msgID = hex.EncodeToString(b[:]) + "@" + p.ReportingMTA
	}
	human := humanPart(p)
	status, global := statusPart(p)
	headers := headerSection(p.OriginalHeaders)
	boundary := makeBoundary(msgID, human, status, headers)

	var m bytes.Buffer
	h := func(name, value string) { m.WriteString(fold(name+": "+value) + "\r\n") }
	h("From", "Mail Delivery System <"+p.From+">")
	h("To", "<"+strings.Trim(p.To, "<>")+">")
	h("Subject", subject(p.Recipients))
	h("Date", p.Now.Format(dateFormat))
	h("Message-ID", "<"+msgID+">")
	h("Auto-Submitted", "auto-replied") // RFC 3834 §5
	h("MIME-Version", "1.0")
	// RFC 6522 §3: report-type names the second part's subtype.
	reportType := "delivery-status"
	if global {
		reportType = "global-delivery-status" // RFC 6533 §6.1
	}
	m.WriteString("Content-Type: multipart/report; report-type=" + reportType + ";\r\n\tboundary=\"" + boundary + "\"\r\n")
	m.WriteString("\r\nThis is a MIME-encapsulated message.\r\n")

	part := func(headers string, body []byte) {
		m.WriteString("\r\n--" + boundary + "\r\n" + headers + "\r\n")
		m.Write(body)
	}
	part(human.headers, human.body)
	part("Content-Description: Delivery report\r\nContent-Type: message/"+reportType+"\r\n", status)
	if len(headers) > 0 {
		part("Content-Description: Undelivered Message Headers\r\nContent-Type: text/rfc822-headers\r\n", headers)
	}
	m.WriteString("\r\n--" + boundary + "--\r\n")
	return m.Bytes(), nil
}

func subject(rs []Recipient) string {
	delayed := true
	for _, r := range rs {
		if r.Action == ActionFailed {
			return "Undelivered Mail Returned to Sender"
		}
		delayed = delayed && r.Action == ActionDelayed
	}
	if delayed {
		return "Delayed Mail (still being retried)"
	}
	return "Delivery Status Notification"
}

// makeBoundary derives the boundary from the message ID, so output is
// reproducible, and re-derives in the unlikely case a part contains it.
func makeBoundary(msgID string, human text, parts ...[]byte) string {
	for i := 0; ; i++ {
		sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", msgID, i)))
		b := "=_dsn_" + hex.EncodeToString(sum[:12])
		clash := bytes.Contains(human.body, []byte(b))
		for _, p := range parts {
			clash = clash || bytes.Contains(p, []byte(b))
		}
		if !clash {
			return b
		}
	}
}

type text struct {
	headers string
	body    []byte
}

// humanPart is the text/plain explanation (RFC 6522 §3: the first part of
// a multipart/report is for humans).
func humanPart(p Params) text {
	var b strings.Builder
	line := func(s string) { b.WriteString(s + "\n") }
	line("This is the mail system at host " + p.ReportingMTA + ".")
	line("")
	if p.Reason != "" {
		line(strings.TrimRight(p.Reason, "\r\n"))
	} else {
		line(defaultReason(p.Recipients))
	}
	line("")
	for _, r := range p.Recipients {
		detail := "status " + r.Status
		if r.Diagnostic != "" {
			_, diag, ok := strings.Cut(r.Diagnostic, ";")
			if !ok {
				diag = r.Diagnostic
			}
			detail = oneLine(diag)
		}
		if r.RemoteMTA != "" {
			detail = "host " + r.RemoteMTA + " said: " + detail
		}
		line(wrap("<"+r.Addr+">: "+r.Action+": "+detail, "    "))
		if r.Action == ActionDelayed && !r.WillRetryUntil.IsZero() {
			line("    (still trying until " + r.WillRetryUntil.Format(dateFormat) + ")")
		}
	}
	body := []byte(b.String())
	if isASCII(body) {
		return text{
			headers: "Content-Description: Notification\r\nContent-Type: text/plain; charset=us-ascii\r\n",
			body:    crlf(body),
		}
	}
	var q bytes.Buffer
	w := quotedprintable.NewWriter(&q)
	w.Write(body)
	w.Close()
	return text{
		headers: "Content-Description: Notification\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n",
		body:    crlf(q.Bytes()),
	}
}

func defaultReason(rs []Recipient) string {
	for _, r := range rs {
		if r.Action == ActionFailed {
			return "I'm sorry to have to inform you that your message could not\n" +
				"be delivered to one or more recipients. Its headers are attached below."
		}
	}
	return "Your message could not be delivered yet to one or more recipients.\n" +
		"The mail system will keep trying; you do not need to resend it."
}

// statusPart is the message/delivery-status body (RFC 3464 §2.1): the
// per-message fields, then one block per recipient, each block preceded
// by a blank line. global reports whether RFC 6533 UTF-8 addresses are in
// it.
func statusPart(p Params) (body []byte, global bool) {
	var b bytes.Buffer
	f := func(name, value string) { b.WriteString(fold(name+": "+value) + "\r\n") }
	addr := func(a string) string {
		if !isASCII([]byte(a)) {
			global = true
			return "utf-8; " + a // RFC 6533 §3
		}
		return "rfc822; " + a
	}
	f("Reporting-MTA", "dns; "+p.ReportingMTA) // §2.2.2
	if p.EnvelopeID != "" {
		f("Original-Envelope-Id", p.EnvelopeID) // §2.2.1
	}
	if !p.Arrival.IsZero() {
		f("Arrival-Date", p.Arrival.Format(dateFormat)) // §2.2.5
	}
	for _, r := range p.Recipients {
		b.WriteString("\r\n")
		if r.OriginalAddr != "" {
			f("Original-Recipient", addr(r.OriginalAddr)) // §2.3.1
		}
		f("Final-Recipient", addr(r.Addr)) // §2.3.2
		f("Action", r.Action)              // §2.3.3
		f("Status", r.Status)              // §2.3.4
		if r.RemoteMTA != "" {
			f("Remote-MTA", "dns; "+r.RemoteMTA) // §2.3.5
		}
		if r.Diagnostic != "" {
			d := oneLine(r.Diagnostic)
			if !strings.Contains(d, ";") {
				d = "smtp; " + d
			}
			if !isASCII([]byte(d)) {
				global = true
			}
			f("Diagnostic-Code", d) // §2.3.6
		}
		if !r.LastAttempt.IsZero() {
			f("Last-Attempt-Date", r.LastAttempt.Format(dateFormat)) // §2.3.7
		}
		if !r.WillRetryUntil.IsZero() && r.Action == ActionDelayed {
			f("Will-Retry-Until", r.WillRetryUntil.Format(dateFormat)) // §2.3.8
		}
		if r.Category != "" {
			// RFC 3464 §2.4: an extension field of the per-recipient part,
			// named X- as it is not registered.
			f("X-Cuemta-Category", r.Category)
		}
	}
	return b.Bytes(), global
}

// headerSection returns the header section of msg (up to the first empty
// line) with CRLF line endings (RFC 6522 §4, text/rfc822-headers).
func headerSection(msg []byte) []byte {
	msg = crlf(msg)
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		msg = msg[:i+2]
	}
	if len(msg) > 0 && !bytes.HasSuffix(msg, []byte("\r\n")) {
		msg = append(msg, '\r', '\n')
	}
	return msg
}

// crlf turns any mix of CRLF, LF and CR line endings into CRLF.
func crlf(b []byte) []byte {
	var out bytes.Buffer
	out.Grow(len(b) + len(b)/32)
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '\r':
			if i+1 < len(b) && b[i+1] == '\n' {
				i++
			}
			out.WriteString("\r\n")
		case '\n':
			out.WriteString("\r\n")
		default:
			out.WriteByte(c)
		}
	}
	return out.Bytes()
}

// wrap breaks human text at spaces before 76 columns, indenting the
// continuation lines.
func wrap(s, indent string) string {
	const limit = 76
	var b strings.Builder
	cur := 0
	for i, w := range strings.Fields(s) {
		if i > 0 {
			if cur+1+len(w) > limit {
				b.WriteString("\n" + indent)
				cur = len(indent)
			} else {
				b.WriteByte(' ')
				cur++
			}
		}
		b.WriteString(w)
		cur += len(w)
	}
	return b.String()
}

// oneLine flattens a multi-line SMTP reply for a header field.
func oneLine(s string) string {
	// A remote server's reply may carry control characters; they are
	// not field text (RFC 5322 §3.2.5), so each becomes a space first.
	s = strings.Map(func(r rune) rune {
		if isControl(r) {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// fold breaks a header line longer than 78 characters at spaces
// (RFC 5322 §2.2.3), continuing with a tab.
func fold(line string) string {
	const limit = 78
	if len(line) <= limit {
		return line
	}
	var b strings.Builder
	cur := 0
	for i, w := range strings.Split(line, " ") {
		if i > 0 {
			if cur+1+len(w) > limit {
				b.WriteString("\r\n\t")
				cur = 1
			} else {
				b.WriteByte(' ')
				cur++
			}
		}
		b.WriteString(w)
		cur += len(w)
	}
	return b.String()
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}
