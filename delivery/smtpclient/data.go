package smtpclient

import (
	"bufio"
	"bytes"
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
	var n int64
	eachLine(body, func(l []byte) { n += int64(len(l)) + 2 })
	return n
}

// writeData writes body with CRLF line endings and a final CRLF,
// dot-stuffed (RFC 5321 §4.5.2), followed by the terminating ".".
func writeData(w *bufio.Writer, body []byte) error {
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

func has8bit(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}
