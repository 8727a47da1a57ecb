package smtpclient

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestDialGreeting(t *testing.T) {
	tests := []struct {
		name     string
		script   script
		wantCode int
		wantEnh  string
		stage    string
		quit     bool // the client must say QUIT
	}{
		{
			name:     "421 at greeting",
			script:   func(s *session) { s.reply("421 4.3.2 mx.test Service not available, closing") },
			wantCode: 421, wantEnh: "4.3.2", stage: StageGreeting,
		},
		{
			name: "554 at greeting: client sends QUIT",
			script: func(s *session) {
				s.reply("554 5.7.1 No SMTP service here")
				s.expect("QUIT")
				s.reply("221 Bye")
			},
			wantCode: 554, wantEnh: "5.7.1", stage: StageGreeting,
		},
		{
			name: "EHLO 421",
			script: func(s *session) {
				s.reply("220 mx.test")
				s.expect("EHLO client.test")
				s.reply("421 4.7.0 Too busy")
			},
			wantCode: 421, wantEnh: "4.7.0", stage: StageEHLO,
		},
		{
			name: "HELO refused after EHLO",
			script: func(s *session) {
				s.reply("220 mx.test")
				s.expect("EHLO")
				s.reply("500 Command unrecognized")
				s.expect("HELO client.test")
				s.reply("550 5.7.1 Go away")
			},
			wantCode: 550, wantEnh: "5.7.1", stage: StageEHLO,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := startServer(t, tt.script)
			_, err := Dial(context.Background(), quick(addr))
			var r *Reply
			if !errors.As(err, &r) {
				t.Fatalf("err = %T %v, want *Reply", err, err)
			}
			if r.Code != tt.wantCode || r.Enhanced != tt.wantEnh || r.Stage != tt.stage {
				t.Errorf("reply %+v, want %d %s at %s", r, tt.wantCode, tt.wantEnh, tt.stage)
			}
		})
	}
}

func TestHELOFallback(t *testing.T) {
	addr := startServer(t, func(s *session) {
		s.reply("220 old.test SMTP")
		s.expect("EHLO client.test")
		s.reply("502 5.5.1 Command not implemented")
		s.expect("HELO client.test")
		s.reply("250 old.test")
		s.expect("QUIT")
		s.reply("221 Bye")
	})
	c, err := Dial(context.Background(), quick(addr))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Extensions()) != 0 {
		t.Errorf("extensions after HELO: %v", c.Extensions())
	}
	if g := c.Greeting(); g.Code != 220 || g.Text != "old.test SMTP" {
		t.Errorf("greeting %+v", g)
	}
	c.Quit()
}

