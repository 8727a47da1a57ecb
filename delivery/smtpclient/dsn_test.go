package smtpclient

import (
	"context"
	"testing"
)

// TestSendDSNParameters: a server that offers DSN gets RET, ENVID, NOTIFY
// and ORCPT (xtext-encoded, RFC 3461 §4); one that does not gets none.
func TestSendDSNParameters(t *testing.T) {
	opts := MailOptions{DSN: DSNOptions{Ret: "HDRS", EnvID: "id+1 x", Rcpt: []RcptDSN{
		{Notify: "SUCCESS,DELAY", ORCPT: "rfc822;Bob=1@B.test"},
		{Notify: "NEVER"},
		{ORCPT: "utf-8;jürgen@b.test"},
	}}}
	rcpts := []string{"bob@b.test", "carol@b.test", "dave@b.test"}
	tests := []struct {
		name string
		exts []string
		mail string
		rcpt []string
	}{
		{"DSN offered", []string{"DSN"}, "MAIL FROM:<a@a.test> RET=HDRS ENVID=id+2B1+20x",
			[]string{"RCPT TO:<bob@b.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;Bob+3D1@B.test", "RCPT TO:<carol@b.test> NOTIFY=NEVER", "RCPT TO:<dave@b.test>"}},
		{"DSN not offered", nil, "MAIL FROM:<a@a.test>",
			[]string{"RCPT TO:<bob@b.test>", "RCPT TO:<carol@b.test>", "RCPT TO:<dave@b.test>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := startServer(t, func(s *session) {
				s.greet(tt.exts...)
				if l := s.line(); l != tt.mail {
					t.Errorf("MAIL: %q, want %q", l, tt.mail)
				}
				s.reply("250 2.1.0 Ok")
				for _, want := range tt.rcpt {
					if l := s.line(); l != want {
						t.Errorf("RCPT: %q, want %q", l, want)
					}
					s.reply("250 2.1.5 Ok")
				}
				s.expect("DATA")
				s.reply("354 go")
				s.data()
				s.reply("250 2.0.0 Ok")
				s.expect("QUIT")
				s.reply("221 2.0.0 Bye")
			})
			c, err := Dial(context.Background(), quick(addr))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.SendWith(context.Background(), "a@a.test", rcpts, []byte("Subject: x\r\n\r\nx\r\n"), opts); err != nil {
				t.Fatal(err)
			}
			c.Quit()
		})
	}
}
