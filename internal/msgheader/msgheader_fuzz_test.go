package msgheader

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzParse parses a message, adds a field (fuzzed name and value) at the
// top and one at the bottom, deletes one by name and writes it back. Invariants, for a
// message with CRLF line endings only (as reception stores them) ending
// in CRLF:
//   - parsed and written back unchanged, it is the same bytes;
//   - after the edits the body is the same bytes, the added fields come
//     first and last, no field of the deleted name is left, and the other
//     fields are the original raw fields in order;
//   - the output's header section ends where the edited fields end.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"Received: from a\r\n by b\r\nX-Tenant: free\r\nSubject: hi\r\n\r\nbody\r\n",
		"A: 1\r\nnot a field\r\n",
		"\r\nbody\r\n",
		" leading continuation\r\nA: 1\r\n\r\n",
		"Subject : obsolete\r\n\r\n\r\n",
		"x-tenant:a\r\nX-TENANT: b\r\n\tc\r\n\r\n",
	} {
		f.Add([]byte(s), "x-tenant", "X-Top", "value with spaces")
	}
	f.Add([]byte("A: 1\r\n\r\n"), "a", strings.Repeat("N", 74), " x")
	f.Fuzz(func(t *testing.T, msg []byte, del, name, value string) {
		if bytes.Count(msg, []byte("\r")) != bytes.Count(msg, []byte("\r\n")) ||
			bytes.Count(msg, []byte("\n")) != bytes.Count(msg, []byte("\r\n")) ||
			(len(msg) > 0 && !bytes.HasSuffix(msg, []byte("\r\n"))) {
			return
		}
		m, err := Parse(msg)
		if err != nil {
			t.Fatalf("Parse(%q): %v", msg, err)
		}
		if got := m.Bytes(); !bytes.Equal(got, msg) {
			t.Fatalf("round trip changed the message:\n got %q\nwant %q", got, msg)
		}
		orig := strings.SplitAfter(string(m.Header.Bytes()), "\r\n")
		body := bytes.Clone(m.Body)

		top, topErr := Format(name, value)
		if err := m.Header.Add(name, value); (err == nil) != (topErr == nil) {
			t.Fatalf("Add and Format disagree: %v, %v", err, topErr)
		}
		if err := m.Header.Append("X-Bottom", "b"); err != nil {
			t.Fatal(err)
		}
		m.Header.Del(del)
		out := m.Bytes()

		end, _ := End(out)
		if end != m.Header.Size() {
			t.Fatalf("header section of the output ends at %d, its fields at %d: %q", end, m.Header.Size(), out)
		}
		rest := out[end:]
		if len(rest) >= 2 && bytes.Equal(rest[:2], []byte("\r\n")) && !bytes.Equal(rest, body) {
			rest = rest[2:] // the empty line, written or kept
		}
		if !bytes.Equal(rest, body) {
			t.Fatalf("body changed: %q, want %q", rest, body)
		}
		if m.Header.Has(del) {
			t.Fatalf("a field %q is left after Del: %q", del, out)
		}
		lines := strings.SplitAfter(string(out[:end]), "\r\n")
		lines = lines[:len(lines)-1] // after the last CRLF
		if !strings.EqualFold(del, "X-Bottom") && !(topErr == nil && strings.EqualFold(name, "X-Bottom") && strings.EqualFold(del, name)) {
			if last := lines[len(lines)-1]; last != "X-Bottom: b\r\n" {
				t.Fatalf("X-Bottom is not last: %q", out)
			}
			lines = lines[:len(lines)-1]
		}
		if topErr == nil {
			for _, l := range strings.SplitAfter(string(top), "\r\n") {
				if len(l) > 1000 { // RFC 5322 §2.1.1, 998 and CRLF
					t.Fatalf("line of %d octets in %q", len(l), top)
				}
			}
		}
		if topErr == nil && !strings.EqualFold(del, name) && !strings.EqualFold(name, "X-Bottom") {
			n := strings.Count(string(top), "\r\n")
			if got := strings.Join(lines[:n], ""); got != string(top) {
				t.Fatalf("X-Top is not first: %q", out)
			}
			lines = lines[n:]
		}
		// What is left is the original lines, in order, minus deleted ones.
		j := 0
		for _, l := range orig {
			if j < len(lines) && l == lines[j] {
				j++
			}
		}
		if j != len(lines) {
			t.Fatalf("kept lines %q are not a subsequence of the original %q", lines, orig)
		}
	})
}

// FuzzCountField: CountField agrees with ParseHeader's Count for a message
// with CRLF line ends only, and never counts past max.
func FuzzCountField(f *testing.F) {
	for _, s := range []string{
		"Received: a\r\nreceived : b\r\n\tc\r\nRECEIVED:d\r\n\r\nReceived: body\r\n",
		"Received: a\r\nnot a field\r\nReceived: b\r\n",
		" Received: a\r\n",
		"X-Received: a\r\nReceivedX: b\r\n",
	} {
		f.Add([]byte(s), "Received", 3)
	}
	f.Fuzz(func(t *testing.T, msg []byte, name string, max int) {
		if bytes.Count(msg, []byte("\r")) != bytes.Count(msg, []byte("\r\n")) ||
			bytes.Count(msg, []byte("\n")) != bytes.Count(msg, []byte("\r\n")) {
			return
		}
		h, _ := ParseHeader(msg)
		want := h.Count(name)
		if got := CountField(msg, name, 1<<30); got != want {
			t.Fatalf("CountField(%q, %q) = %d, ParseHeader's Count %d", msg, name, got, want)
		}
		if max >= 0 {
			if got := CountField(msg, name, max); got != min(want, max) {
				t.Fatalf("CountField(%q, %q, %d) = %d, want %d", msg, name, max, got, min(want, max))
			}
		}
	})
}
