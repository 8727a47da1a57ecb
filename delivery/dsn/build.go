package dsn

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"mime/quotedprintable"
	"strings"

	"github.com/cuemta/cuemta/internal/msgheader"
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
		msgID = strings.Trim(msgheader.MessageID(p.ReportingMTA), "<>")
	}
	human := humanPart(p)
	status, global := statusPart(p)
	headers := headerSection(p.OriginalHeaders)
	what := "Undelivered Message"
	if allSuccess(p.Recipients) {
		what = "Message" // it was delivered
	}
	returned := "Content-Description: " + what + " Headers\r\nContent-Type: text/rfc822-headers\r\n"
	if p.Full && len(p.OriginalHeaders) > 0 {
		headers = msgheader.CRLF(p.OriginalHeaders)
		if !bytes.HasSuffix(headers, []byte("\r\n")) {
			headers = append(headers, '\r', '\n')
		}
		ct := "message/rfc822"
		if !isASCII(headerSection(headers)) {
			ct = "message/global" // RFC 6532 §3.7: UTF-8 header fields
		}
		returned = "Content-Description: " + what + "\r\nContent-Type: " + ct + "\r\n"
	}
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
		part(returned, headers)
	}
	m.WriteString("\r\n--" + boundary + "--\r\n")
	return m.Bytes(), nil
}

// allSuccess reports a report of delivered and relayed recipients only.
func allSuccess(rs []Recipient) bool {
	for _, r := range rs {
		if r.Action != ActionDelivered && r.Action != ActionRelayed {
			return false
		}
	}
	return len(rs) > 0
}

func subject(rs []Recipient) string {
	delayed, success := true, true
	for _, r := range rs {
		if r.Action == ActionFailed {
			return "Undelivered Mail Returned to Sender"
		}
		delayed = delayed && r.Action == ActionDelayed
		success = success && (r.Action == ActionDelivered || r.Action == ActionRelayed)
	}
	switch {
	case delayed:
		return "Delayed Mail (still being retried)"
	case success:
		return "Successful Mail Delivery Report"
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
			body:    msgheader.CRLF(body),
		}
	}
	var q bytes.Buffer
	w := quotedprintable.NewWriter(&q)
	w.Write(body)
	w.Close()
	return text{
		headers: "Content-Description: Notification\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n",
		body:    msgheader.CRLF(q.Bytes()),
	}
}

func defaultReason(rs []Recipient) string {
	success := true
	for _, r := range rs {
		if r.Action == ActionFailed {
			return "I'm sorry to have to inform you that your message could not\n" +
				"be delivered to one or more recipients. Its headers are attached below."
		}
		success = success && (r.Action == ActionDelivered || r.Action == ActionRelayed)
	}
	if success {
		return "Your message was delivered to the destination(s) listed below.\n" +
			"\"relayed\" means the next mail server will not report further."
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

// headerSection returns the header section of msg (RFC 5322 §2.1: up to
// the empty line or the first line that is not a field), its fields as
// they were, with CRLF line endings (RFC 6522 §4, text/rfc822-headers).
func headerSection(msg []byte) []byte {
	// A stored message has CRLF line endings already: its body, which
	// may be large, is then not copied.
	h, _ := msgheader.ParseHeader(msgheader.CRLF(msg)) // the fields before any problem
	return h.Bytes()
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
