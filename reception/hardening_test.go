package reception

import (
	"strings"
	"testing"
	"time"
)

// sendSplit writes s one byte per write, so the server sees as many TCP
// segments as the kernel lets through.
func (c *client) sendSplit(s string) {
	c.t.Helper()
	for i := range len(s) {
		c.send(s[i : i+1])
	}
}

// writeModes are the two ways tests deliver the same bytes.
var writeModes = []struct {
	name string
	send func(c *client, s string)
}{
	{"one write", (*client).send},
	{"byte by byte", (*client).sendSplit},
}

// goodMessage checks that the session is still usable: a clean message
// is queued.
func goodMessage(t *testing.T, c *client) {
	t.Helper()
	c.expect("RSET", "250")
	if got := c.sendMessage("a@client.test", []string{"b@example.com"}, "Subject: ok\r\n\r\nok\r\n"); !strings.HasPrefix(got, "250 2.0.0 Ok: queued as ") {
		t.Fatalf("next message: %q", got)
	}
}

// TestDataEndAfterBareCR: the end of data after "\r\r\n" is found (upstream
// go-smtp hung until the data timeout), and the bare CR in "\r\n.\rX"
// reaches the bare-CR check (upstream dropped it and queued the message).
func TestDataEndAfterBareCR(t *testing.T) {
	for _, body := range []string{
		"Subject: x\r\n\r\nhello\r\r\n.\r\n",
		"Subject: x\r\n\r\nhello\r\n.\rX\r\n.\r\n",
		"Subject: x\r\n\r\n.\r\r\n.\r\n",
	} {
		for _, m := range writeModes {
			t.Run(m.name, func(t *testing.T) {
				e := newEnv(t).start()
				c := e.ehlo()
				c.expect("MAIL FROM:<a@client.test>", "250")
				c.expect("RCPT TO:<b@example.com>", "250")
				c.expect("DATA", "354")
				m.send(c, body)
				if got := c.reply(); got != "550 5.6.0 Bare LF/CR not allowed" {
					t.Fatalf("%q: end of data: %q", body, got)
				}
				goodMessage(t, c)
				if n := len(e.sink.got()); n != 1 {
					t.Fatalf("sink got %d messages, want only the clean one", n)
				}
			})
		}
	}
}

// TestLineLengthDataAndBDAT: one rule (maxLineLength octets, CRLF
// included) and one reply for DATA and BDAT, however the bytes arrive,
// and the session stays usable.
func TestLineLengthDataAndBDAT(t *testing.T) {
	line := func(n int) string { return strings.Repeat("x", n-2) + "\r\n" } // n octets with CRLF
	tests := []struct {
		name, body, want string
	}{
		{"at limit", "Subject: s\r\n\r\n" + line(maxLineLength), "250 2.0.0 Ok: queued as Q1"},
		{"over limit", "Subject: s\r\n\r\n" + line(maxLineLength+1), "550 5.6.0 Line too long"},
		{"over limit, no CRLF", "Subject: s\r\n\r\n" + strings.Repeat("y", maxLineLength+1), "550 5.6.0 Line too long"},
	}
	for _, tt := range tests {
		for _, m := range writeModes {
			t.Run(tt.name+"/DATA/"+m.name, func(t *testing.T) {
				e := newEnv(t).start()
				c := e.ehlo()
				body := tt.body
				if !strings.HasSuffix(body, "\r\n") {
					body += "\r\n" // DATA ends with CRLF.CRLF
				}
				c.expect("MAIL FROM:<a@client.test>", "250")
				c.expect("RCPT TO:<b@example.com>", "250")
				c.expect("DATA", "354")
				m.send(c, body+".\r\n")
				if got := c.reply(); got != tt.want {
					t.Fatalf("DATA: %q, want %q", got, tt.want)
				}
				goodMessage(t, c)
			})
			t.Run(tt.name+"/BDAT/"+m.name, func(t *testing.T) {
				e := newEnv(t).start()
				c := e.ehlo()
				c.expect("MAIL FROM:<a@client.test>", "250")
				c.expect("RCPT TO:<b@example.com>", "250")
				// The BDAT line and the chunk in the same write(s): upstream
				// counted the chunk against the command-line limit.
				m.send(c, "BDAT "+itoa(len(tt.body))+" LAST\r\n"+tt.body)
				if got := c.reply(); got != tt.want {
					t.Fatalf("BDAT: %q, want %q", got, tt.want)
				}
				goodMessage(t, c)
			})
		}
	}
	// A long line split across two chunks is still one line.
	t.Run("over limit across chunks", func(t *testing.T) {
		e := newEnv(t).start()
		c := e.ehlo()
		c.expect("MAIL FROM:<a@client.test>", "250")
		c.expect("RCPT TO:<b@example.com>", "250")
		half := "Subject: s\r\n\r\n" + strings.Repeat("z", maxLineLength/2+10)
		c.send("BDAT " + itoa(len(half)) + "\r\n" + half)
		if got := c.reply(); got != "250 2.0.0 Continue" {
			t.Fatalf("first chunk: %q", got)
		}
		rest := strings.Repeat("z", maxLineLength/2+10) + "\r\n"
		c.send("BDAT " + itoa(len(rest)) + " LAST\r\n" + rest)
		if got := c.reply(); got != "550 5.6.0 Line too long" {
			t.Fatalf("BDAT: %q", got)
		}
	})
}

