// Package msgheader reads and rewrites the header section of a message
// (RFC 5322 §2.2), for every part of cuemta that touches one: reception
// (the Received trace field, a submission's Message-ID and Date), the
// message rules' addHeaders and removeHeaders, DSNs (the returned header
// section), sendmail and the admin API's injection. It is built on
// github.com/emersion/go-message/textproto, whose header keeps each field
// as it was read.
//
// Invariants, for a message with CRLF line endings (every stored message
// has them; callers with other input convert first, with CRLF):
//   - Field order, and the raw bytes of every field not deleted (its name's
//     spelling, its spacing and its folding), are kept byte for byte.
//   - The body is never parsed and is copied once, when the message is
//     written (Message.Bytes).
//   - Field names are compared case-insensitively (RFC 5322 §1.2.2), and
//     an added field keeps the spelling its caller gave ("Message-ID").
//   - An added field is folded by go-message at white space, to lines of at
//     most 76 octets where its value allows and never more than 998 (RFC
//     5322 §2.1.1), every line ending in CRLF; a name that is not an RFC
//     5322 field name, or a value with a CR or LF, is refused, so a value
//     can never add a field of its own.
//   - The header section ends where RFC 5322 §2.1 ends it: at the empty
//     line, or at the first line that is neither a field nor a
//     continuation, whose bytes then start the body (see End).
//
// MessageID makes the one kind of Message-ID cuemta writes.
package msgheader

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// End returns the offset where the header section of msg ends (RFC 5322
// §2.1): the start of the empty line, of the first line that is neither a
// field nor a continuation, or len(msg). sep reports whether an empty line
// is there, separating the header from the body. A message whose first
// line is a continuation has no header section.
func End(msg []byte) (end int, sep bool) {
	end, sep, _ = endWithin(msg, len(msg))
	return end, sep
}

// EndWithin is End for a header section of at most limit octets; ok is
// false for a longer one, found without reading further than limit.
func EndWithin(msg []byte, limit int) (end int, ok bool) {
	end, _, ok = endWithin(msg, limit)
	return end, ok
}

func endWithin(msg []byte, limit int) (end int, sep, ok bool) {
	for pos := 0; pos < len(msg); {
		if pos > limit {
			return pos, false, false
		}
		n := bytes.Index(msg[pos:], []byte("\r\n"))
		if n < 0 {
			n = len(msg) - pos
		}
		line := msg[pos : pos+n]
		switch {
		case len(line) == 0:
			return pos, true, pos <= limit
		case line[0] == ' ' || line[0] == '\t':
			if pos == 0 {
				return 0, false, true // a continuation of nothing
			}
		case !isField(line):
			return pos, false, pos <= limit
		}
		pos += n + 2
	}
	return len(msg), false, len(msg) <= limit
}

// isField reports whether line starts a header field: a field-name of
// printable ASCII but ':' (RFC 5322 §3.6.8), then ':' after optional WSP
// (the obsolete syntax of RFC 5322 §4.5).
func isField(line []byte) bool {
	i := 0
	for i < len(line) && line[i] > ' ' && line[i] < 0x7f && line[i] != ':' {
		i++
	}
	if i == 0 {
		return false
	}
	rest := bytes.TrimLeft(line[i:], " \t")
	return len(rest) > 0 && rest[0] == ':'
}

// CountField is the number of fields called name (case-insensitively) in
// the header section of msg as End finds it, counting no further than
// max: what ParseHeader(msg) then Count(name) gives for a message with
// CRLF line ends (FuzzCountField), without building the header. Reception
// counts Received fields with it on every message.
func CountField(msg []byte, name string, max int) int {
	end, _ := End(msg) // every line before end is a field or a continuation
	n := 0
	for line := range bytes.SplitSeq(msg[:end], []byte("\r\n")) {
		if n >= max {
			break
		}
		if len(line) > 0 && line[0] != ' ' && line[0] != '\t' && rawNamed(line, name) {
			n++
		}
	}
	return n
}

// Header is a header section: its fields in order, each as read or as
// added. The zero Header is empty and ready to use.
type Header struct {
	h textproto.Header
}

