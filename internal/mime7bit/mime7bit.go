// Package mime7bit converts a message with 8-bit body data into one that
// a 7-bit transport may carry: what an MTA must do before relaying to a
// server that does not offer 8BITMIME (RFC 6152 §3, RFC 1652 §3 item 1),
// and what a DKIM signer should do before signing (RFC 6376 §5.3).
//
// Invariants of Convert:
//   - Every body part that holds a byte above 0x7F is re-encoded, and only
//     those: quoted-printable for text that is mostly ASCII, base64 for
//     the rest (RFC 2045 §6). Decoding a converted part gives back its
//     original bytes.
//   - multipart/* and message/rfc822 entities are never encoded
//     themselves (RFC 2045 §6.4, RFC 2046 §5.2.1): their parts are, walked
//     recursively, and their own 8bit/binary label becomes 7bit.
//   - Everything else is kept byte for byte: header fields (other than a
//     replaced Content-Transfer-Encoding, which stays in its place), parts
//     without 8-bit data, boundaries and preamble. A message without 8-bit
//     body data comes back unchanged (the same slice).
//   - Header fields are never changed to remove 8-bit data: UTF-8 headers
//     need SMTPUTF8 (RFC 6532), which no body encoding can replace.
//   - A message whose structure makes conversion impossible (a multipart
//     without its boundary, 8-bit data in a part that claims to be base64)
//     is an error wrapping ErrUnconvertible, not a guess.
//
// A message without MIME header fields is plain RFC 5322 text of unknown
// charset. As RFC 1428 §3 asks of a gateway that makes such mail MIME, it
// gets MIME-Version, a Content-Type and a Content-Transfer-Encoding, added
// at the end of its header: the charset is "utf-8" when the body is valid
// UTF-8 (then almost certainly what it is) and RFC 1428's "unknown-8bit"
// otherwise.
//
// Headers are parsed with github.com/emersion/go-message/textproto, which
// keeps each field's raw bytes. The multipart walk is this package's own,
// because go-message's multipart reader drops the preamble, the epilogue
// and the boundary lines' padding, and conversion must keep them.
package mime7bit

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/textproto"
)

// ErrUnconvertible is wrapped by every error of Convert: the message
// cannot be made 7-bit without guessing at its structure. For delivery it
// is a permanent failure (RFC 3463 X.6.3, conversion required but not
// supported).
var ErrUnconvertible = errors.New("message cannot be converted to 7-bit")

// maxDepth bounds multipart and message/rfc822 nesting. RFC 2046 sets no
// limit; mail clients give up far earlier than this.
const maxDepth = 50

