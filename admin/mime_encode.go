package admin

import (
	"bytes"
	"encoding/base64"
	"mime"
	"mime/quotedprintable"
	"strings"
)

// maxLine is the line length above which text is transfer-encoded: RFC
// 5322 recommends 78; 998 is the hard limit that relays enforce.
const maxLine = 78

// crlf converts any mix of CRLF, LF and lone CR line breaks to CRLF.
func crlf(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return strings.ReplaceAll(s, "\n", "\r\n")
}

// textEncoding picks the transfer encoding of a text part: 7bit for short
// ASCII lines, else the shorter of quoted-printable (readable, best for
// Latin scripts) and base64 (best for mostly non-ASCII text, where
// quoted-printable triples the size).
func textEncoding(s string) string {
	nonASCII, longLine, lineLen := 0, false, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\n':
			lineLen = 0
			continue
		case c == '\r':
			continue
		case c >= 0x80:
			nonASCII++
		case c == 0:
			nonASCII++ // NUL is not allowed in 7bit text
		}
		lineLen++
		if lineLen > maxLine {
			longLine = true
		}
	}
	switch {
	case nonASCII == 0 && !longLine:
		return "7bit"
	case len(s)+2*nonASCII > len(s)*4/3:
		return "base64"
	default:
		return "quoted-printable"
	}
}

// encodeText returns s (any line breaks) encoded with cte. A final line
// break is kept as is, none is added: in a multipart the CRLF before the
// next boundary belongs to the boundary.
func encodeText(s, cte string) []byte {
	var buf bytes.Buffer
	switch cte {
	case "7bit":
		buf.WriteString(crlf(s))
	case "quoted-printable":
		// The writer turns LF into CRLF (text mode). Every line break,
		// a bare CR included, becomes LF first, as crlf does: the writer
		// drops the LF of a CR, an encoded byte, then LF.
		qp := quotedprintable.NewWriter(&buf)
		qp.Write([]byte(strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")))
		qp.Close()
	default:
		writeBase64(&buf, []byte(crlf(s)))
	}
	return buf.Bytes()
}

// writeBase64 writes data as base64 in lines of 76 characters.
func writeBase64(buf *bytes.Buffer, data []byte) {
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 76 {
		buf.WriteString(enc[:76])
		buf.WriteString("\r\n")
		enc = enc[76:]
	}
	if enc != "" {
		buf.WriteString(enc)
		buf.WriteString("\r\n")
	}
}

// encodeWord encodes an unstructured header value (RFC 2047) when it is not
// plain ASCII; ASCII values are returned unchanged.
func encodeWord(s string) string { return mime.QEncoding.Encode("utf-8", s) }

// writeHeader writes "Name: value" folded at spaces to lines of at most 78
// characters where the value allows.
func writeHeader(buf *bytes.Buffer, name, value string) {
	line := len(name) + 1
	buf.WriteString(name)
	buf.WriteString(":")
	for i, word := range strings.Split(value, " ") {
		if i > 0 && line+1+len(word) > maxLine && line > 1 {
			buf.WriteString("\r\n")
			line = 0
		}
		buf.WriteString(" ")
		buf.WriteString(word)
		line += 1 + len(word)
	}
	buf.WriteString("\r\n")
}
