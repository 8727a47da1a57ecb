package intake

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cuemta/cuemta/internal/msgheader"
	"github.com/cuemta/cuemta/rules"
)

// FuzzRewriteHeader applies a rule's addHeaders/removeHeaders to a message.
// The names and values come from configuration (schema: addHeaders?:
// [string]: string), so they are fuzzed too. Invariants, for a message with
// CRLF line endings (as reception stores it):
//   - what follows the header section (RFC 5322 §2.1: from the empty line,
//     or from the first line that is neither a field nor a continuation)
//     is unchanged, byte for byte;
//   - the header section is made of complete CRLF lines;
//   - the output starts with the added fields, each "Name: value" once
//     unfolded (folding inserts CRLF before white space only, RFC 5322
//     §2.2.3), with a field name of printable ASCII without ':', in lines
//     of at most 998 octets;
//   - no field named in remove is left among the original fields;
//   - the original fields not removed keep their order and bytes.
func FuzzRewriteHeader(f *testing.F) {
	msg := "Received: from a\r\n by b\r\nX-Tenant: free\r\nSubject: hi\r\nx-tenant: again\r\n\r\nbody X-Tenant: stays\r\n"
	f.Add(msg, "X-Pool", "warm", "X-Tenant")
	f.Add(msg, "X-Pool", "warm\r\nBcc: evil@example.com", "received")
	f.Add(msg, "", "", "Subject")
	f.Add("Subject: no body\r\n\r\n", "X-A", "1", "")
	f.Add("A: 1\r\n\tcontinued\r\nB: 2\r\n\r\n\r\nbody\r\n\r\n", "B", "new", " a ")
	f.Fuzz(func(t *testing.T, header, name, value, remove string) {
		// The stored form: reception's Received field first, then the
		// client's lines, each CRLF-terminated, an empty line, the body.
		var hb strings.Builder
		hb.WriteString("Received: from client.test\r\n")
		for _, l := range strings.Split(strings.ReplaceAll(header, "\r", "\n"), "\n") {
			if l != "" {
				hb.WriteString(l + "\r\n")
			}
		}
		header = hb.String()
		body := "body\r\n\r\nX-Tenant: body\r\n"
		full := []byte(header + "\r\n" + body)
		var add []rules.Header
		// The schema admits only RFC 5322 field names (ftext) in
		// addHeaders, so only those reach rewriteHeader.
		if name != "" && fieldName(name) {
			add = []rules.Header{{Name: name, Value: value}}
		}
		var rm []string
		if remove != "" {
			rm = strings.Split(remove, ",")
		}
		m, err := msgheader.Parse(full)
		if err != nil {
			t.Fatalf("Parse(%q): %v", full, err)
		}
		if err := rewriteHeader(m, add, rm); err != nil {
			t.Fatalf("rewriteHeader: %v", err)
		}
		out := m.Bytes()

		origEnd, _ := msgheader.End(full)
		end, _ := msgheader.End(out)
		hdr := out[:end]
		if got, want := out[end:], full[origEnd:]; !bytes.Equal(got, want) {
			t.Fatalf("body changed:\n got %q\nwant %q\n(out %q)", got, want, out)
		}
		if len(hdr) > 0 && !bytes.HasSuffix(hdr, []byte("\r\n")) {
			t.Fatalf("header section %q does not end in CRLF", hdr)
		}
		lines := strings.SplitAfter(string(hdr), "\r\n")
		lines = lines[:len(lines)-1] // after the last CRLF
		for _, h := range add {
			if !fieldName(h.Name) {
				t.Fatalf("added a field with the invalid name %q, giving header %q", h.Name, hdr)
			}
			// One field: its first line, then its continuations.
			if len(lines) == 0 {
				t.Fatalf("added field %s missing: %q", h.Name, out)
			}
			field := lines[0]
			lines = lines[1:]
			for len(lines) > 0 && (lines[0][0] == ' ' || lines[0][0] == '\t') {
				field += lines[0]
				lines = lines[1:]
			}
			want := h.Name + ": " + sanitizeHeaderValue(h.Value) + "\r\n"
			if unfolded := strings.ReplaceAll(field[:len(field)-2], "\r\n", "") + "\r\n"; unfolded != want {
				// A word longer than a line is split with an added space.
				if strings.ReplaceAll(unfolded, " ", "") != strings.ReplaceAll(want, " ", "") {
					t.Fatalf("added field %q unfolds to %q, want %q", field, unfolded, want)
				}
			}
			for _, l := range strings.SplitAfter(field, "\r\n") {
				if len(l) > 1000 {
					t.Fatalf("line of %d octets in added field %q", len(l)-2, field)
				}
			}
		}
		var kept []string
		for _, l := range lines {
			if l[0] != ' ' && l[0] != '\t' {
				n, _, _ := strings.Cut(l, ":")
				for _, r := range rm {
					if strings.EqualFold(strings.TrimSpace(n), r) && strings.Contains(l, ":") {
						t.Fatalf("removed field %q still present: %q", r, out)
					}
				}
			}
			kept = append(kept, l)
		}
		// What is kept is the original lines, in order, minus removed ones.
		orig := strings.SplitAfter(string(full[:origEnd]), "\r\n")
		j := 0
		for _, l := range orig {
			if j < len(kept) && l == kept[j] {
				j++
			}
		}
		if j != len(kept) {
			t.Fatalf("kept lines %q are not a subsequence of the original %q", kept, header)
		}
	})
}

// fieldName reports whether n is an RFC 5322 §3.6.8 field-name: printable
// US-ASCII except ':', of at most 996 octets (the schema's addHeaders
// names, which must leave "Name: " room on a line, §2.1.1).
func fieldName(n string) bool {
	if n == "" || len(n) > 996 {
		return false
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}
