package dkim

import (
	"bytes"
	"strings"
	"testing"
)

// bodyForm is the canonical form of body when written in pieces of at
// most step bytes (0: all at once).
func bodyForm(relaxed bool, body string, step int) string {
	var out bytes.Buffer
	c := newBodyCanon(relaxed, &out)
	b := []byte(body)
	if step == 0 {
		step = len(b) + 1
	}
	for len(b) > 0 {
		n := min(step, len(b))
		c.Write(b[:n])
		b = b[n:]
	}
	c.Close()
	return out.String()
}

func TestBodyCanonicalization(t *testing.T) {
	for _, tc := range []struct{ name, in, simple, relaxed string }{
		// RFC 6376 §3.4.5, the example body.
		{"rfc6376 example", " C \r\nD \t E\r\n\r\n\r\n", " C \r\nD \t E\r\n", " C\r\nD E\r\n"},
		// §3.4.3: an empty body is one CRLF in simple; §3.4.4: empty in relaxed.
		{"empty", "", "\r\n", ""},
		{"only empty lines", "\r\n\r\n\r\n", "\r\n", ""},
		{"only whitespace lines", " \r\n\t\r\n  ", " \r\n\t\r\n  \r\n", ""},
		{"no final CRLF", "abc", "abc\r\n", "abc\r\n"},
		{"trailing whitespace at the end", "abc  \t", "abc  \t\r\n", "abc\r\n"},
		{"empty lines inside are kept", "a\r\n\r\n\r\nb\r\n\r\n", "a\r\n\r\n\r\nb\r\n", "a\r\n\r\n\r\nb\r\n"},
		{"leading empty lines are kept", "\r\n\r\na\r\n", "\r\n\r\na\r\n", "\r\n\r\na\r\n"},
		{"whitespace-only line inside", "a\r\n \t \r\nb\r\n", "a\r\n \t \r\nb\r\n", "a\r\n\r\nb\r\n"},
		{"whitespace runs", "a  b\t\tc \td\r\n", "a  b\t\tc \td\r\n", "a b c d\r\n"},
		{"leading whitespace becomes one SP", "\t\ta\r\n   b\r\n", "\t\ta\r\n   b\r\n", " a\r\n b\r\n"},
		{"bare LF is a line end", "a \nb\n\n", "a \r\nb\r\n", "a\r\nb\r\n"},
		{"bare LF at the start", "\na", "\r\na\r\n", "\r\na\r\n"},
		{"mixed line ends", "a\r\n\nb \n\r\n", "a\r\n\r\nb \r\n", "a\r\n\r\nb\r\n"},
		{"bare CR is data", "a\rb\r\n", "a\rb\r\n", "a\rb\r\n"},
		{"bare CR before CRLF", "a\r\r\n\r\n", "a\r\r\n", "a\r\r\n"},
		{"bare CR at the end", "a\r", "a\r\r\n", "a\r\r\n"},
		{"space then bare CR", "a \rb", "a \rb\r\n", "a \rb\r\n"},
		{"8-bit data", "caf\xc3\xa9 \xff\xfe\r\n", "caf\xc3\xa9 \xff\xfe\r\n", "caf\xc3\xa9 \xff\xfe\r\n"},
		{"long lines (the eight-byte scan)", "abcdefghijklmnop  qrstuvwxyz0123456789\t\tend  \r\nABCDEFGH\x01IJKLMNOP QRSTUVW\r\n\r\n",
			"abcdefghijklmnop  qrstuvwxyz0123456789\t\tend  \r\nABCDEFGH\x01IJKLMNOP QRSTUVW\r\n",
			"abcdefghijklmnop qrstuvwxyz0123456789 end\r\nABCDEFGH\x01IJKLMNOP QRSTUVW\r\n"},
		{"many trailing empty lines", "x" + strings.Repeat("\r\n", 100), "x\r\n", "x\r\n"},
		{"many empty lines inside", "x" + strings.Repeat("\r\n", 100) + "y", "x" + strings.Repeat("\r\n", 100) + "y\r\n", "x" + strings.Repeat("\r\n", 100) + "y\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Every way of cutting the body into pieces gives the same
			// form: the state carried between writes is complete.
			for _, step := range []int{0, 1, 2, 3, 5, 7, 9, 13} {
				if got := bodyForm(false, tc.in, step); got != tc.simple {
					t.Errorf("simple, pieces of %d: got %q, want %q", step, got, tc.simple)
				}
				if got := bodyForm(true, tc.in, step); got != tc.relaxed {
					t.Errorf("relaxed, pieces of %d: got %q, want %q", step, got, tc.relaxed)
				}
			}
		})
	}
}

