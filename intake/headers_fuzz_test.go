package intake

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cuemta/cuemta/rules"
)

// FuzzRewriteHeader applies a rule's addHeaders/removeHeaders to a message.
// The names and values come from configuration (schema: addHeaders?:
// [string]: string), so they are fuzzed too. Invariants, for a message with
// CRLF line endings and a header/body separator (as reception stores it):
//   - the body after the first empty line is unchanged, byte for byte;
//   - the header block still ends with the one empty line that separates it
//     from that body, and is made of complete CRLF lines;
//   - the output starts with exactly one line per added field, each
//     "Name: value" with a field name of printable ASCII without ':';
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
		out := rewriteHeader(full, add, rm)

		i := bytes.Index(out, []byte("\r\n\r\n"))
		if i < 0 {
			t.Fatalf("header block lost its terminating empty line: %q", out)
		}
		hdr := out[:i+2]
		if got := out[i+4:]; !bytes.Equal(got, []byte(body)) {
			t.Fatalf("body changed:\n got %q\nwant %q\n(out %q)", got, body, out)
		}
		lines := strings.SplitAfter(string(hdr), "\r\n")
		lines = lines[:len(lines)-1] // after the last CRLF
		if len(lines) < len(add) {
			t.Fatalf("%d header lines for %d added fields: %q", len(lines), len(add), out)
		}
		for k, h := range add {
			want := h.Name + ": " + sanitizeHeaderValue(h.Value) + "\r\n"
			if lines[k] != want {
				t.Fatalf("added field line %d = %q, want %q", k, lines[k], want)
			}
			if !fieldName(h.Name) {
				t.Fatalf("added a field with the invalid name %q, giving header %q", h.Name, hdr)
			}
		}
		var kept []string
		for _, l := range lines[len(add):] {
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
		orig := strings.SplitAfter(header, "\r\n")
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
// US-ASCII except ':'.
func fieldName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}
