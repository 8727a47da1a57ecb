package reception

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/config"
)

func TestEHLOExtensions(t *testing.T) {
	plain := []string{"250 mx.test Hello client.test", "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES",
		"CHUNKING", "SMTPUTF8", "DSN", "SIZE 65536"}
	withTLS := []string{"250 mx.test Hello client.test", "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES",
		"CHUNKING", "STARTTLS", "SMTPUTF8", "DSN", "SIZE 65536"}
	afterTLS := []string{"250 mx.test Hello client.test", "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES",
		"CHUNKING", "AUTH PLAIN LOGIN", "SMTPUTF8", "DSN", "SIZE 65536"}

	t.Run("no tls", func(t *testing.T) {
		e := newEnv(t).start()
		c := e.dial()
		checkLines(t, c.cmd("EHLO client.test"), plain)
	})
	t.Run("tls and auth", func(t *testing.T) {
		e := newEnv(t).withTLS().withAuth("alice", "secret").start()
		c := e.dial()
		// AUTH is not offered before STARTTLS (RFC 4954 §4 and §14).
		checkLines(t, c.cmd("EHLO client.test"), withTLS)
		c.startTLS()
		checkLines(t, c.cmd("EHLO client.test"), afterTLS)
	})
	t.Run("HELO", func(t *testing.T) {
		e := newEnv(t).start()
		c := e.dial()
		c.expect("HELO client.test", "250 2.0.0 Hello client.test")
		c.expect("QUIT", "221 2.0.0")
		c.expectClosed()
	})
}

func checkLines(t *testing.T, got string, want []string) {
	t.Helper()
	if g := strings.Split(got, "\n"); strings.Join(g, "|") != strings.Join(want, "|") {
		t.Errorf("EHLO reply:\n got %q\nwant %q", g, want)
	}
}

func TestHappyPath(t *testing.T) {
	e := newEnv(t).start()
	c := e.ehlo()
	body := "Subject: hi\r\nMessage-ID: <m1@client.test>\r\n\r\nHello\r\n..dot-stuffed\r\n"
	if got := c.sendMessage("alice@client.test", []string{"bob@example.com"}, body); got != "250 2.0.0 Ok: queued as Q1" {
		t.Fatalf("end of data: %q", got)
	}
	// The session goes on: a second message on the same connection.
	if got := c.sendMessage("", []string{"carol@example.com", "dave@example.com"}, "Subject: 2\r\n\r\nx\r\n"); got != "250 2.0.0 Ok: queued as Q2" {
		t.Fatalf("second message: %q", got)
	}
	c.expect("QUIT", "221")

	subs := e.sink.got()
	if len(subs) != 2 {
		t.Fatalf("sink got %d messages, want 2", len(subs))
	}
	s := subs[0]
	want := "Received: from client.test ([127.0.0.1])\r\n" +
		"\tby mx.test (cuemta) with ESMTP id " + s.TraceID + "\r\n" +
		"\tfor <bob@example.com>;\r\n" +
		"\tTue, 04 Mar 2025 05:06:07 +0100\r\n" +
		"Subject: hi\r\nMessage-ID: <m1@client.test>\r\n\r\nHello\r\n.dot-stuffed\r\n"
	if string(s.Body) != want {
		t.Errorf("body:\n got %q\nwant %q", s.Body, want)
	}
	if s.From != "alice@client.test" || strings.Join(s.Recipients, ",") != "bob@example.com" ||
		s.Listener != "test" || s.ClientIP != "127.0.0.1" || s.Helo != "client.test" ||
		s.User != "" || s.TLS || !s.Received.Equal(testNow) || len(s.TraceID) != 16 {
		t.Errorf("submission = %+v", s)
	}
	s2 := subs[1]
	if s2.From != "" || strings.Join(s2.Recipients, ",") != "carol@example.com,dave@example.com" {
		t.Errorf("second submission = %+v", s2)
	}
	if strings.Contains(string(s2.Body), "\tfor <") {
		t.Errorf("Received names a recipient of a multi-recipient message:\n%s", s2.Body)
	}
	if s2.TraceID == s.TraceID {
		t.Error("two transactions share a trace ID")
	}
}