func TestHeaderCanonicalization(t *testing.T) {
	for _, tc := range []struct{ name, in, simple, relaxed string }{
		// RFC 6376 §3.4.5, the example header fields.
		{"rfc6376 A", "A: X\r\n", "A: X\r\n", "a:X\r\n"},
		{"rfc6376 B", "B : Y\t\r\n\tZ  \r\n", "B : Y\t\r\n\tZ  \r\n", "b:Y Z\r\n"},
		{"empty value", "Subject:\r\n", "Subject:\r\n", "subject:\r\n"},
		{"whitespace-only value", "Subject: \t \r\n", "Subject: \t \r\n", "subject:\r\n"},
		{"long folded", "Subject: one\r\n two\r\n\t three \r\n", "Subject: one\r\n two\r\n\t three \r\n", "subject:one two three\r\n"},
		{"fold before the colon", "To\r\n : x\r\n", "To\r\n : x\r\n", "to:x\r\n"},
		{"colon in the value", "X-A: b: c\r\n", "X-A: b: c\r\n", "x-a:b: c\r\n"},
		{"bare LF line ends", "Subject: a\n b\n", "Subject: a\r\n b\r\n", "subject:a b\r\n"},
		{"no line end", "Subject: a", "Subject: a\r\n", "subject:a\r\n"},
		{"no colon", "Garbage Line\r\n", "Garbage Line\r\n", "garbage line:\r\n"},
		{"8-bit value", "Subject: caf\xc3\xa9  \xff\r\n", "Subject: caf\xc3\xa9  \xff\r\n", "subject:caf\xc3\xa9 \xff\r\n"},
		{"bare CR in the value is data", "Subject: a\rb\r\n", "Subject: a\rb\r\n", "subject:a\rb\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(appendSimpleHeader(nil, []byte(tc.in))); got != tc.simple {
				t.Errorf("simple: got %q, want %q", got, tc.simple)
			}
			if got, want := simpleIsVerbatim([]byte(tc.in)), tc.in == tc.simple; got != want {
				t.Errorf("simpleIsVerbatim = %v, want %v", got, want)
			}
			if got := string(appendRelaxedHeader(nil, []byte(tc.in))); got != tc.relaxed {
				t.Errorf("relaxed: got %q, want %q", got, tc.relaxed)
			}
		})
	}
}

func TestParseHeader(t *testing.T) {
	for _, tc := range []struct {
		name, msg string
		fields    []string // each field, then its name
		body      string
	}{
		{"rfc6376 example", "A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n C \r\n", []string{"A: X\r\n", "A", "B : Y\t\r\n\tZ  \r\n", "B"}, " C \r\n"},
		{"bare LF", "A: 1\nB: 2\n\nbody\n", []string{"A: 1\n", "A", "B: 2\n", "B"}, "body\n"},
		{"no separator", "A: 1\r\nB: 2\r\n", []string{"A: 1\r\n", "A", "B: 2\r\n", "B"}, ""},
		{"no separator, no line end", "A: 1\r\nB: 2", []string{"A: 1\r\n", "A", "B: 2", "B"}, ""},
		{"empty header", "\r\nbody", nil, "body"},
		{"empty message", "", nil, ""},
		{"continuation first", " x: 1\r\nA: 2\r\n\r\n", []string{" x: 1\r\n", "x", "A: 2\r\n", "A"}, ""},
		{"no colon", "junk\r\nA: 2\r\n\r\nb", []string{"junk\r\n", "junk", "A: 2\r\n", "A"}, "b"},
		{"separator with whitespace is not one", "A: 1\r\n \r\n\r\nb", []string{"A: 1\r\n \r\n", "A"}, "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := []byte(tc.msg)
			fields, body := parseHeader(msg, nil)
			var got []string
			for _, f := range fields {
				got = append(got, string(msg[f.start:f.end]), string(msg[f.nameStart:f.nameEnd]))
			}
			if strings.Join(got, "|") != strings.Join(tc.fields, "|") {
				t.Errorf("fields %q, want %q", got, tc.fields)
			}
			if string(msg[body:]) != tc.body {
				t.Errorf("body %q, want %q", msg[body:], tc.body)
			}
		})
	}
}