// ParseHeader reads a header section: fields only, as End finds them (a
// whole message may be given; what follows the section is ignored). The
// caller bounds its size (EndWithin). An error says where the header
// section cannot be read; the fields before it are returned.
func ParseHeader(section []byte) (Header, error) {
	end, _ := End(section)
	// A buffer the size of the section (bufio's 4 KiB is most of a small
	// message's garbage): every line fits in it.
	h, err := textproto.ReadHeader(bufio.NewReaderSize(bytes.NewReader(section[:end]), end+2))
	if err != nil {
		return Header{h}, fmt.Errorf("read the header section: %w", err)
	}
	return Header{h}, nil
}

// Len is the number of fields.
func (h *Header) Len() int { return h.h.Len() }

// Get returns the value of the first field called name (unfolded, without
// surrounding white space), or "".
func (h *Header) Get(name string) string {
	for n, v := range h.Fields() {
		if strings.EqualFold(n, name) {
			return v
		}
	}
	return ""
}

// Has reports whether a field is called name.
func (h *Header) Has(name string) bool { return h.Count(name) > 0 }

// Count is the number of fields called name.
func (h *Header) Count(name string) int {
	n := 0
	for f := range h.Fields() {
		if strings.EqualFold(f, name) {
			n++
		}
	}
	return n
}

// Values returns the values of the fields called name, in order.
func (h *Header) Values(name string) []string {
	var out []string
	for n, v := range h.Fields() {
		if strings.EqualFold(n, name) {
			out = append(out, v)
		}
	}
	return out
}

// Fields yields each field's name, as spelt, and value, top to bottom.
// The header must not change during the iteration.
func (h *Header) Fields() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		fs := h.h.Fields()
		for fs.Next() {
			raw, _ := fs.Raw() // read or added as raw bytes: never an error
			name, _, _ := bytes.Cut(raw, []byte(":"))
			if !yield(string(bytes.TrimRight(name, " \t")), fs.Value()) {
				return
			}
		}
	}
}

// Map returns the fields as a map from canonical name ("Message-Id") to
// values in order, for code that wants net/textproto's form.
func (h *Header) Map() map[string][]string { return h.h.Map() }

// Add adds the field name: value at the top of the header.
func (h *Header) Add(name, value string) error {
	raw, err := Format(name, value)
	if err != nil {
		return err
	}
	h.h.AddRaw(raw)
	return nil
}

// AddRaw adds a field already formatted and folded (a trace field) at the
// top of the header. It must be one whole field ending in CRLF.
func (h *Header) AddRaw(field []byte) error {
	if err := checkRaw(field); err != nil {
		return err
	}
	h.h.AddRaw(field)
	return nil
}

// Append adds the field name: value at the bottom of the header.
func (h *Header) Append(name, value string) error {
	raw, err := Format(name, value)
	if err != nil {
		return err
	}
	h.rebuild(func(raws [][]byte) [][]byte { return append(raws, raw) })
	return nil
}

// AppendRaw is AddRaw at the bottom of the header.
func (h *Header) AppendRaw(field []byte) error {
	if err := checkRaw(field); err != nil {
		return err
	}
	h.rebuild(func(raws [][]byte) [][]byte { return append(raws, field) })
	return nil
}

// Set replaces the first field called name with name: value, in its
// place, and deletes the others; without one, it appends the field.
func (h *Header) Set(name, value string) error {
	raw, err := Format(name, value)
	if err != nil {
		return err
	}
	h.rebuild(func(raws [][]byte) [][]byte {
		out, done := raws[:0], false
		for _, r := range raws {
			switch {
			case !rawNamed(r, name):
				out = append(out, r)
			case !done:
				out, done = append(out, raw), true
			}
		}
		if !done {
			out = append(out, raw)
		}
		return out
	})
	return nil
}

// Del deletes every field called name and returns how many there were.
func (h *Header) Del(name string) int {
	n := 0
	fs := h.h.Fields()
	for fs.Next() {
		if strings.EqualFold(fs.Key(), name) {
			fs.Del()
			n++
		}
	}
	return n
}

// Clone returns a header that changes independently of h.
func (h *Header) Clone() Header { return Header{h.h.Copy()} }

// Size is the length of the header's fields as written.
func (h *Header) Size() int {
	n := 0
	fs := h.h.Fields()
	for fs.Next() {
		raw, _ := fs.Raw()
		n += len(raw)
	}
	return n
}

// WriteTo writes the fields, without the empty line that ends a header
// section.
func (h *Header) WriteTo(w io.Writer) (int64, error) {
	var n int64
	fs := h.h.Fields()
	for fs.Next() {
		raw, _ := fs.Raw()
		k, err := w.Write(raw)
		n += int64(k)
		if err != nil {
			return n, fmt.Errorf("write header field %s: %w", fs.Key(), err)
		}
	}
	return n, nil
}

