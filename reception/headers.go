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
	return msgheader.CountField(hdr, name, max) // what can be read counts
}

// buildMessage returns the message to store: the Received header, the
// client's header section with the extra fields appended, then the body.
// A message that does not end in CRLF (possible with BDAT) gets one, and a
// body that starts without the empty line after the added fields gets one,
// so the stored message is well-formed (RFC 5322 §2.1). It is
// placeMessage on a fresh buffer.
func buildMessage(received string, msg []byte, extra []string) []byte {
	front := headroom(received, extra)
	buf := make([]byte, front+len(msg)+2)
	copy(buf[front:], msg)
	return placeMessage(buf, front, len(msg), received, extra)
}

// headroom is the room placeMessage needs before the message.
func headroom(received string, extra []string) int {
	n := len(received) + 2
	for _, e := range extra {
		n += len(e)
	}
	return n
}

// placeMessage is buildMessage in place: buf holds the message at
// [front:front+n], with at least headroom(received, extra) bytes before it
// and 2 after. The body is not moved; only the header section, which is
// bounded (maxHeaderSize), moves to make room for the extra fields.
func placeMessage(buf []byte, front, n int, received string, extra []string) []byte {
	msg := buf[front : front+n]
	if n > 0 && !bytes.HasSuffix(msg, []byte("\r\n")) {
		buf[front+n], buf[front+n+1] = '\r', '\n'
		n += 2
		msg = buf[front : front+n]
	}
	end, sep := msgheader.End(msg)
	k := 0
	for _, e := range extra {
		k += len(e)
	}
	// A body without the empty line that separates it from the header
	// gets one when fields are added after the header, or when its first
	// line is a continuation (no header at all): otherwise that line
	// would be read as part of the field placed before it.
	crlf := !sep && end < n && (len(extra) > 0 || msg[0] == ' ' || msg[0] == '\t')
	if crlf {
		k += 2
	}
	if k > 0 {
		copy(buf[front-k:], msg[:end])
		at := front - k + end
		for _, e := range extra {
			at += copy(buf[at:], e)
		}
		if crlf {
			copy(buf[at:], "\r\n")
		}
	}
	start := front - k - len(received)
	copy(buf[start:], received)
	return buf[start : front+n]
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

// submissionFieldsMax returns the fields submissionFields adds to a
// message that has neither, for the room to leave before a message.
func submissionFieldsMax(hostname string, now time.Time) []string {
	return submissionFields(nil, hostname, now)
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns n random bytes as lower-case base32: unique, and safe in a
// Received id and a log line.
func newID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return idEncoding.EncodeToString(b)
}
