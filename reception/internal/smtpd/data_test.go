package smtp

import (
	"bufio"
	"io"
	"strings"
	"testing"
)

// TestDataReader covers the cuemta changes to the DATA state machine:
// the message as Data sees it, and what is left for the next command.
func TestDataReader(t *testing.T) {
	for _, tt := range []struct{ in, msg, rest string }{
		{"a\r\n.\r\nNOOP\r\n", "a\r\n", "NOOP\r\n"},
		{"..x\r\n.\r\n", ".x\r\n", ""},
		// Upstream missed this end and read on until the timeout.
		{"a\r\r\n.\r\nNOOP\r\n", "a\r\r\n", "NOOP\r\n"},
		{"\r\r\r\n.\r\nNOOP\r\n", "\r\r\r\n", "NOOP\r\n"},
		// Upstream dropped the CR after the leading dot.
		{"a\r\n.\rX\r\n.\r\n", "a\r\n\rX\r\n", ""},
		{"a\r\n.\r\r\n.\r\n", "a\r\n\r\r\n", ""},
		{".\r.\r\n.\r\n", "\r.\r\n", ""},
		// Bare LF ends nothing.
		{"a\n.\n\r\n.\r\n", "a\n.\n\r\n", ""},
	} {
		br := bufio.NewReaderSize(strings.NewReader(tt.in), 16)
		for _, size := range []int{1, 3, 4096} { // Read buffer sizes
			br.Reset(strings.NewReader(tt.in))
			r := &dataReader{r: br}
			var got []byte
			buf := make([]byte, size)
			for {
				n, err := r.Read(buf)
				got = append(got, buf[:n]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%q size %d: %v after %q", tt.in, size, err, got)
				}
			}
			rest, _ := io.ReadAll(br)
			if string(got) != tt.msg || string(rest) != tt.rest {
				t.Errorf("%q size %d: message %q rest %q, want %q %q", tt.in, size, got, rest, tt.msg, tt.rest)
			}
		}
	}
}