// Has8bit reports whether b has a byte above 0x7F.
func Has8bit(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// BodyHas8bit reports whether the body of msg (after its header) has a
// byte above 0x7F: whether Convert has anything to do.
func BodyHas8bit(msg []byte) bool {
	_, body := split(msg)
	return Has8bit(body)
}

// Convert returns msg (CRLF line endings, as received) with its 8-bit body
// data re-encoded as the package comment describes.
func Convert(msg []byte) ([]byte, error) {
	if !BodyHas8bit(msg) {
		return msg, nil
	}
	var out bytes.Buffer
	out.Grow(len(msg) + len(msg)/3)
	if err := convertEntity(&out, msg, kindMessage, 0); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// kind is where an entity sits, which decides its default content type
// (RFC 2045 §5.2, RFC 2046 §5.1.5) and whether MIME-Version belongs in it.
type kind int

const (
	kindMessage    kind = iota // a whole message, top level or message/rfc822
	kindPart                   // a body part of a multipart
	kindDigestPart             // a body part of a multipart/digest
)

func unconvertible(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnconvertible, fmt.Sprintf(format, args...))
}

// split cuts an entity at the blank line that ends its header. The header
// keeps its last CRLF; an entity without a blank line is all header.
func split(ent []byte) (header, body []byte) {
	if bytes.HasPrefix(ent, []byte("\r\n")) {
		return nil, ent[2:]
	}
	if i := bytes.Index(ent, []byte("\r\n\r\n")); i >= 0 {
		return ent[:i+2], ent[i+4:]
	}
	return ent, nil
}

func convertEntity(w *bytes.Buffer, ent []byte, k kind, depth int) error {
	rawHeader, body := split(ent)
	if !Has8bit(body) {
		w.Write(ent)
		return nil
	}
	if depth > maxDepth {
		return unconvertible("MIME structure nested deeper than %d levels", maxDepth)
	}
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(append(bytes.Clone(rawHeader), '\r', '\n'))))
	if err != nil {
		return unconvertible("header: %v", err)
	}
	hasType := h.Has("Content-Type")
	mediaType, params := "text/plain", map[string]string(nil)
	if k == kindDigestPart {
		mediaType = "message/rfc822" // RFC 2046 §5.1.5
	}
	if hasType {
		t, p, err := mime.ParseMediaType(h.Get("Content-Type"))
		switch {
		case err == nil:
			mediaType, params = strings.ToLower(t), p
		case strings.HasPrefix(strings.ToLower(strings.TrimSpace(h.Get("Content-Type"))), "multipart/"):
			// A multipart whose parameters do not parse has no usable
			// boundary; anything else unreadable is treated as unknown
			// data, which RFC 2045 §5.2 says to read as text/plain.
			return unconvertible("Content-Type %q: %v", h.Get("Content-Type"), err)
		}
	}
	var add []string
	if k == kindMessage && !h.Has("Mime-Version") {
		add = append(add, "MIME-Version: 1.0")
	}
	cte := strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding")))
	switch {
	case strings.HasPrefix(mediaType, "multipart/"):
		boundary := params["boundary"]
		if boundary == "" {
			return unconvertible("%s without a boundary", mediaType)
		}
		writeHeader(w, h, identityLabel(cte), add)
		return convertMultipart(w, body, boundary, mediaType == "multipart/digest", depth)
	case mediaType == "message/rfc822":
		writeHeader(w, h, identityLabel(cte), add)
		return convertEntity(w, body, kindMessage, depth+1)
	}
	switch cte {
	case "", "7bit", "8bit", "binary":
	default:
		// base64 and quoted-printable data are 7-bit by definition: 8-bit
		// bytes in them mean the label is wrong, and re-encoding would
		// encode the encoding.
		return unconvertible("8-bit data in a part labelled %q", cte)
	}
	if !hasType && strings.HasPrefix(mediaType, "text/") {
		// RFC 2045 §5.2's default, us-ascii, is wrong for 8-bit text.
		charset := "unknown-8bit" // RFC 1428 §3
		if utf8.Valid(body) {
			charset = "utf-8"
		}
		add = append(add, "Content-Type: text/plain; charset="+charset)
	}
	text := strings.HasPrefix(mediaType, "text/") && cte != "binary"
	if text && mostlyASCII(body) {
		writeHeader(w, h, "quoted-printable", add)
		qp := quotedprintable.NewWriter(w)
		qp.Write(body) // a bytes.Buffer never fails
		qp.Close()
		return nil
	}
	writeHeader(w, h, "base64", add)
	writeBase64(w, body)
	return nil
}

// identityLabel is the Content-Transfer-Encoding a multipart or message
// entity gets once its parts are 7-bit: "" keeps the field as it is.
func identityLabel(cte string) string {
	if cte == "8bit" || cte == "binary" {
		return "7bit"
	}
	return ""
}

// mostlyASCII reports fewer than one byte in six above 0x7F: then
// quoted-printable (3 bytes per 8-bit byte) is smaller than base64 (4 per
// 3) and the text stays readable.
func mostlyASCII(b []byte) bool {
	n := 0
	for _, c := range b {
		if c >= 0x80 {
			n++
		}
	}
	return n*6 < len(b)
}

