package smtpclient

import (
	"context"
	"testing"
)

// TestSendAll: with one recipient refused nothing is sent, even to a
// server offering PIPELINING, and the connection stays usable; with all
// accepted the message goes and the end-of-data reply is the server's.
func TestSendAll(t *testing.T) {
	var body string
	addr := startServer(t, func(s *session) {
		s.greet("PIPELINING", "ENHANCEDSTATUSCODES")
		s.expect("MAIL FROM:<a@a.test>")
		s.reply("250 2.1.0 Ok")
		s.expect("RCPT TO:<ok@b.test>")
		s.reply("250 2.1.5 Ok")
		s.expect("RCPT TO:<nouser@b.test>")
		s.reply("550 5.1.1 No such user")
		s.expect("RSET")
		s.reply("250 2.0.0 Ok")
		s.expect("MAIL FROM:<a@a.test>")
		s.reply("250 2.1.0 Ok")
		s.expect("RCPT TO:<ok@b.test>")
		s.reply("250 2.1.5 Ok")
		s.expect("DATA")
		s.reply("354 Go ahead")
		body = s.data()
		s.reply("250 2.0.0 Ok: queued as Q1")
		s.expect("QUIT")
		s.reply("221 2.0.0 Bye")
	})
	c, err := Dial(context.Background(), quick(addr))
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("Subject: s\r\n\r\nb\r\n")
	res, err := c.SendAll(context.Background(), "a@a.test", []string{"ok@b.test", "nouser@b.test"}, msg)
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res, &Result{
		Mail: rp(250, "2.1.0", "Ok", StageMail),
		Rcpt: []Reply{rp(250, "2.1.5", "Ok", StageRcpt), rp(550, "5.1.1", "No such user", StageRcpt)},
	})
	res, err = c.SendAll(context.Background(), "a@a.test", []string{"ok@b.test"}, msg)
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res, &Result{
		Mail:     rp(250, "2.1.0", "Ok", StageMail),
		Rcpt:     []Reply{rp(250, "2.1.5", "Ok", StageRcpt)},
		Data:     rp(250, "2.0.0", "Ok: queued as Q1", StageEOD),
		Accepted: []int{0},
	})
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	if body != "Subject: s\r\n\r\nb\r\n.\r\n" {
		t.Errorf("body on the wire %q", body)
	}
}
