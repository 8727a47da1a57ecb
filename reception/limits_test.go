package reception

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/config"
)

func TestMessageSizeLimit(t *testing.T) {
	e := newEnv(t)
	e.l.Limits.MaxMessageSize = 2048
	e.start()
	c := e.ehlo()
	const tooBig = "552 5.3.4"

	// Declared too big at MAIL (RFC 1870 §6.2); go-smtp's text.
	c.expect("MAIL FROM:<a@client.test> SIZE=2049", tooBig)
	c.expect("MAIL FROM:<a@client.test> SIZE=2048", "250")
	c.expect("RSET", "250")

	// Found too big during DATA; the rest is read and discarded, and the
	// session goes on.
	big := "Subject: big\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef\r\n", 100)
	if got := c.sendMessage("a@client.test", []string{"b@example.com"}, big); got != "552 5.3.4 Message size exceeds fixed maximum message size" {
		t.Fatalf("DATA over the limit: %q", got)
	}
	// ...and during BDAT (go-smtp's text).
	c.expect("MAIL FROM:<a@client.test>", "250")
	c.expect("RCPT TO:<b@example.com>", "250")
	c.send("BDAT " + itoa(len(big)) + " LAST\r\n" + big)
	if got := c.reply(); !strings.HasPrefix(got, tooBig) {
		t.Fatalf("BDAT over the limit: %q", got)
	}
	// A message within the limit still goes through. go-smtp refuses a
	// DATA message of exactly the limit (its reader runs out of budget
	// before it sees the terminating dot), so DATA is tested one byte
	// under it and BDAT, which has no such quirk, at it.
	atLimit := "Subject: ok\r\n\r\n" + strings.Repeat(strings.Repeat("x", 98)+"\r\n", 20) + strings.Repeat("x", 31) + "\r\n"
	if len(atLimit) != 2048 {
		t.Fatalf("len(atLimit) = %d", len(atLimit))
	}
	if got := c.sendMessage("a@client.test", []string{"b@example.com"}, atLimit[1:]); got != "250 2.0.0 Ok: queued as Q1" {
		t.Fatalf("DATA one byte under the limit: %q", got)
	}
	c.expect("MAIL FROM:<a@client.test>", "250")
	c.expect("RCPT TO:<b@example.com>", "250")
	c.send("BDAT 2048 LAST\r\n" + atLimit)
	if got := c.reply(); got != "250 2.0.0 Ok: queued as Q2" {
		t.Fatalf("BDAT at the limit: %q", got)
	}
	if n := len(e.sink.got()); n != 2 {
		t.Fatalf("sink got %d messages, want 2", n)
	}
}

func TestTooManyRecipients(t *testing.T) {
	e := newEnv(t)
	e.l.Limits.MaxRecipients = 2
	e.start()
	c := e.ehlo()
	c.expect("MAIL FROM:<a@client.test>", "250")
	c.expect("RCPT TO:<r1@example.com>", "250")
	c.expect("RCPT TO:<r1@EXAMPLE.com>", "250") // a duplicate does not count
	c.expect("RCPT TO:<r2@example.com>", "250")
	c.expect("RCPT TO:<r3@example.com>", "452 4.5.3 Too many recipients")
	c.expect("DATA", "354")
	c.send("Subject: x\r\n\r\ny\r\n.\r\n")
	if got := c.reply(); got != "250 2.0.0 Ok: queued as Q1" {
		t.Fatalf("end of data: %q", got)
	}
	if got := strings.Join(e.sink.got()[0].Recipients, ","); got != "r1@example.com,r2@example.com" {
		t.Errorf("recipients = %s", got)
	}
}

