package smtp

import (
	"bufio"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// acceptAll is a session that takes every message.
type acceptAll struct{}

func (acceptAll) Reset()                          {}
func (acceptAll) Logout() error                   { return nil }
func (acceptAll) Mail(string, *MailOptions) error { return nil }
func (acceptAll) Rcpt(string, *RcptOptions) error { return nil }
func (acceptAll) Data(r io.Reader) error          { _, err := io.Copy(io.Discard, r); return err }

// writeCounter counts the writes of the connections it accepts.
type writeCounter struct {
	net.Listener
	writes atomic.Int64
}

func (l *writeCounter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: &l.writes}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.n.Add(1)
	return c.Conn.Write(p)
}

// TestRepliesFlushed: a multi-line reply and the replies to a pipelined
// group each leave in one write; a reply is never held while the server
// waits for the rest of a command, and the replies before QUIT's close
// are all sent.
func TestRepliesFlushed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &writeCounter{Listener: ln}
	s := NewServer(BackendFunc(func(*Conn) (Session, error) { return acceptAll{}, nil }))
	s.Domain = "mx.test"
	s.ReadTimeout = 10 * time.Second
	s.WriteTimeout = 10 * time.Second
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	// reply reads one reply, all its lines, and returns its last line.
	reply := func() string {
		t.Helper()
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("reading a reply: %v", err)
			}
			if len(line) < 4 || line[3] != '-' {
				return strings.TrimRight(line, "\r\n")
			}
		}
	}
	send := func(s string) {
		t.Helper()
		if _, err := io.WriteString(c, s); err != nil {
			t.Fatal(err)
		}
	}
	step := func(what, in string, replies, wantWrites int) {
		t.Helper()
		before := l.writes.Load()
		send(in)
		var last string
		for range replies {
			last = reply()
		}
		if got := l.writes.Load() - before; got != int64(wantWrites) {
			t.Errorf("%s: %d writes, want %d (last reply %q)", what, got, wantWrites, last)
		}
	}

	if got := reply(); !strings.HasPrefix(got, "220 ") {
		t.Fatalf("greeting %q", got)
	}
	step("EHLO, a multi-line reply", "EHLO client.test\r\n", 1, 1)
	step("MAIL, RCPT, RCPT, DATA pipelined", "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n", 4, 1)
	step("the message", "Subject: hi\r\n\r\nhello\r\n.\r\n", 1, 1)

	// A command and the start of the next: the first reply must not wait
	// for the rest of the second command.
	send("NOOP\r\nNO")
	if got := reply(); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("NOOP: %q", got)
	}
	send("OP\r\n")
	if got := reply(); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("the completed NOOP: %q", got)
	}

	// Replies buffered when QUIT closes the connection are sent first.
	send("NOOP\r\nRSET\r\nQUIT\r\n")
	for _, want := range []string{"250 ", "250 ", "221 "} {
		if got := reply(); !strings.HasPrefix(got, want) {
			t.Fatalf("before the close: %q, want %s...", got, want)
		}
	}
	if _, err := r.ReadByte(); err != io.EOF {
		t.Errorf("after QUIT: %v, want EOF", err)
	}
}
