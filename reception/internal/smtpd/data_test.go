package smtp

import (
	"bufio"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
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

// TestDataReaderFastPath: the bulk copy of mid-line data gives exactly
// what the byte-at-a-time state machine gives (a source that yields one
// byte per read leaves nothing buffered, so only the byte loop runs),
// whatever the Read sizes and the mix of CR, LF and dots.
func TestDataReaderFastPath(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	alphabet := "ab.\r\n"
	for i := range 2000 {
		in := make([]byte, rnd.IntN(300))
		for j := range in {
			in[j] = alphabet[rnd.IntN(len(alphabet))]
		}
		src := string(in) + "\r\n.\r\nrest"
		read := func(r io.Reader, size int) (string, string) {
			br := bufio.NewReaderSize(r, 16)
			dr := &dataReader{r: br}
			var got []byte
			buf := make([]byte, size)
			for {
				n, err := dr.Read(buf)
				got = append(got, buf[:n]...)
				if err != nil {
					break
				}
			}
			rest, _ := io.ReadAll(br)
			return string(got), string(rest)
		}
		wantMsg, wantRest := read(iotest.OneByteReader(strings.NewReader(src)), 1)
		for _, size := range []int{1, 5, 64, 4096} {
			if msg, rest := read(strings.NewReader(src), size); msg != wantMsg || rest != wantRest {
				t.Fatalf("case %d, %q, Read size %d: %q rest %q; byte by byte %q rest %q", i, src, size, msg, rest, wantMsg, wantRest)
			}
		}
	}
}
