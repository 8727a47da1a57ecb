package reception

import (
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// TestGoSMTPClient runs go-smtp's own client through STARTTLS, AUTH and a
// relayed message, and checks that a refusal reaches it as a typed error.
func TestGoSMTPClient(t *testing.T) {
	e := newEnv(t).withTLS().withAuth("alice", "secret")
	e.l.Mode = "submission"
	e.start()
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := smtp.NewClientStartTLS(conn, &tls.Config{RootCAs: e.roots, ServerName: "mx.test"})
	if err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatalf("EHLO: %v", err)
	}
	if size, ok := c.MaxMessageSize(); !ok || size != 64<<10 {
		t.Errorf("SIZE = %d, %v", size, ok)
	}
	for _, ext := range []string{"PIPELINING", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING"} {
		if ok, _ := c.Extension(ext); !ok {
			t.Errorf("%s not advertised", ext)
		}
	}
	if !c.SupportsAuth("PLAIN") || !c.SupportsAuth("LOGIN") {
		t.Error("AUTH PLAIN LOGIN not advertised after STARTTLS")
	}

	// Unauthenticated relaying is refused with a typed error.
	err = c.SendMail("alice@example.com", []string{"x@other.org"}, strings.NewReader("Subject: a\r\n\r\nb\r\n"))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 530 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 0}) {
		t.Fatalf("unauthenticated relay: %v", err)
	}
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "alice", "secret")); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	if err := c.SendMail("alice@example.com", []string{"x@other.org"}, strings.NewReader("Subject: a\r\n\r\n.leading dot\r\n")); err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Errorf("QUIT: %v", err)
	}
	subs := e.sink.got()
	if len(subs) != 1 || subs[0].User != "alice" || !strings.HasSuffix(string(subs[0].Body), "\r\n\r\n.leading dot\r\n") {
		t.Fatalf("sink got %+v", subs)
	}
}