func TestExtensions(t *testing.T) {
	addr := startServer(t, func(s *session) {
		s.greet("PIPELINING", "SIZE 35882577", "8BITMIME", "auth login Plain", "ENHANCEDSTATUSCODES", "SMTPUTF8", "CHUNKING")
	})
	c, err := Dial(context.Background(), quick(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ext := c.Extensions()
	for _, k := range []string{"PIPELINING", "size", "8BITMIME", "AUTH", "ENHANCEDSTATUSCODES", "SMTPUTF8"} {
		if !ext.Has(k) {
			t.Errorf("missing %s in %v", k, ext)
		}
	}
	if ext.Size() != 35882577 {
		t.Errorf("Size = %d", ext.Size())
	}
	if m := ext.AuthMechanisms(); strings.Join(m, ",") != "LOGIN,PLAIN" {
		t.Errorf("AUTH = %v", m)
	}
	if ext.Has("STARTTLS") || c.TLS() {
		t.Error("TLS where none was offered")
	}
}

func TestSTARTTLS(t *testing.T) {
	cert, pool := testCert(t)
	trusted := &tls.Config{RootCAs: pool}
	tlsServer := func(s *session) {
		s.greet("STARTTLS", "PIPELINING")
		s.expect("STARTTLS")
		s.reply("220 2.0.0 Ready to start TLS")
		if !s.startTLS(cert) {
			return
		}
		s.expect("EHLO client.test")
		s.ehloReply("PIPELINING", "AUTH PLAIN")
		s.expect("QUIT")
		s.reply("221 Bye")
	}
	plainServer := func(s *session) {
		s.greet("PIPELINING")
		s.expect("QUIT")
		s.reply("221 Bye")
	}
	refusingServer := func(s *session) {
		s.greet("STARTTLS")
		s.expect("STARTTLS")
		s.reply("454 4.7.0 TLS not available due to temporary reason")
		s.expect("QUIT")
		s.reply("221 Bye")
	}
	brokenTLSServer := func(s *session) {
		s.greet("STARTTLS")
		s.expect("STARTTLS")
		s.reply("220 Go ahead")
		s.conn.Write([]byte("this is not a TLS record\r\n"))
		s.line()
	}
	tests := []struct {
		name       string
		policy     string
		tlsConfig  *tls.Config
		script     script
		wantTLS    bool
		wantErr    error // sentinel, or nil
		tlsFailure bool
	}{
		{"required, offered, verified", TLSRequired, trusted, tlsServer, true, nil, false},
		{"required, not offered", TLSRequired, trusted, func(s *session) { s.greet(); s.line() }, false, ErrNoSTARTTLS, true},
		{"required, untrusted certificate", TLSRequired, nil, tlsServer, false, nil, true},
		{"required, refused", TLSRequired, trusted, refusingServer, false, nil, true},
		{"opportunistic, unverified certificate is fine", TLSOpportunistic, nil, tlsServer, true, nil, false},
		{"opportunistic, not offered", TLSOpportunistic, nil, plainServer, false, nil, false},
		{"opportunistic, refused: clear text", TLSOpportunistic, nil, refusingServer, false, nil, false},
		{"opportunistic, handshake fails", TLSOpportunistic, nil, brokenTLSServer, false, nil, true},
		{"none ignores STARTTLS", TLSNone, nil, func(s *session) {
			s.greet("STARTTLS")
			s.expect("QUIT")
			s.reply("221 Bye")
		}, false, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := startServer(t, tt.script)
			o := quick(addr)
			o.TLS, o.TLSConfig, o.ServerName = tt.policy, tt.tlsConfig, "mx.test"
			c, err := Dial(context.Background(), o)
			if tt.tlsFailure || tt.wantErr != nil {
				if !IsTLSFailure(err) || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
					t.Fatalf("err = %v, want a TLS failure %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.TLS() != tt.wantTLS {
				t.Errorf("TLS() = %v", c.TLS())
			}
			if tt.wantTLS {
				// RFC 3207 §4.2: the post-TLS EHLO replaces what was learnt.
				if c.Extensions().Has("STARTTLS") || !c.Extensions().Has("AUTH") {
					t.Errorf("extensions after TLS: %v", c.Extensions())
				}
				if st := c.TLSState(); st == nil || st.ServerName != "mx.test" {
					t.Errorf("TLS state %+v", st)
				}
			}
			if err := c.Quit(); err != nil {
				t.Error(err)
			}
		})
	}
}

// After a failed opportunistic handshake the caller redials without TLS.
func TestOpportunisticRedial(t *testing.T) {
	addr := startServer(t,
		func(s *session) {
			s.greet("STARTTLS")
			s.expect("STARTTLS")
			s.reply("220 Go ahead")
			s.conn.Write([]byte("garbage\r\n"))
			s.line()
		},
		func(s *session) {
			s.greet("STARTTLS")
			s.expect("QUIT")
			s.reply("221 Bye")
		})
	o := quick(addr)
	o.TLS = TLSOpportunistic
	_, err := Dial(context.Background(), o)
	if !IsTLSFailure(err) || !strings.Contains(err.Error(), "handshake") {
		t.Fatalf("first dial: %v", err)
	}
	o.TLS = TLSNone
	c, err := Dial(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	c.Quit()
}

func TestTLSInjectionRefused(t *testing.T) {
	addr := startServer(t, func(s *session) {
		s.greet("STARTTLS")
		s.expect("STARTTLS")
		s.reply("220 Go ahead", "250 injected")
	})
	o := quick(addr)
	o.TLS = TLSOpportunistic
	if _, err := Dial(context.Background(), o); !errors.Is(err, ErrTLSInjection) {
		t.Fatalf("err = %v", err)
	}
}

func TestAuth(t *testing.T) {
	cert, pool := testCert(t)
	var cred string
	addr := startServer(t,
		func(s *session) {
			s.greet("STARTTLS")
			s.expect("STARTTLS")
			s.reply("220 Go")
			if !s.startTLS(cert) {
				return
			}
			s.expect("EHLO")
			s.ehloReply("AUTH LOGIN PLAIN")
			cred = s.expect("AUTH PLAIN ")
			s.reply("235 2.7.0 Authentication successful")
		},
		func(s *session) {
			s.greet("STARTTLS")
			s.expect("STARTTLS")
			s.reply("220 Go")
			if !s.startTLS(cert) {
				return
			}
			s.expect("EHLO")
			s.ehloReply("AUTH PLAIN")
			s.expect("AUTH PLAIN ")
			s.reply("535 5.7.8 Authentication credentials invalid")
		},
		func(s *session) {
			s.greet("AUTH PLAIN")
			if l := s.line(); strings.HasPrefix(l, "AUTH") {
				t.Errorf("credentials sent in clear: %q", l)
			}
		})
	o := quick(addr)
	o.TLS, o.TLSConfig, o.ServerName = TLSRequired, &tls.Config{RootCAs: pool}, "mx.test"
	o.Auth = &Auth{Username: "user", Password: "secret"}
	c, err := Dial(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	dec, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(cred, "AUTH PLAIN "))
	if string(dec) != "\x00user\x00secret" {
		t.Errorf("credentials %q", dec)
	}

	var r *Reply
	if _, err := Dial(context.Background(), o); !errors.As(err, &r) || r.Code != 535 || r.Stage != StageAuth {
		t.Errorf("bad password: %v", err)
	}

	o.TLS = TLSOpportunistic
	if _, err := Dial(context.Background(), o); !errors.Is(err, ErrAuthWithoutTLS) {
		t.Errorf("auth without TLS: %v", err)
	}
}

func TestTimeouts(t *testing.T) {
	hang := func(s *session) {
		for s.line() != "" {
		}
	}
	tests := []struct {
		name   string
		script script
		send   bool
		ctx    time.Duration // a context deadline instead of the timeouts
		stage  string
	}{
		{"no greeting", func(s *session) { s.line() }, false, 0, StageGreeting},
		{"EHLO unanswered", func(s *session) { s.reply("220 mx.test"); hang(s) }, false, 0, StageEHLO},
		{"RCPT unanswered", func(s *session) {
			s.greet()
			s.expect("MAIL")
			s.reply("250 Ok")
			hang(s)
		}, true, 0, StageRcpt},
		{"pipelined replies never come", func(s *session) { s.greet("PIPELINING"); hang(s) }, true, 0, StageMail},
		{"end of data unanswered", func(s *session) {
			s.greet()
			s.expect("MAIL")
			s.reply("250 Ok")
			s.expect("RCPT")
			s.reply("250 Ok")
			s.expect("DATA")
			s.reply("354 Go")
			s.data()
			s.line()
		}, true, 0, StageEOD},
		{"context deadline", func(s *session) { s.line() }, false, 150 * time.Millisecond, StageGreeting},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := startServer(t, tt.script)
			o := quick(addr)
			o.CommandTimeout, o.DataTimeout = 150*time.Millisecond, 150*time.Millisecond
			ctx := context.Background()
			if tt.ctx > 0 {
				o.CommandTimeout = time.Minute
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctx)
				defer cancel()
			}
			start := time.Now()
			c, err := Dial(ctx, o)
			if tt.send {
				if err != nil {
					t.Fatal(err)
				}
				var res *Result
				res, err = c.Send(ctx, "a@a.test", []string{"b@b.test"}, []byte("x"))
				if res == nil {
					t.Fatal("no partial result")
				}
				if _, ok := res.Outcome(0); ok {
					t.Error("outcome decided although the transaction broke off")
				}
			}
			var ne *NetError
			if !errors.As(err, &ne) || !ne.Timeout() || ne.Stage != tt.stage {
				t.Fatalf("err = %T %v, want a timeout at %s", err, err, tt.stage)
			}
			if tt.ctx > 0 && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want context.DeadlineExceeded in the chain", err)
			}
			if el := time.Since(start); el > 3*time.Second {
				t.Errorf("took %v", el)
			}
			if tt.send {
				if _, err := c.Send(ctx, "a@a.test", []string{"b@b.test"}, nil); !errors.As(err, &ne) {
					t.Errorf("reuse after failure: %v", err)
				}
			}
		})
	}
}

