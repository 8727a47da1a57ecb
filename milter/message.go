package milter

import (
	"bytes"
	"fmt"
	"strings"

	gomilter "github.com/d--j/go-milter"

	"github.com/cuemta/cuemta/internal/msgheader"
)

// message is a message as the filters see and change it: its header
// fields, each kept as its raw bytes (folding and CRLF included), and its
// body. Fields no filter touches are written back byte for byte.
type message struct {
	fields [][]byte
	body   []byte // what follows the empty line
	sep    bool   // an empty line ended the header section
}

// parseMessage splits a stored message (CRLF line endings, as reception
// guarantees) into its fields and body.
func parseMessage(b []byte) *message {
	end, sep := msgheader.End(b)
	m := &message{sep: sep}
	hdr := b[:end]
	for len(hdr) > 0 {
		n := bytes.Index(hdr, []byte("\r\n"))
		if n < 0 {
			n = len(hdr)
		} else {
			n += 2
		}
		line := hdr[:n]
		if (line[0] == ' ' || line[0] == '\t') && len(m.fields) > 0 {
			last := len(m.fields) - 1
			m.fields[last] = append(m.fields[last], line...)
		} else {
			m.fields = append(m.fields, append([]byte(nil), line...))
		}
		hdr = hdr[n:]
	}
	m.body = b[end:]
	if sep {
		m.body = b[end+2:]
	}
	return m
}

// bytes writes the message back.
func (m *message) bytes() []byte {
	n := len(m.body) + 2
	for _, f := range m.fields {
		n += len(f)
	}
	out := make([]byte, 0, n)
	for _, f := range m.fields {
		out = append(out, f...)
	}
	if m.sep || len(m.body) > 0 {
		out = append(out, '\r', '\n')
	}
	return append(out, m.body...)
}

// fieldName is the name of a raw field, as spelt.
func fieldName(raw []byte) string {
	name, _, _ := bytes.Cut(raw, []byte(":"))
	return string(bytes.TrimRight(name, " \t"))
}

// fieldValue is a raw field's value as Sendmail sends it to a filter:
// everything after the colon, without the final CRLF, folds as LF (the
// line ending inside Sendmail and Postfix), and without the white space
// after the colon unless the filter negotiated SMFIP_HDR_LEADSPC.
func fieldValue(raw []byte, leadingSpace bool) string {
	_, v, _ := bytes.Cut(raw, []byte(":"))
	v = bytes.TrimSuffix(v, []byte("\r\n"))
	if !leadingSpace {
		v = bytes.TrimLeft(v, " \t")
	}
	return strings.ReplaceAll(string(v), "\r\n", "\n")
}

// formatField makes the raw field for a header a filter adds or changes.
// Its value's line breaks (LF, CRLF or CR) become CRLF folds; a line that
// would not read as a continuation (no leading white space) gets a tab,
// and an empty line is left out, so a value can never end the header
// section or start a field of its own.
func formatField(name, value string, leadingSpace bool) ([]byte, error) {
	if name == "" {
		return nil, fmt.Errorf("header field with no name")
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return nil, fmt.Errorf("header field name %q: %q is not allowed in a field name (RFC 5322 §3.6.8)", name, c)
		}
	}
	value = strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(value)
	var b bytes.Buffer
	b.WriteString(name)
	b.WriteByte(':')
	if !leadingSpace {
		b.WriteByte(' ')
	}
	for i, line := range strings.Split(value, "\n") {
		if i > 0 {
			if strings.TrimLeft(line, " \t") == "" {
				continue
			}
			b.WriteString("\r\n")
			if line[0] != ' ' && line[0] != '\t' {
				b.WriteByte('\t')
			}
		}
		b.WriteString(line)
	}
	b.WriteString("\r\n")
	return b.Bytes(), nil
}

// apply makes the changes a filter sent with its end-of-message reply,
// in their order, with Sendmail's semantics (libmilter's smfi_addheader,
// smfi_chgheader, smfi_insheader, smfi_replacebody). It returns what it
// did, for the log.
func (m *message) apply(acts []gomilter.ModifyAction, leadingSpace bool) ([]string, error) {
	var done []string
	var newBody []byte
	replaced := false
	for _, a := range acts {
		switch a.Type {
		case gomilter.ActionAddHeader:
			f, err := formatField(a.HeaderName, a.HeaderValue, leadingSpace)
			if err != nil {
				return nil, fmt.Errorf("add header: %w", err)
			}
			m.fields = append(m.fields, f)
			done = append(done, "add "+a.HeaderName)
		case gomilter.ActionInsertHeader:
			f, err := formatField(a.HeaderName, a.HeaderValue, leadingSpace)
			if err != nil {
				return nil, fmt.Errorf("insert header: %w", err)
			}
			// The index counts every field: 0 is the top; past the end
			// appends.
			i := min(int(a.HeaderIndex), len(m.fields))
			m.fields = append(m.fields[:i], append([][]byte{f}, m.fields[i:]...)...)
			done = append(done, "insert "+a.HeaderName)
		case gomilter.ActionChangeHeader:
			if err := m.change(a.HeaderName, int(a.HeaderIndex), a.HeaderValue, leadingSpace); err != nil {
				return nil, fmt.Errorf("change header: %w", err)
			}
			if a.HeaderValue == "" {
				done = append(done, "delete "+a.HeaderName)
			} else {
				done = append(done, "change "+a.HeaderName)
			}
		case gomilter.ActionReplaceBody:
			// Successive chunks make up the new body.
			newBody = append(newBody, a.Body...)
			replaced = true
		case gomilter.ActionQuarantine:
			// Handled by the caller, which logs and counts it.
		default:
			// The negotiation offered no envelope change.
			return nil, fmt.Errorf("filter sent %s, which was not offered", a)
		}
	}
	if replaced {
		m.body = crlf(newBody)
		m.sep = true
		done = append(done, "replace body")
	}
	return done, nil
}

// change is smfi_chgheader: the index-th field called name (1-based,
// case-insensitive) gets value, or goes when value is empty; with fewer
// such fields, a non-empty value is added at the bottom.
func (m *message) change(name string, index int, value string, leadingSpace bool) error {
	n := 0
	for i, f := range m.fields {
		if !strings.EqualFold(fieldName(f), name) {
			continue
		}
		if n++; n != index {
			continue
		}
		if value == "" {
			m.fields = append(m.fields[:i], m.fields[i+1:]...)
			return nil
		}
		raw, err := formatField(name, value, leadingSpace)
		if err != nil {
			return err
		}
		m.fields[i] = raw
		return nil
	}
	if value == "" {
		return nil
	}
	raw, err := formatField(name, value, leadingSpace)
	if err != nil {
		return err
	}
	m.fields = append(m.fields, raw)
	return nil
}

// crlf gives every line of b a CRLF ending: a lone LF or CR becomes CRLF,
// so a replaced body keeps reception's promise that a stored message has
// no bare line ending (the SMTP smuggling defence).
func crlf(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/32)
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '\r':
			out = append(out, '\r', '\n')
			if i+1 < len(b) && b[i+1] == '\n' {
				i++
			}
		case '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, c)
		}
	}
	return out
}
