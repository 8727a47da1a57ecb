package reception

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/config"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestAuth(t *testing.T) {
	newAuthEnv := func(t *testing.T) *testEnv {
		e := newEnv(t).withTLS().withAuth("alice", "secret")
		e.l.Mode = "submission"
		return e.start()
	}

	t.Run("refused before STARTTLS", func(t *testing.T) {
		e := newAuthEnv(t)
		c := e.ehlo()
		c.expect("AUTH PLAIN "+b64("\x00alice\x00secret"), "538 5.7.11 Encryption required for requested authentication mechanism")
		c.expect("AUTH LOGIN", "538 5.7.11")
	})

	t.Run("PLAIN success, then relaying", func(t *testing.T) {
		e := newAuthEnv(t)
		c := e.ehlo()
		c.startTLS()
		c.expect("EHLO client.test", "250")
		if got := c.authPlain("alice", "secret"); !strings.HasPrefix(got, "235 ") {
			t.Fatalf("AUTH PLAIN: %q", got)
		}
		c.expect("AUTH PLAIN "+b64("\x00alice\x00secret"), "503 5.5.1") // already authenticated
		got := c.sendMessage("alice@example.com", []string{"someone@other.org"}, "Subject: s\r\n\r\nhi\r\n")
		if got != "250 2.0.0 Ok: queued as Q1" {
			t.Fatalf("relay after AUTH: %q", got)
		}
		s := e.sink.got()[0]
		if s.User != "alice" || !s.TLS {
			t.Errorf("submission user %q tls %v", s.User, s.TLS)
		}
		if !strings.Contains(string(s.Body), " with ESMTPSA id ") {
			t.Errorf("Received lacks ESMTPSA:\n%s", s.Body)
		}
	})

	t.Run("PLAIN without initial response", func(t *testing.T) {
		e := newAuthEnv(t)
		c := e.ehlo()
		c.startTLS()
		c.expect("EHLO client.test", "250")
		c.expect("AUTH PLAIN", "334 ")
		c.expect(b64("\x00alice\x00secret"), "235 ")
	})

	t.Run("LOGIN success", func(t *testing.T) {
		e := newAuthEnv(t)
		c := e.ehlo()
		c.startTLS()
		c.expect("EHLO client.test", "250")
		c.expect("AUTH LOGIN", "334 "+b64("Username:"))
		c.expect(b64("alice"), "334 "+b64("Password:"))
		c.expect(b64("secret"), "235 ")
	})

	t.Run("failures", func(t *testing.T) {
		e := newAuthEnv(t)
		c := e.ehlo()
		c.startTLS()
		c.expect("EHLO client.test", "250")
		if got := c.authPlain("alice", "wrong"); got != "535 5.7.8 Authentication credentials invalid" {
			t.Fatalf("wrong password: %q", got)
		}
		if got := c.authPlain("mallory", "secret"); got != "535 5.7.8 Authentication credentials invalid" {
			t.Fatalf("unknown user: %q", got)
		}
		c.expect("AUTH LOGIN "+b64("alice"), "334 "+b64("Password:"))
		c.expect(b64("nope"), "535 5.7.8")
		c.expect("AUTH CRAM-MD5", "421 4.7.0") // the fourth attempt
		c.expectClosed()
	})

	t.Run("unauthenticated relaying refused", func(t *testing.T) {
		e := newAuthEnv(t)
		c := e.ehlo()
		c.startTLS()
		c.expect("EHLO client.test", "250")
		c.expect("MAIL FROM:<alice@example.com>", "250")
		c.expect("RCPT TO:<someone@other.org>", "530 5.7.0 Authentication required")
		c.expect("AUTH PLAIN "+b64("\x00alice\x00secret"), "503 5.5.1") // not inside a transaction (RFC 4954 §4)
	})

	t.Run("protocol errors", func(t *testing.T) {
		e := newAuthEnv(t)
		c := e.ehlo()
		c.startTLS()
		c.expect("EHLO client.test", "250")
		c.expect("AUTH CRAM-MD5", "504 5.5.4")
		c.expect("AUTH PLAIN "+b64("no-nul-bytes"), "501 5.5.2")
		c.expect("AUTH LOGIN", "334 ")
		c.expect("*", "501 5.0.0") // cancelled (RFC 4954 §4)
	})

	t.Run("silent client in the exchange: 421 after one command timeout", func(t *testing.T) {
		e := newEnv(t).withTLS().withAuth("alice", "secret")
		e.l.Mode = "submission"
		e.l.Limits.CommandTimeout = config.Duration(time.Second)
		e.start()
		c := e.ehlo()
		c.startTLS()
		c.expect("EHLO client.test", "250")
		start := time.Now()
		c.expect("AUTH LOGIN", "334 ")
		if got := c.reply(); !strings.HasPrefix(got, "421 4.4.2") {
			t.Fatalf("after a silent second, got %q; want 421 4.4.2", got)
		}
		// Not a second timeout in the command loop after the first.
		if d := time.Since(start); d > 1900*time.Millisecond {
			t.Errorf("421 after %v, want one command timeout (1s)", d)
		}
		c.expectClosed()
	})

	t.Run("not enabled", func(t *testing.T) {
		e := newEnv(t).withTLS().start()
		c := e.ehlo()
		c.startTLS()
		if got := c.cmd("EHLO client.test"); strings.Contains(got, "AUTH") {
			t.Fatalf("AUTH advertised: %q", got)
		}
		c.expect("AUTH PLAIN "+b64("\x00alice\x00secret"), "502 5.5.1")
	})
}

func TestAuthenticatorTiming(t *testing.T) {
	// An unknown user is compared against a dummy hash of the same cost.
	e := newEnv(t).withAuth("alice", "secret")
	a, err := newAuthenticator(e.l.Auth, NewGuard(GuardOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	check := func(u, p string) bool {
		ok, err := a.check(u, p)
		if err != nil {
			t.Fatalf("check(%q): %v", u, err)
		}
		return ok
	}
	if !check("alice", "secret") || check("alice", "Secret") || check("bob", "secret") || check("", "") {
		t.Fatal("check gives wrong answers")
	}
	if len(a.dummy) == 0 || string(a.dummy[:7]) != string([]byte(e.l.Auth.Users["alice"])[:7]) {
		t.Errorf("dummy hash %q does not match the users' cost", a.dummy)
	}
}