func TestPipelining(t *testing.T) {
	e := newEnv(t).start()
	c := e.ehlo()
	// RFC 2920: the whole envelope and DATA in one write.
	c.send("MAIL FROM:<a@client.test>\r\nRCPT TO:<b@example.com>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n")
	for _, want := range []string{"250 2.0.0", "250 2.0.0", "250 2.0.0", "354"} {
		if got := c.reply(); !strings.HasPrefix(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	// The message, its end and the next commands in one write, too.
	c.send("Subject: p\r\n\r\nbody\r\n.\r\nRSET\r\nNOOP\r\n")
	for _, want := range []string{"250 2.0.0 Ok: queued as Q1", "250 2.0.0 Session reset", "250 2.0.0"} {
		if got := c.reply(); !strings.HasPrefix(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	if subs := e.sink.got(); len(subs) != 1 || len(subs[0].Recipients) != 2 {
		t.Fatalf("sink got %+v", subs)
	}
}

func TestBDAT(t *testing.T) {
	e := newEnv(t).start()
	c := e.ehlo()
	c.expect("MAIL FROM:<a@client.test> BODY=8BITMIME", "250")
	c.expect("RCPT TO:<b@example.com>", "250")
	// RFC 3030: no dot-stuffing, so "\r\n.\r\n" inside a chunk is data.
	chunk1 := "Subject: chunked\r\n\r\nline one\r\n.\r\n"
	chunk2 := "..not stuffed\r\n"
	c.send("BDAT " + itoa(len(chunk1)) + "\r\n" + chunk1)
	if got := c.reply(); got != "250 2.0.0 Continue" {
		t.Fatalf("first chunk: %q", got)
	}
	c.send("BDAT " + itoa(len(chunk2)) + " LAST\r\n" + chunk2)
	if got := c.reply(); got != "250 2.0.0 Ok: queued as Q1" {
		t.Fatalf("last chunk: %q", got)
	}
	subs := e.sink.got()
	if len(subs) != 1 {
		t.Fatalf("sink got %d messages", len(subs))
	}
	if body := string(subs[0].Body); !strings.HasSuffix(body, "\r\n"+chunk1+chunk2) || !subs[0].EightBitMIME {
		t.Errorf("submission %+v body %q", subs[0], body)
	}
	// A BDAT message that does not end in CRLF gets one.
	c.expect("MAIL FROM:<a@client.test>", "250")
	c.expect("RCPT TO:<b@example.com>", "250")
	last := "Subject: x\r\n\r\ny"
	c.send("BDAT " + itoa(len(last)) + " LAST\r\n" + last)
	if got := c.reply(); got != "250 2.0.0 Ok: queued as Q2" {
		t.Fatalf("unterminated message: %q", got)
	}
	if body := string(e.sink.got()[1].Body); !strings.HasSuffix(body, "\r\nSubject: x\r\n\r\ny\r\n") {
		t.Errorf("body %q", body)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestBadCommands checks the replies to protocol errors. Where go-smtp
// answers before the backend is asked, its reply is what the client gets;
// the comments say where that differs from RFC 5321.
func TestBadCommands(t *testing.T) {
	tests := []struct {
		name  string
		setup []string // commands that must succeed first
		cmd   string
		want  string
	}{
		{"unknown command", nil, "FOOB bar", "500 5.5.2"},
		{"LMTP's LHLO", nil, "LHLO c.test", "500 5.5.2"},                                           // an SMTP server only (RFC 2033 §4.1: LMTP must not listen on port 25)
		{"MAIL before EHLO", nil, "MAIL FROM:<a@client.test>", "502 5.5.1"},                        // go-smtp; RFC 5321 §4.1.4 prefers 503
		{"RCPT before MAIL", []string{"EHLO c.test"}, "RCPT TO:<b@example.com>", "502 5.5.1"},      // go-smtp; RFC prefers 503
		{"DATA before RCPT", []string{"EHLO c.test", "MAIL FROM:<a@c.test>"}, "DATA", "502 5.5.1"}, // go-smtp
		{"nested MAIL", []string{"EHLO c.test", "MAIL FROM:<a@c.test>"}, "MAIL FROM:<b@c.test>", "503 5.5.1 Nested MAIL command"},
		{"unparsable sender", []string{"EHLO c.test"}, "MAIL FROM:<no-at-sign>", "501 5.5.2"}, // go-smtp's parser
		{"bad sender domain", []string{"EHLO c.test"}, "MAIL FROM:<a@bad..domain>", "501 5.1.7 Bad sender address syntax"},
		{"bad recipient domain", []string{"EHLO c.test", "MAIL FROM:<a@c.test>"}, "RCPT TO:<b@-bad.example>", "501 5.1.3 Bad recipient address syntax"},
		{"bad recipient literal", []string{"EHLO c.test", "MAIL FROM:<a@c.test>"}, "RCPT TO:<b@[300.1.2.3]>", "501 5.1.3"},
		{"quoted local part with @", []string{"EHLO c.test", "MAIL FROM:<a@c.test>"}, `RCPT TO:<"x@evil.test"@example.com>`, "553 5.1.3"},
		{"UTF-8 without SMTPUTF8", []string{"EHLO c.test", "MAIL FROM:<a@c.test>"}, "RCPT TO:<jös@example.com>", "553 5.6.7"},
		{"UTF-8 with SMTPUTF8", []string{"EHLO c.test", "MAIL FROM:<a@c.test> SMTPUTF8"}, "RCPT TO:<jös@example.com>", "250 2.0.0"},
		{"SIZE not a number", []string{"EHLO c.test"}, "MAIL FROM:<a@c.test> SIZE=big", "501 5.5.4"},
		{"unknown MAIL parameter", []string{"EHLO c.test"}, "MAIL FROM:<a@c.test> FOO=1", "500 5.5.4"},
		{"DATA with argument", []string{"EHLO c.test", "MAIL FROM:<a@c.test>", "RCPT TO:<b@example.com>"}, "DATA x", "501 5.5.4"},
		{"EXPN", []string{"EHLO c.test"}, "EXPN staff", "502 5.5.1"},
		{"VRFY", []string{"EHLO c.test"}, "VRFY bob", "252 2.5.0"},
		{"BINARYMIME not offered", []string{"EHLO c.test"}, "MAIL FROM:<a@c.test> BODY=BINARYMIME", "504 5.5.4"},
	}
	e := newEnv(t).start()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.dial()
			c.t = t
			for _, s := range tt.setup {
				c.expect(s, "250")
			}
			c.expect(tt.cmd, tt.want)
		})
	}
}

func TestNewValidates(t *testing.T) {
	good := func() (*config.Listener, Policy) {
		e := newEnv(t)
		return e.l, e.p
	}
	tests := []struct {
		name   string
		mutate func(*config.Listener, *Policy)
		want   string
	}{
		{"missing cert", func(l *config.Listener, _ *Policy) {
			l.TLS = &config.TLSFiles{Cert: "/nonexistent/cert.pem", Key: "/nonexistent/key.pem"}
		}, "load TLS certificate"},
		{"bad bcrypt hash", func(l *config.Listener, _ *Policy) {
			l.Auth = config.ListenerAuth{Enabled: true, Users: map[string]string{"u": "plaintext"}}
		}, `auth user "u": bad bcrypt hash`},
		{"no hostname", func(_ *config.Listener, p *Policy) { p.Hostname = "" }, "hostname"},
		{"bad mode", func(l *config.Listener, _ *Policy) { l.Mode = "lmtp" }, "unknown mode"},
		{"bad relay domain", func(_ *config.Listener, p *Policy) { p.Relay.Domains = []string{"ex ample.com"} }, "relay domain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, p := good()
			tt.mutate(l, &p)
			_, err := New(l, p, &fakeSink{}, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New error = %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := NewRelayPolicy(config.Relay{Networks: []string{"10.0.0.0/33"}}); err == nil {
		t.Error("NewRelayPolicy accepted 10.0.0.0/33")
	}
	rp, err := NewRelayPolicy(config.Relay{Networks: []string{"10.0.0.0/8", "::1/128"}, Domains: []config.RelayDomain{{Domain: "Example.COM"}}})
	if err != nil || len(rp.Networks) != 2 || rp.Domains[0] != "Example.COM" {
		t.Errorf("NewRelayPolicy = %+v, %v", rp, err)
	}
}

func TestShutdownDrains(t *testing.T) {
	e := newEnv(t).start()
	busy := e.ehlo()
	idle := e.ehlo()
	busy.expect("MAIL FROM:<a@client.test>", "250")
	busy.expect("RCPT TO:<b@example.com>", "250")
	busy.expect("DATA", "354")
	busy.send("Subject: in flight\r\n\r\nfirst half\r\n")

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- e.srv.Shutdown(ctx)
	}()

	// The idle session is told and closed (go-smtp's 421 4.4.2).
	if got := idle.reply(); !strings.HasPrefix(got, "421 4.4.2") {
		t.Errorf("idle session got %q, want 421", got)
	}
	idle.expectClosed()
	// No new connections.
	waitFor(t, "listener closed", func() bool {
		c, err := net.DialTimeout("tcp", e.addr, time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v before the transaction ended", err)
	case <-time.After(50 * time.Millisecond):
	}

	// The transaction in flight completes and is stored...
	busy.send("second half\r\n.\r\n")
	if got := busy.reply(); got != "250 2.0.0 Ok: queued as Q1" {
		t.Fatalf("in-flight message: %q", got)
	}
	// ...then the connection is closed instead of waiting for a command.
	if got, err := busy.tryReply(); err == nil && !strings.HasPrefix(got, "421") {
		t.Errorf("after the transaction got %q, want 421 or close", got)
	}
	busy.expectClosed()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if subs := e.sink.got(); len(subs) != 1 || !strings.Contains(string(subs[0].Body), "first half\r\nsecond half\r\n") {
		t.Fatalf("sink got %+v", subs)
	}
}

func TestShutdownDeadline(t *testing.T) {
	e := newEnv(t)
	e.sink.gate = make(chan struct{}) // Accept blocks until its ctx ends
	e.sink.entered = make(chan struct{}, 1)
	e.start()
	c := e.ehlo()
	c.expect("MAIL FROM:<a@client.test>", "250")
	c.expect("RCPT TO:<b@example.com>", "250")
	c.expect("DATA", "354")
	c.send("Subject: stuck\r\n\r\nx\r\n.\r\n")
	<-e.sink.entered

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := e.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want DeadlineExceeded", err)
	}
	// The cancelled Accept may still get its temporary failure onto the
	// wire before the connection is closed, and the draining read its 421
	// after it; never a 250, and then the close.
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	closed := false
	for range 3 {
		line, err := c.r.ReadLine()
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("connection still open (read timed out)")
		}
		if err != nil {
			closed = true
			break
		}
		if !strings.HasPrefix(line, "4") {
			t.Fatalf("after the shutdown deadline the client read %q, want a 4xx or nothing", line)
		}
	}
	if !closed {
		t.Fatal("connection still open after three 4xx replies")
	}
	if n := len(e.sink.got()); n != 0 {
		t.Fatalf("sink stored %d messages", n)
	}
	if err := e.srv.Shutdown(context.Background()); !errors.Is(err, ErrServerClosed) {
		t.Errorf("second Shutdown = %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Serve(ln); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown = %v", err)
	}
}

func TestListenAndServe(t *testing.T) {
	e := newEnv(t)
	srv, err := New(e.l, e.p, e.sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	if srv.Addr() != nil {
		t.Fatal("Addr before serving is not nil")
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	waitFor(t, "listening", func() bool { return srv.Addr() != nil })
	e.addr = srv.Addr().String()
	e.dial().expect("EHLO client.test", "250")
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-errc; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("ListenAndServe = %v", err)
	}
}
