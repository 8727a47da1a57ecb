package reception

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"net/netip"
	"strings"
	"time"

	"github.com/cuemta/cuemta/internal/msgheader"
)

// traceInfo is what the Received header records about one transaction.
type traceInfo struct {
	helo     string
	ip       netip.Addr
	hostname string
	tls      bool
	auth     bool
	utf8     bool
	id       string
	rcpts    []string
	at       time.Time
}

// receivedHeader renders the trace field of RFC 5321 §4.4:
//
//	Received: from HELO ([IP]) by HOSTNAME (cuemta) with PROTO id ID
//	        [for <rcpt>]; DATE
//
// No reverse DNS is looked up, so TCP-info is the bare address literal.
// PROTO is ESMTP with S for TLS and A for AUTH (RFC 3848), or UTF8SMTP
// likewise when SMTPUTF8 was used (RFC 6531 §3.7.3). The "for" clause names
// the recipient only when there is exactly one, so Bcc recipients are not
// disclosed to each other.
func receivedHeader(t traceInfo) string {
	var b strings.Builder
	b.WriteString("Received: from ")
	b.WriteString(heloForHeader(t.helo))
	b.WriteString(" (")
	b.WriteString(addressLiteral(t.ip))
	b.WriteString(")\r\n\tby ")
	b.WriteString(t.hostname)
	b.WriteString(" (cuemta) with ")
	proto := "ESMTP"
	if t.utf8 {
		proto = "UTF8SMTP"
	}
	if t.tls {
		proto += "S"
	}
	if t.auth {
		proto += "A"
	}
	b.WriteString(proto)
	b.WriteString(" id ")
	b.WriteString(t.id)
	if len(t.rcpts) == 1 {
		b.WriteString("\r\n\tfor <")
		b.WriteString(t.rcpts[0])
		b.WriteString(">")
	}
	b.WriteString(";\r\n\t")
	b.WriteString(t.at.Format(time.RFC1123Z)) // RFC 5322 §3.3 date-time
	b.WriteString("\r\n")
	return b.String()
}

// addressLiteral renders ip as in RFC 5321 §4.1.3.
func addressLiteral(ip netip.Addr) string {
	switch {
	case !ip.IsValid():
		return "unknown"
	case ip.Is4():
		return "[" + ip.String() + "]"
	default:
		return "[IPv6:" + ip.String() + "]"
	}
}

// heloForHeader keeps the client's HELO argument from breaking the header's
// structure: it is client-controlled, so comment and separator characters
// and anything outside printable ASCII become '_'.
func heloForHeader(h string) string {
	if h == "" {
		return "unknown"
	}
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`()<>;\"`, r) {
			return '_'
		}
		return r
	}, h)
}

// headerEndWithin is msgheader.EndWithin, for data.go's size check.
func headerEndWithin(msg []byte, limit int) (end int, ok bool) {
	return msgheader.EndWithin(msg, limit)
}

// countFields counts the fields called name (case-insensitive, RFC 5322
// §1.2.2) in the header section hdr, up to max.
func countFields(hdr []byte, name string, max int) int {
	h, _ := msgheader.ParseHeader(hdr) // what can be read counts
	return min(h.Count(name), max)
}

// buildMessage returns the message to store: the Received header, the
// client's header section with the extra fields appended, then the body.
// A message that does not end in CRLF (possible with BDAT) gets one, and a
// body that starts without the empty line after the added fields gets one,
// so the stored message is well-formed (RFC 5322 §2.1).
func buildMessage(received string, msg []byte, extra []string) []byte {
	if len(msg) > 0 && !bytes.HasSuffix(msg, []byte("\r\n")) {
		msg = append(msg, '\r', '\n')
	}
	m, _ := msgheader.Parse(msg) // the scan found only fields: nothing to fail
	for _, e := range extra {
		m.Header.AppendRaw([]byte(e)) // made by submissionFields: one field each
	}
	m.Header.AddRaw([]byte(received)) // made by receivedHeader: one field
	m.Sep = m.Sep || (len(extra) > 0 && len(m.Body) > 0)
	return m.Bytes()
}

// submissionFields returns the Message-ID and Date fields a submission
// listener adds when the client left them out (RFC 6409 §8.2, §8.3).
func submissionFields(msg []byte, hostname string, now time.Time) []string {
	h, _ := msgheader.ParseHeader(msg)
	var extra []string
	if !h.Has("Message-ID") {
		extra = append(extra, "Message-ID: "+msgheader.MessageID(hostname)+"\r\n") // RFC 5322 §3.6.4
	}
	if !h.Has("Date") {
		extra = append(extra, "Date: "+now.Format(time.RFC1123Z)+"\r\n") // RFC 5322 §3.6.1
	}
	return extra
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns n random bytes as lower-case base32: unique, and safe in a
// Received id and a log line.
func newID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return idEncoding.EncodeToString(b)
}
