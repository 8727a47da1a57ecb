package mime7bit

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzConvert: Convert never panics; it fails only with ErrUnconvertible;
// what it returns converts to itself again; and every output line that
// still has an 8-bit byte is a line of the input (an untouched header
// field: bodies come out 7-bit). Lines are compared without their CR: the
// header parser ends a field's line with CRLF even where the input had a
// bare LF, which reception never accepts anyway.
func FuzzConvert(f *testing.F) {
	ins, _ := filepath.Glob("testdata/*.in.eml")
	for _, p := range ins {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(crlf(b))
		}
	}
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n\xff\r\n--b--\r\n"))
	f.Add([]byte("\r\n\xc3\xa4"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := Convert(in)
		if err != nil {
			if !errors.Is(err, ErrUnconvertible) {
				t.Fatalf("Convert failed with %v, which does not wrap ErrUnconvertible", err)
			}
			return
		}
		again, err := Convert(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("Convert(Convert(in)) differs or fails (%v):\nin    %q\nonce  %q\ntwice %q", err, in, out, again)
		}
		if !Has8bit(out) {
			return
		}
		inLines := map[string]bool{}
		for _, l := range bytes.Split(in, []byte("\n")) {
			inLines[string(bytes.TrimSuffix(l, []byte("\r")))] = true
		}
		for _, l := range bytes.Split(out, []byte("\n")) {
			if l = bytes.TrimSuffix(l, []byte("\r")); Has8bit(l) && !inLines[string(l)] {
				t.Fatalf("output line %q has 8-bit data and is not from the input\nin  %q\nout %q", l, in, out)
			}
		}
	})
}
