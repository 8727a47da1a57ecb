package smtpclient

import (
	"bufio"
	"bytes"
	"io"
	"strings"
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

// countingWriter counts the writes that reach the connection.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

// TestWriteDataWrites: a body that needs no repair reaches the connection
// in at most two writes whatever its size (one when it fits the buffer),
// and the same bytes as line by line; one that needs stuffing or CRLF
// repair still gets it.
func TestWriteDataWrites(t *testing.T) {
	line := "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n"
	big := strings.Repeat(line, 20480/len(line)+1) // 20 KB, five buffers
	tests := []struct {
		name, in, want string
		maxWrites      int
	}{
		{"small", line, line + ".\r\n", 1},
		{"20 KB", big, big + ".\r\n", 2},
		{"20 KB, no final CRLF", big + "end", big + "end\r\n.\r\n", 2},
		{"20 KB with a dot line", big + ".x\r\n" + big, big + "..x\r\n" + big + ".\r\n", 0},
		{"20 KB with a bare LF", big + "x\n" + big, big + "x\r\n" + big + ".\r\n", 0},
		{"20 KB with a bare CR", big + "x\r" + big, big + "x\r\n" + big + ".\r\n", 0},
	}
	for _, tt := range tests {
		var cw countingWriter
		w := bufio.NewWriter(&cw)
		if err := writeData(w, []byte(tt.in)); err != nil {
			t.Fatal(err)
		}
		if cw.String() != tt.want {
			t.Errorf("%s: wrong bytes on the wire (%d, want %d)", tt.name, cw.Len(), len(tt.want))
		}
		if tt.maxWrites > 0 && cw.writes > tt.maxWrites {
			t.Errorf("%s: %d writes, want at most %d", tt.name, cw.writes, tt.maxWrites)
		}
		var unstuffed int
		eachLine([]byte(tt.in), func(l []byte) { unstuffed += len(l) + 2 })
		if got := messageSize([]byte(tt.in)); got != int64(unstuffed) {
			t.Errorf("%s: size %d, want %d", tt.name, got, unstuffed)
		}
	}
}

func TestHas8bit(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"", false},
		{"abc", false},
		{"abcdefgh", false},
		{"abcdefghijklmnopq", false},
		{"\x80", true},
		{"abcdefg\xff", true},
		{"abcdefghijklmnop\xc3\xa9", true},
		{"abcdefgh\xc3", true},
	}
	for _, tt := range tests {
		if got := has8bit([]byte(tt.in)); got != tt.want {
			t.Errorf("has8bit(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func BenchmarkWriteData20K(b *testing.B) {
	line := "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n"
	body := []byte(strings.Repeat(line, 20480/len(line)+1))
	w := bufio.NewWriter(io.Discard)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		messageSize(body)
		has8bit(body)
		writeData(w, body)
	}
}
