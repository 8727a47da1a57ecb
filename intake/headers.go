package intake

import (
	"bufio"
	"bytes"
	"net/textproto"
	"strings"

	"github.com/cuemta/cuemta/rules"
)

// splitHeader returns the header block (through its terminating blank
// line) and the body. A message without a blank line is all header.
func splitHeader(msg []byte) (header, body []byte) {
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		return msg[:i+4], msg[i+4:]
	}
	return msg, nil
}

// parseHeader reads the header fields of a message; a malformed header
// yields what could be read before the problem.
func parseHeader(header []byte) textproto.MIMEHeader {
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(header)))
	h, _ := r.ReadMIMEHeader()
	return h
}

// rewriteHeader removes every field named in remove (case-insensitive,
// with its continuation lines) and prepends the fields in add.
func rewriteHeader(msg []byte, add []rules.Header, remove []string) []byte {
	if len(add) == 0 && len(remove) == 0 {
		return msg
	}
	header, body := splitHeader(msg)
	var out bytes.Buffer
	out.Grow(len(msg) + 128*len(add))
	for _, h := range add {
		out.WriteString(h.Name)
		out.WriteString(": ")
		out.WriteString(sanitizeHeaderValue(h.Value))
		out.WriteString("\r\n")
	}
	skipping := false
	for len(header) > 0 {
		line := header
		if i := bytes.Index(header, []byte("\r\n")); i >= 0 {
			line = header[:i+2]
		}
		header = header[len(line):]
		continuation := len(line) > 0 && (line[0] == ' ' || line[0] == '\t')
		if !continuation {
			skipping = false
			if name, _, ok := bytes.Cut(line, []byte(":")); ok {
				for _, r := range remove {
					if strings.EqualFold(strings.TrimSpace(string(name)), r) {
						skipping = true
						break
					}
				}
			}
		}
		if !skipping {
			out.Write(line)
		}
	}
	out.Write(body)
	return out.Bytes()
}

// sanitizeHeaderValue keeps a rule-supplied value on one header line, so
// a rule can never inject extra header fields.
func sanitizeHeaderValue(v string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
}