func TestCancel(t *testing.T) {
	addr := startServer(t, func(s *session) { s.line() })
	ctx, cancel := context.WithCancel(context.Background())
	o := quick(addr)
	o.CommandTimeout = time.Minute
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := Dial(ctx, o)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestConnectFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = Dial(context.Background(), quick(addr))
	var ne *NetError
	if !errors.As(err, &ne) || ne.Stage != StageConnect || !ne.Temporary() {
		t.Fatalf("err = %v", err)
	}
	if _, err := Dial(context.Background(), Options{Addr: addr, TLS: "sometimes"}); err == nil {
		t.Error("unknown TLS policy accepted")
	}
}

func TestLocalAddr(t *testing.T) {
	src := netip.MustParseAddr("127.0.0.2")
	probe, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("127.0.0.2 not usable here: %v", err)
	}
	probe.Close()
	var seen string
	addr := startServer(t, func(s *session) {
		seen, _, _ = net.SplitHostPort(s.conn.RemoteAddr().String())
		s.greet()
	})
	o := quick(addr)
	o.LocalAddr = src
	c, err := Dial(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if seen != "127.0.0.2" || c.LocalAddr().Addr() != src {
		t.Errorf("server saw %s, LocalAddr %v", seen, c.LocalAddr())
	}
	if c.RemoteAddr().String() != addr {
		t.Errorf("RemoteAddr %v, want %s", c.RemoteAddr(), addr)
	}
}

func TestMalformedReplies(t *testing.T) {
	tests := []struct {
		name  string
		lines string
	}{
		{"not a code", "hello there\r\n"},
		{"bad separator", "220_mx.test\r\n"},
		{"code out of range", "999 what\r\n"},
		{"code changes within a reply", "220-mx.test\r\n250 ok\r\n"},
		{"line too long", "220 " + strings.Repeat("x", 5000) + "\r\n"},
		{"endless reply", strings.Repeat("220-x\r\n", 300)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := startServer(t, func(s *session) { s.conn.Write([]byte(tt.lines)); s.line() })
			_, err := Dial(context.Background(), quick(addr))
			var ne *NetError
			if !errors.Is(err, ErrMalformedReply) || !errors.As(err, &ne) || ne.Stage != StageGreeting {
				t.Fatalf("err = %v", err)
			}
		})
	}
}
