package smtpclient

import (
	"bufio"
	"bytes"
	"encoding/binary"
)

// eachLine calls fn with every line of body, without its terminator.
// CRLF, bare LF and bare CR all end a line: the body goes out with CRLF
// only (RFC 5321 §2.3.8), which also defeats SMTP smuggling through bare
// line endings. A final line without terminator is still a line.
func eachLine(body []byte, fn func(line []byte)) {
	for len(body) > 0 {
		i := bytes.IndexAny(body, "\r\n")
		if i < 0 {
			fn(body)
			return
		}
		fn(body[:i])
		if body[i] == '\r' && i+1 < len(body) && body[i+1] == '\n' {
			i++
		}
		body = body[i+1:]
	}
}

// messageSize is the size of body as sent, with CRLF line endings and
// without transparency dots (the SIZE parameter, RFC 1870 §3).
func messageSize(body []byte) int64 {
	if crlfOnly(body) {
		// Each line already ends in CRLF but perhaps the last.
		if len(body) > 0 && !bytes.HasSuffix(body, crlf) {
			return int64(len(body)) + 2
		}
		return int64(len(body))
	}
	var n int64
	eachLine(body, func(l []byte) { n += int64(len(l)) + 2 })
	return n
}

var crlf = []byte("\r\n")

// crlfOnly reports whether every CR and every LF of b is part of a CRLF
// (CRLFs cannot overlap, so equal counts say each LF and each CR is in
// one). bytes.Count runs vectorised: far cheaper than a line loop.
func crlfOnly(b []byte) bool {
	n := bytes.Count(b, crlf)
	return bytes.Count(b, crlf[1:]) == n && bytes.Count(b, crlf[:1]) == n
}

// wireReady reports whether body goes out as it is: CRLF line endings
// only and no line starting with a dot, so neither line-ending repair nor
// dot-stuffing changes a byte. Mail from the spool nearly always is.
func wireReady(body []byte) bool {
	return len(body) > 0 && body[0] != '.' && !bytes.Contains(body, []byte("\n.")) && crlfOnly(body)
}

// writeData writes body with CRLF line endings and a final CRLF,
// dot-stuffed (RFC 5321 §4.5.2), followed by the terminating ".".
// A wireReady body is written whole: bufio writes a body larger than its
// free space straight to the connection (one write, no copy) instead of
// a write per buffer-full, so a message costs two writes at most, one
// with a body that fits the buffer.
func writeData(w *bufio.Writer, body []byte) error {
	if wireReady(body) {
		if len(body) > w.Available() {
			if err := w.Flush(); err != nil {
				return err
			}
		}
		w.Write(body)
		if !bytes.HasSuffix(body, crlf) {
			w.WriteString("\r\n")
		}
		w.WriteString(".\r\n")
		return w.Flush()
	}
	eachLine(body, func(l []byte) {
		if len(l) > 0 && l[0] == '.' {
			w.WriteByte('.')
		}
		w.Write(l)
		w.WriteString("\r\n")
	})
	w.WriteString(".\r\n")
	return w.Flush()
}

// has8bit reports whether b has a byte above 0x7F, eight bytes at a time
// (it runs over every body before MAIL FROM, for BODY=8BITMIME).
func has8bit(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b)&0x8080808080808080 != 0 {
			return true
		}
		b = b[8:]
	}
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}