// TestRcptPostmaster: RFC 5321 §4.5.1 "<Postmaster>" without a domain is
// accepted from anyone, as postmaster@Hostname, and opens no relay.
func TestRcptPostmaster(t *testing.T) {
	e := newEnv(t)
	e.p.Relay.Networks = nil // 127.0.0.1 may not relay
	e.start()
	c := e.ehlo()
	c.expect("MAIL FROM:<a@client.test>", "250")
	c.expect("RCPT TO:<postmaster@other.example>", "550 5.7.1 Relaying denied")
	c.expect("RCPT TO:<someone@mx.test>", "550 5.7.1 Relaying denied")
	c.expect("RCPT TO:<postmaster>", "250 2.0.0")
	c.expect("RCPT TO:<PostMaster>", "250 2.0.0") // case-insensitive; a duplicate
	c.expect("DATA", "354")
	c.send("Subject: s\r\n\r\nhi\r\n.\r\n")
	if got := c.reply(); got != "250 2.0.0 Ok: queued as Q1" {
		t.Fatalf("end of data: %q", got)
	}
	if got := e.sink.got()[0].Recipients; len(got) != 1 || got[0] != "postmaster@mx.test" {
		t.Fatalf("recipients %q", got)
	}
}

// TestAuthBadBase64: RFC 4954 §4: 501 for a response that is not base64,
// as initial response or in the exchange (upstream go-smtp: 454 4.7.0).
func TestAuthBadBase64(t *testing.T) {
	e := newEnv(t).withTLS().withAuth("alice", "secret")
	e.l.Mode = "submission"
	e.start()
	c := e.ehlo()
	c.startTLS()
	c.expect("EHLO client.test", "250")
	c.expect("AUTH PLAIN !!notbase64", "501 5.5.2 Invalid base64 data")
	c.expect("AUTH LOGIN", "334 ")
	c.expect("%%%", "501 5.5.2 Invalid base64 data")
	if got := c.authPlain("alice", "secret"); !strings.HasPrefix(got, "235 ") {
		t.Fatalf("AUTH after the errors: %q", got)
	}
}

// TestMailLoop: RFC 5321 §6.3: more than maxReceivedHeaders Received
// fields is a loop, refused with 554 5.4.6 before the Sink sees it.
func TestMailLoop(t *testing.T) {
	received := func(n int) string {
		return strings.Repeat("Received: from a.test by b.test; Tue, 4 Mar 2025 05:06:07 +0100\r\n", n)
	}
	for _, tt := range []struct {
		n    int
		want string
	}{
		{maxReceivedHeaders, "250 2.0.0 Ok: queued as Q1"},
		{maxReceivedHeaders + 1, "554 5.4.6 Routing loop detected: too many Received headers"},
	} {
		t.Run(itoa(tt.n), func(t *testing.T) {
			e := newEnv(t).start()
			c := e.ehlo()
			body := received(tt.n) + "Subject: loop\r\n\r\nbody\r\n"
			if got := c.sendMessage("a@client.test", []string{"b@example.com"}, body); got != tt.want {
				t.Fatalf("DATA: %q, want %q", got, tt.want)
			}
			c.expect("MAIL FROM:<a@client.test>", "250")
			c.expect("RCPT TO:<b@example.com>", "250")
			c.send("BDAT " + itoa(len(body)) + " LAST\r\n" + body)
			if got, want := c.reply(), strings.Replace(tt.want, "Q1", "Q2", 1); got != want {
				t.Fatalf("BDAT: %q, want %q", got, want)
			}
			if n := len(e.sink.got()); (n == 2) != (tt.want[0] == '2') || n == 1 {
				t.Fatalf("sink got %d messages", n)
			}
		})
	}
}