// Bytes returns the fields as written by WriteTo.
func (h *Header) Bytes() []byte {
	var b bytes.Buffer
	b.Grow(h.Size())
	h.WriteTo(&b) // a bytes.Buffer does not fail
	return b.Bytes()
}

// rebuild replaces the fields with edit(fields), each as raw bytes, top
// to bottom: go-message's header can only grow at the top.
func (h *Header) rebuild(edit func(raws [][]byte) [][]byte) {
	raws := make([][]byte, 0, h.h.Len()+1)
	fs := h.h.Fields()
	for fs.Next() {
		raw, _ := fs.Raw()
		raws = append(raws, raw)
	}
	raws = edit(raws)
	var t textproto.Header
	for i := len(raws) - 1; i >= 0; i-- {
		t.AddRaw(raws[i])
	}
	h.h = t
}

// rawNamed reports whether the raw field is called name.
func rawNamed(raw []byte, name string) bool {
	n, _, _ := bytes.Cut(raw, []byte(":"))
	return strings.EqualFold(string(bytes.TrimRight(n, " \t")), name)
}

// Format returns the field name: value as written: folded by go-message,
// ending in CRLF, name spelt as given. It refuses a name that is not an
// RFC 5322 §3.6.8 field-name (or too long for a line of its own, §2.1.1)
// and a value with a CR or LF (RFC 5322 §2.2).
func Format(name, value string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	key := name
	if len(name) > maxFoldName {
		key = "X"
	}
	var t textproto.Header
	t.Add(key, value)
	raw, err := t.Raw(key)
	if err != nil {
		return nil, fmt.Errorf("header field %s: %w", name, err)
	}
	if key == name {
		// go-message writes the canonical spelling ("Message-Id"), of
		// the same length: keep the caller's.
		copy(raw, name)
		return refold(raw), nil
	}
	// A long name: go-message's fold of the first line after it can
	// index out of range, so the value starts on a continuation line,
	// folded as after a one-letter name; "Name:" CRLF SP "value" unfolds
	// to "Name: value".
	if value == "" {
		return []byte(name + ": \r\n"), nil
	}
	return refold(append([]byte(name+":\r\n "), raw[len(key)+2:]...)), nil
}

// refold breaks the lines of a formatted field that are longer than 76
// octets at white space, before it: go-message keeps such a line when its
// first white space comes after 76 (two RFC 2047 words of 75 characters
// make one line of 150), and RFC 2047 §2 limits a line with encoded words
// to 76. A line with no white space to break at stays as go-message made
// it (at most 998 octets).
func refold(raw []byte) []byte {
	const limit = 76
	var out []byte
	first := true
	for line := range bytes.Lines(raw) {
		line = bytes.TrimSuffix(line, []byte("\r\n"))
		// Never break at the white space a continuation line starts
		// with, nor at the one after "Name:".
		from := 1
		if first {
			from = bytes.IndexByte(line, ':') + 2
			first = false
		}
		for len(line) > limit {
			// The last white space that leaves a line within limit, else
			// the first one after it.
			cut := -1
			if from <= limit {
				if i := bytes.LastIndexAny(line[from:limit+1], " \t"); i >= 0 {
					cut = from + i
				}
			}
			if cut < 0 {
				start := max(from, limit)
				next := -1
				if start < len(line) {
					next = bytes.IndexAny(line[start:], " \t")
				}
				if next < 0 {
					break
				}
				cut = start + next
			}
			out = append(append(out, line[:cut]...), '\r', '\n')
			line, from = line[cut:], 1
		}
		out = append(append(out, line...), '\r', '\n')
	}
	return out
}

// maxFoldName is the longest name after which go-message folds the first
// line of a field (tested by fuzzing; 74 panics).
const maxFoldName = 60

// checkName refuses what is not an RFC 5322 §3.6.8 field-name, printable
// US-ASCII but ':', or is too long for "Name: " to fit a line (§2.1.1).
func checkName(name string) error {
	if name == "" {
		return errors.New("header field with no name")
	}
	if len(name) > 996 {
		return fmt.Errorf("header field name of %d octets: at most 996 fit a line", len(name))
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return fmt.Errorf("header field name %q: %q is not allowed in a field name (RFC 5322 §3.6.8)", name, c)
		}
	}
	return nil
}

