package smtpclient

import (
	"bufio"
	"bytes"
	"testing"
)

func TestWriteData(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ".\r\n"},
		{"adds final CRLF", "x", "x\r\n.\r\n"},
		{"keeps final CRLF", "x\r\n", "x\r\n.\r\n"},
		{"bare LF", "a\nb\n", "a\r\nb\r\n.\r\n"},
		{"bare CR", "a\rb", "a\r\nb\r\n.\r\n"},
		{"blank lines kept", "a\r\n\r\n\r\nb", "a\r\n\r\n\r\nb\r\n.\r\n"},
		// RFC 5321 §4.5.2: a leading dot is doubled.
		{"lone dot", "a\r\n.\r\nb", "a\r\n..\r\nb\r\n.\r\n"},
		{"leading dots", ".a\r\n..b\r\n", "..a\r\n...b\r\n.\r\n"},
		{"dot not at line start", "a.b\r\n", "a.b\r\n.\r\n"},
		// The smuggling sequence with a bare LF becomes harmless text.
		{"smuggling", "x\n.\r\nMAIL FROM:<e@x>\r\n", "x\r\n..\r\nMAIL FROM:<e@x>\r\n.\r\n"},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		w := bufio.NewWriter(&b)
		if err := writeData(w, []byte(tt.in)); err != nil {
			t.Fatal(err)
		}
		if b.String() != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, b.String(), tt.want)
		}
		// SIZE is the CRLF form without the stuffing and terminator.
		var unstuffed int
		eachLine([]byte(tt.in), func(l []byte) { unstuffed += len(l) + 2 })
		if messageSize([]byte(tt.in)) != int64(unstuffed) {
			t.Errorf("%s: size %d", tt.name, messageSize([]byte(tt.in)))
		}
	}
}