func TestConnectionLimits(t *testing.T) {
	t.Run("total", func(t *testing.T) {
		e := newEnv(t)
		e.l.Limits.MaxConnections = 2
		e.start()
		a, _ := e.dial(), e.dial()
		over := e.dialNoGreeting("")
		if got := over.reply(); got != "421 4.7.0 Too many connections" {
			t.Fatalf("third connection: %q", got)
		}
		over.expectClosed()
		// Freed slots are counted again.
		a.expect("QUIT", "221")
		waitFor(t, "slot freed", func() bool { return e.srv.conns.count() == 1 })
		e.dial()
	})
	t.Run("per IP", func(t *testing.T) {
		e := newEnv(t)
		e.l.Limits.MaxConnectionsPerIP = 1
		e.start()
		e.dial()
		over := e.dialNoGreeting("127.0.0.1")
		if got := over.reply(); got != "421 4.7.0 Too many connections" {
			t.Fatalf("second connection from 127.0.0.1: %q", got)
		}
		over.expectClosed()
		// Another address is counted separately (all of 127/8 is
		// loopback on Linux).
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
		conn, err := d.Dial("tcp", e.addr)
		if err != nil {
			t.Skipf("cannot bind 127.0.0.2: %v", err)
		}
		other := &client{t: t, e: e}
		other.setConn(conn)
		defer conn.Close()
		if got := other.reply(); !strings.HasPrefix(got, "220 ") {
			t.Fatalf("connection from 127.0.0.2: %q", got)
		}
	})
}

func TestTimeouts(t *testing.T) {
	t.Run("idle command", func(t *testing.T) {
		e := newEnv(t)
		e.l.Limits.CommandTimeout = config.Duration(150 * time.Millisecond)
		e.start()
		c := e.ehlo()
		start := time.Now()
		if got := c.reply(); !strings.HasPrefix(got, "421 4.4.2") {
			t.Fatalf("idle client got %q", got)
		}
		c.expectClosed()
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("closed after %v", d)
		}
	})
	t.Run("slow but live data", func(t *testing.T) {
		// Each piece arrives within dataTimeout, but the whole upload takes
		// longer than both timeouts: it must not be cut off (go-smtp alone
		// would apply one deadline to the whole DATA).
		e := newEnv(t)
		e.l.Limits.CommandTimeout = config.Duration(200 * time.Millisecond)
		e.l.Limits.DataTimeout = config.Duration(300 * time.Millisecond)
		e.l.Limits.MinDataRate = 1 // this case is about the per-read timeout
		e.start()
		c := e.ehlo()
		c.expect("MAIL FROM:<a@client.test>", "250")
		c.expect("RCPT TO:<b@example.com>", "250")
		c.expect("DATA", "354")
		c.send("Subject: slow\r\n\r\n")
		for i := 0; i < 8; i++ {
			time.Sleep(100 * time.Millisecond)
			c.send("line " + itoa(i) + "\r\n")
		}
		c.send(".\r\n")
		if got := c.reply(); got != "250 2.0.0 Ok: queued as Q1" {
			t.Fatalf("slow upload: %q", got)
		}
	})
	t.Run("stalled data", func(t *testing.T) {
		e := newEnv(t)
		e.l.Limits.DataTimeout = config.Duration(200 * time.Millisecond)
		e.l.Limits.MinDataRate = 1 // else the rate rule ends it at the same moment
		e.start()
		c := e.ehlo()
		c.expect("MAIL FROM:<a@client.test>", "250")
		c.expect("RCPT TO:<b@example.com>", "250")
		c.expect("DATA", "354")
		c.send("Subject: stalled\r\n\r\npart")
		if got := c.reply(); got != "421 4.4.2 Timeout waiting for message data, closing channel" {
			t.Fatalf("stalled upload: %q", got)
		}
		c.expectClosed()
		if n := len(e.sink.got()); n != 0 {
			t.Fatalf("sink got %d messages", n)
		}
	})
}

func TestLimitDefaults(t *testing.T) {
	l := limitsOf(config.ListenerLimits{})
	if l.maxMessageSize != 50<<20 || l.maxRecipients != 1000 || l.maxConnections != 2000 ||
		l.maxConnectionsPerIP != 100 || l.commandTimeout != 5*time.Minute || l.dataTimeout != 10*time.Minute ||
		l.minDataRate != 1024 || l.maxDataTime != time.Hour {
		t.Errorf("defaults = %+v", l)
	}
}

func TestLimitKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":            "192.0.2.1",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2::99":     "2001:db8:1:2::/64",
	} {
		if got := limitKey(netip.MustParseAddr(in)); got != want {
			t.Errorf("limitKey(%s) = %s, want %s", in, got, want)
		}
	}
}