// checkRaw makes sure a raw field is one whole field, CRLF-terminated,
// with no bare CR or LF.
func checkRaw(field []byte) error {
	end, sep := End(field)
	if len(field) == 0 || end != len(field) || sep || !bytes.HasSuffix(field, []byte("\r\n")) ||
		bytes.Count(field, []byte("\r")) != bytes.Count(field, []byte("\r\n")) ||
		bytes.Count(field, []byte("\n")) != bytes.Count(field, []byte("\r\n")) {
		return fmt.Errorf("%q is not one header field ending in CRLF", field)
	}
	if n := bytes.Count(field, []byte("\r\n")) - bytes.Count(field, []byte("\r\n ")) - bytes.Count(field, []byte("\r\n\t")); n != 1 {
		return fmt.Errorf("%q is %d header fields, not one", field, n)
	}
	return nil
}

// Message is a message split into its header section and its body.
type Message struct {
	Header Header
	// Body is what follows the header section and the empty line after
	// it; it shares the parsed message's memory.
	Body []byte
	// Sep says whether an empty line separates Header and Body when the
	// message is written. Parse sets it when the message had one: a
	// message without one is written back without one, unless the body
	// would then read as more header (see WriteTo).
	Sep bool
}

// Parse splits msg into its header section and body; the caller bounds
// the size of the header section (EndWithin). The body is not copied.
func Parse(msg []byte) (*Message, error) {
	end, sep := End(msg)
	h, err := ParseHeader(msg[:end])
	m := &Message{Header: h, Body: msg[end:], Sep: sep}
	if sep {
		m.Body = msg[end+2:]
	}
	return m, err
}

// Bytes returns the message: header fields, the empty line if Sep, the
// body; the body is copied once, into the one allocation.
func (m *Message) Bytes() []byte {
	n := m.Header.Size() + len(m.Body)
	if m.sep() {
		n += 2
	}
	b := bytes.NewBuffer(make([]byte, 0, n))
	m.WriteTo(b) // a bytes.Buffer does not fail
	return b.Bytes()
}

// WriteTo writes the message as Bytes returns it.
func (m *Message) WriteTo(w io.Writer) (int64, error) {
	n, err := m.Header.WriteTo(w)
	if err != nil {
		return n, err
	}
	if m.sep() {
		k, err := io.WriteString(w, "\r\n")
		n += int64(k)
		if err != nil {
			return n, fmt.Errorf("write the empty line after the header: %w", err)
		}
	}
	k, err := w.Write(m.Body)
	n += int64(k)
	if err != nil {
		return n, fmt.Errorf("write the body: %w", err)
	}
	return n, nil
}

// sep reports whether the empty line is written: when Sep says so, and
// when the body would otherwise continue the last field or read as a
// field of its own. Parse gives such a body only to a message whose first
// line is a continuation (no header section); once fields are added, that
// line must not continue the last of them.
func (m *Message) sep() bool {
	if m.Sep {
		return true
	}
	if m.Header.Len() == 0 || len(m.Body) == 0 {
		return false
	}
	line, _, _ := bytes.Cut(m.Body, []byte("\r\n"))
	return len(line) > 0 && (line[0] == ' ' || line[0] == '\t' || isField(line))
}

// CRLF returns b with every line ending, CRLF, LF or a lone CR, made
// CRLF (RFC 5322 §2.3). b itself is returned when it has no bare CR or
// LF, so a stored message is not copied.
func CRLF(b []byte) []byte {
	n := bytes.Count(b, []byte("\r\n"))
	if bytes.Count(b, []byte("\r")) == n && bytes.Count(b, []byte("\n")) == n {
		return b
	}
	out := make([]byte, 0, len(b)+len(b)/32)
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '\r':
			if i+1 < len(b) && b[i+1] == '\n' {
				i++
			}
			out = append(out, '\r', '\n')
		case '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, c)
		}
	}
	return out
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// MessageID returns a new Message-ID field value, <random@host> (RFC 5322
// §3.6.4): 128 bits from crypto/rand as lower-case base32 (a dot-atom-text,
// unique without a clock), at the host that made it ("localhost" when
// host is empty).
func MessageID(host string) string {
	if host == "" {
		host = "localhost"
	}
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24)
	return "<" + idEncoding.EncodeToString(b[:]) + "@" + host + ">"
}