// writeHeader writes h in its order with raw fields, the
// Content-Transfer-Encoding replaced by cte in place (or added, cte ""
// leaves it as is), then the fields of add, then the blank line.
func writeHeader(w *bytes.Buffer, h textproto.Header, cte string, add []string) {
	written := cte == ""
	for f := h.Fields(); f.Next(); {
		if f.Key() == "Content-Transfer-Encoding" && cte != "" {
			if !written {
				w.WriteString("Content-Transfer-Encoding: " + cte + "\r\n")
				written = true
			}
			continue // a duplicate label goes with the one replaced
		}
		raw, err := f.Raw()
		if err != nil {
			// Only fields added by name can fail; every field here was read.
			panic(fmt.Sprintf("mime7bit: raw header field: %v", err))
		}
		w.Write(raw)
	}
	for _, a := range add {
		w.WriteString(a + "\r\n")
	}
	if !written {
		w.WriteString("Content-Transfer-Encoding: " + cte + "\r\n")
	}
	w.WriteString("\r\n")
}

// writeBase64 encodes b in lines of 76 characters (RFC 2045 §6.8), ending
// with CRLF when b did: a part's last CRLF before its boundary belongs to
// the boundary (RFC 2046 §5.1.1), a whole body's last one to the body.
func writeBase64(w *bytes.Buffer, b []byte) {
	enc := make([]byte, base64.StdEncoding.EncodedLen(len(b)))
	base64.StdEncoding.Encode(enc, b)
	for len(enc) > 0 {
		n := min(76, len(enc))
		w.Write(enc[:n])
		enc = enc[n:]
		if len(enc) > 0 {
			w.WriteString("\r\n")
		}
	}
	if bytes.HasSuffix(b, []byte("\r\n")) {
		w.WriteString("\r\n")
	}
}

// convertMultipart walks the parts between the boundary's delimiter lines
// (RFC 2046 §5.1.1), converting each and keeping the delimiters as they
// were. A missing close delimiter ends the last part at the end of the
// body, as mail clients read it.
func convertMultipart(w *bytes.Buffer, body []byte, boundary string, digest bool, depth int) error {
	dash := []byte("--" + boundary)
	partKind := kindPart
	if digest {
		partKind = kindDigestPart
	}
	seen := false // a delimiter line was found
	closed := false
	start := 0 // start of the current segment (preamble, part or epilogue)
	for line := 0; line <= len(body) && !closed; {
		end := bytes.Index(body[line:], []byte("\r\n"))
		next := line + end + 2
		if end < 0 {
			end, next = len(body)-line, len(body)+1
		}
		l := body[line : line+end]
		if bytes.HasPrefix(l, dash) {
			rest := l[len(dash):]
			isClose := bytes.HasPrefix(rest, []byte("--"))
			if isClose || len(bytes.TrimRight(rest, " \t")) == 0 {
				// The CRLF before a delimiter belongs to it.
				segEnd := line
				if line > 0 {
					segEnd = line - 2
				}
				if err := writeSegment(w, body[start:max(start, segEnd)], seen, partKind, depth); err != nil {
					return err
				}
				w.Write(body[max(start, segEnd):min(next, len(body))])
				seen, closed, start = true, isClose, min(next, len(body))
			}
		}
		line = next
	}
	if !seen {
		return unconvertible("multipart boundary %q not found in the body", boundary)
	}
	if closed {
		w.Write(sanitize(body[start:])) // the epilogue
		return nil
	}
	return writeSegment(w, body[start:], true, partKind, depth)
}

// writeSegment writes what lies between two delimiters: a part, converted,
// or the preamble (before the first), which RFC 2046 §5.1.1 says readers
// ignore, so 8-bit bytes in it become "?".
func writeSegment(w *bytes.Buffer, seg []byte, part bool, k kind, depth int) error {
	if !part {
		w.Write(sanitize(seg))
		return nil
	}
	return convertEntity(w, seg, k, depth+1)
}

// sanitize replaces bytes above 0x7F with "?" in text no reader shows.
func sanitize(b []byte) []byte {
	if !Has8bit(b) {
		return b
	}
	out := bytes.Clone(b)
	for i, c := range out {
		if c >= 0x80 {
			out[i] = '?'
		}
	}
	return out
}