// TestHeaderSizeLimit: a header section over maxHeaderSize is refused
// with 552 5.3.4, without parsing it, and quickly.
func TestHeaderSizeLimit(t *testing.T) {
	field := "X-Filler: " + strings.Repeat("f", 88) + "\r\n" // 100 octets
	for _, tt := range []struct {
		name string
		hdr  int // octets of header fields
		want string
	}{
		{"1 MiB", maxHeaderSize / len(field) * len(field), "250 2.0.0 Ok: queued as Q1"},
		{"20 MB", 20_000_000, "552 5.3.4 Message header exceeds fixed maximum header size"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.l.Limits.MaxMessageSize = 32 << 20
			e.start()
			c := e.ehlo()
			body := strings.Repeat(field, tt.hdr/len(field)) + "Subject: big\r\n\r\nbody\r\n.\r\n"
			c.expect("MAIL FROM:<a@client.test>", "250")
			c.expect("RCPT TO:<b@example.com>", "250")
			c.expect("DATA", "354")
			start := time.Now()
			c.conn.SetWriteDeadline(time.Now().Add(60 * time.Second))
			if _, err := c.conn.Write([]byte(body)); err != nil {
				t.Fatalf("write: %v", err)
			}
			c.conn.SetReadDeadline(time.Now().Add(60 * time.Second))
			code, msg, err := c.r.ReadResponse(0)
			if err != nil {
				t.Fatalf("read reply: %v", err)
			}
			got := itoa(code) + " " + msg
			elapsed := time.Since(start)
			if got != tt.want {
				t.Fatalf("end of data: %q, want %q", got, tt.want)
			}
			t.Logf("%d-octet header: %q after %v (upload included)", tt.hdr, got, elapsed)
			if elapsed > 2*time.Second && !raceEnabled {
				t.Errorf("took %v", elapsed)
			}
			goodMessage(t, c)
		})
	}
}

// TestCommandLimits: past maxRcptFailures refused RCPTs or maxIdleCommands
// NOOP/RSET the client is told 421 4.7.0 and the connection closes.
func TestCommandLimits(t *testing.T) {
	t.Run("refused recipients", func(t *testing.T) {
		e := newEnv(t)
		e.p.Relay.Networks = nil
		e.start()
		c := e.ehlo()
		c.expect("MAIL FROM:<a@client.test>", "250")
		c.send(strings.Repeat("RCPT TO:<x@other.example>\r\n", maxRcptFailures+1))
		for i := range maxRcptFailures {
			if got := c.reply(); got != "550 5.7.1 Relaying denied" {
				t.Fatalf("RCPT %d: %q", i+1, got)
			}
		}
		if got := c.reply(); got != "421 4.7.0 Too many rejected recipients, closing connection" {
			t.Fatalf("RCPT %d: %q", maxRcptFailures+1, got)
		}
		c.expectClosed()
	})
	t.Run("NOOP and RSET", func(t *testing.T) {
		e := newEnv(t).start()
		c := e.dial()
		// Counted before EHLO too, and across RSET and NOOP alike.
		c.send(strings.Repeat("NOOP\r\n", 10))
		for range 10 {
			c.reply()
		}
		c.expect("EHLO client.test", "250")
		c.send(strings.Repeat("RSET\r\nNOOP\r\n", (maxIdleCommands-10)/2))
		for i := range maxIdleCommands - 10 {
			if got := c.reply(); !strings.HasPrefix(got, "250 2.0.0") {
				t.Fatalf("command %d: %q", i+11, got)
			}
		}
		c.expect("NOOP", "421 4.7.0 Too many NOOP/RSET commands, closing connection")
		c.expectClosed()
	})
}
