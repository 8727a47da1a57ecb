package smtpclient

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestSendPerRecipientReplies(t *testing.T) {
	var body string
	addr := startServer(t, func(s *session) {
		s.greet("SIZE 1000", "8BITMIME", "ENHANCEDSTATUSCODES")
		if l := s.expect("MAIL FROM:<sender@a.test>"); !strings.Contains(l, " SIZE=") {
			t.Errorf("MAIL without SIZE although offered: %q", l)
		}
		s.reply("250 2.1.0 Ok")
		s.expect("RCPT TO:<ok@b.test>")
		s.reply("250 2.1.5 Ok")
		s.expect("RCPT TO:<nouser@b.test>")
		s.reply("550-5.1.1 The email account that you tried to reach does not exist.", "550 5.1.1 Please check.")
		s.expect("RCPT TO:<later@b.test>")
		s.reply("451 4.2.0 Try later")
		s.expect("DATA")
		s.reply("354 End data with <CR><LF>.<CR><LF>")
		body = s.data()
		s.reply("250 2.0.0 Ok: queued as 1234")
		s.expect("QUIT")
		s.reply("221 2.0.0 Bye")
	})
	c, err := Dial(context.Background(), quick(addr))
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Send(context.Background(), "sender@a.test", []string{"ok@b.test", "nouser@b.test", "later@b.test"}, []byte("Subject: hi\r\n\r\nhello\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	if res.Pipelined {
		t.Error("pipelined without PIPELINING")
	}
	want := &Result{
		Mail: rp(250, "2.1.0", "Ok", StageMail),
		Rcpt: []Reply{
			rp(250, "2.1.5", "Ok", StageRcpt),
			rp(550, "5.1.1", "The email account that you tried to reach does not exist. Please check.", StageRcpt),
			rp(451, "4.2.0", "Try later", StageRcpt),
		},
		Data:     rp(250, "2.0.0", "Ok: queued as 1234", StageEOD),
		Accepted: []int{0},
	}
	checkResult(t, res, want)
	if body != "Subject: hi\r\n\r\nhello\r\n.\r\n" {
		t.Errorf("body on the wire = %q", body)
	}
	for i, wantCode := range []int{250, 550, 451} {
		if r, ok := res.Outcome(i); !ok || r.Code != wantCode {
			t.Errorf("Outcome(%d) = %v, %v; want %d", i, r, ok, wantCode)
		}
	}
}

// rp is a reply as the tests expect it, without its raw lines (see
// TestReplyParsing for those).
func rp(code int, enhanced, text, stage string) Reply {
	return Reply{Code: code, Enhanced: enhanced, Text: text, Stage: stage}
}

// sameReply compares replies but for their raw lines, which the send
// tests do not spell out.
func sameReply(a, b Reply) bool {
	return a.Code == b.Code && a.Enhanced == b.Enhanced && a.Text == b.Text && a.Stage == b.Stage
}

func checkResult(t *testing.T, got, want *Result) {
	t.Helper()
	if !sameReply(got.Mail, want.Mail) {
		t.Errorf("Mail = %+v, want %+v", got.Mail, want.Mail)
	}
	if !slices.EqualFunc(got.Rcpt, want.Rcpt, sameReply) {
		t.Errorf("Rcpt = %+v\nwant %+v", got.Rcpt, want.Rcpt)
	}
	if !sameReply(got.Data, want.Data) {
		t.Errorf("Data = %+v, want %+v", got.Data, want.Data)
	}
	if !slices.Equal(got.Accepted, want.Accepted) {
		t.Errorf("Accepted = %v, want %v", got.Accepted, want.Accepted)
	}
}

// RFC 2920: with PIPELINING, MAIL, the RCPTs and DATA arrive before the
// server has said anything; a client waiting for the MAIL reply would
// deadlock with this server and time out.
func TestSendPipelines(t *testing.T) {
	var batch []string
	addr := startServer(t, func(s *session) {
		s.greet("PIPELINING", "SIZE")
		for range 4 {
			batch = append(batch, s.line())
		}
		s.reply("250 2.1.0 Ok", "250 2.1.5 Ok", "550 5.1.1 No such user", "354 Go ahead")
		s.data()
		s.reply("250 2.0.0 Ok")
	})
	c, err := Dial(context.Background(), quick(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Send(context.Background(), "", []string{"a@b.test", "x@b.test"}, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	wantBatch := []string{"MAIL FROM:<> SIZE=3", "RCPT TO:<a@b.test>", "RCPT TO:<x@b.test>", "DATA"}
	if !slices.Equal(batch, wantBatch) {
		t.Errorf("server saw %q before replying, want %q", batch, wantBatch)
	}
	if !res.Pipelined || !slices.Equal(res.Accepted, []int{0}) || res.Data.Code != 250 || res.Data.Stage != StageEOD {
		t.Errorf("result %+v", res)
	}
}

func TestNoDataWhenNoRecipientAccepted(t *testing.T) {
	tests := []struct {
		name   string
		script script
		want   *Result
	}{
		{
			name: "one at a time: RSET instead of DATA",
			script: func(s *session) {
				s.greet()
				s.expect("MAIL")
				s.reply("250 Ok")
				s.expect("RCPT")
				s.reply("550 5.1.1 No")
				s.expect("RCPT")
				s.reply("450 4.2.1 Busy")
				s.expect("RSET")
				s.reply("250 Ok")
			},
			want: &Result{
				Mail: rp(250, "", "Ok", StageMail),
				Rcpt: []Reply{rp(550, "5.1.1", "No", StageRcpt), rp(450, "4.2.1", "Busy", StageRcpt)},
			},
		},
		{
			name: "MAIL refused: no RCPT, RSET",
			script: func(s *session) {
				s.greet()
				s.expect("MAIL")
				s.reply("553 5.7.1 Sender refused")
				s.expect("RSET")
				s.reply("250 Ok")
			},
			want: &Result{Mail: rp(553, "5.7.1", "Sender refused", StageMail)},
		},
		{
			name: "pipelined: DATA refused, RSET",
			script: func(s *session) {
				s.greet("PIPELINING")
				for range 4 {
					s.line()
				}
				s.reply("250 Ok", "550 5.1.1 No", "550 5.1.1 No", "554 5.5.1 No valid recipients")
				s.expect("RSET")
				s.reply("250 Ok")
			},
			want: &Result{
				Mail: rp(250, "", "Ok", StageMail),
				Rcpt: []Reply{rp(550, "5.1.1", "No", StageRcpt), rp(550, "5.1.1", "No", StageRcpt)},
			},
		},
		{
			name: "pipelined: 354 anyway gets an empty message, then RSET",
			script: func(s *session) {
				s.greet("PIPELINING")
				for range 4 {
					s.line()
				}
				s.reply("250 Ok", "550 5.1.1 No", "550 5.1.1 No", "354 Go ahead")
				if d := s.data(); d != ".\r\n" {
					t.Errorf("body sent although no recipient was accepted: %q", d)
				}
				s.reply("554 5.5.1 No valid recipients")
				s.expect("RSET")
				s.reply("250 Ok")
			},
			want: &Result{
				Mail: rp(250, "", "Ok", StageMail),
				Rcpt: []Reply{rp(550, "5.1.1", "No", StageRcpt), rp(550, "5.1.1", "No", StageRcpt)},
			},
		},
		{
			name: "DATA refused after accepted recipients",
			script: func(s *session) {
				s.greet()
				s.expect("MAIL")
				s.reply("250 Ok")
				s.expect("RCPT")
				s.reply("250 Ok")
				s.expect("RCPT")
				s.reply("250 Ok")
				s.expect("DATA")
				s.reply("451 4.3.0 Not now")
				s.expect("RSET")
				s.reply("250 Ok")
			},
			want: &Result{
				Mail:     rp(250, "", "Ok", StageMail),
				Rcpt:     []Reply{rp(250, "", "Ok", StageRcpt), rp(250, "", "Ok", StageRcpt)},
				Data:     rp(451, "4.3.0", "Not now", StageData),
				Accepted: []int{0, 1},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := startServer(t, func(s *session) {
				tt.script(s)
				// The connection stays usable after the reset.
				s.expect("NOOP")
			})
			c, err := Dial(context.Background(), quick(addr))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			res, err := c.Send(context.Background(), "s@a.test", []string{"x@b.test", "y@b.test"}, []byte("body\r\n"))
			if err != nil {
				t.Fatal(err)
			}
			checkResult(t, res, tt.want)
			for i := range 2 {
				r, ok := res.Outcome(i)
				if !ok || r.Positive() {
					t.Errorf("Outcome(%d) = %+v, %v: want a decided failure", i, r, ok)
				}
			}
			c.send("test", []byte("NOOP\r\n"))
		})
	}
}

func TestSendParameters(t *testing.T) {
	tests := []struct {
		name     string
		exts     []string
		from     string
		rcpt     string
		body     string
		wantMail string
		wantErr  error
		opts     MailOptions
	}{
		{"plain", nil, "a@a.test", "b@b.test", "x", "MAIL FROM:<a@a.test>", nil, MailOptions{}},
		{"SIZE counts CRLF", []string{"SIZE 100"}, "a@a.test", "b@b.test", "a\nb", "MAIL FROM:<a@a.test> SIZE=6", nil, MailOptions{}},
		{"8BITMIME for 8-bit body", []string{"8BITMIME"}, "a@a.test", "b@b.test", "caf\xc3\xa9", "MAIL FROM:<a@a.test> BODY=8BITMIME", nil, MailOptions{}},
		{"7-bit body needs no BODY=", []string{"8BITMIME"}, "a@a.test", "b@b.test", "cafe", "MAIL FROM:<a@a.test>", nil, MailOptions{}},
		{"SMTPUTF8 when needed", []string{"SMTPUTF8"}, "a@a.test", "jürgen@b.test", "x", "MAIL FROM:<a@a.test> SMTPUTF8", nil, MailOptions{}},
		{"SMTPUTF8 needed, not offered", nil, "a@a.test", "jürgen@b.test", "x", "", ErrSMTPUTF8Unsupported, MailOptions{}},
		{"non-ASCII sender needs SMTPUTF8", []string{"8BITMIME"}, "jürgen@a.test", "b@b.test", "x", "", ErrSMTPUTF8Unsupported, MailOptions{}},
		// RFC 6531 §3.4: mail that came with SMTPUTF8 asks for it where offered.
		{"SMTPUTF8 mail keeps the flag", []string{"SMTPUTF8"}, "a@a.test", "b@b.test", "x", "MAIL FROM:<a@a.test> SMTPUTF8", nil, MailOptions{SMTPUTF8: true}},
		// RFC 6532 §3: its UTF-8 header fields need the extension.
		{"SMTPUTF8 mail with a UTF-8 header, not offered", []string{"8BITMIME"}, "a@a.test", "b@b.test", "Subject: Grüße\r\n\r\nx", "", ErrSMTPUTF8Unsupported, MailOptions{SMTPUTF8: true}},
		// RFC 6531 §3.2: nothing in it needs SMTPUTF8 any more, so it goes without.
		{"SMTPUTF8 mail that is all ASCII, not offered", []string{"8BITMIME"}, "a@a.test", "b@b.test", "Subject: hi\r\n\r\nGrüße", "MAIL FROM:<a@a.test> BODY=8BITMIME", nil, MailOptions{SMTPUTF8: true}},
		{"UTF-8 header without the flag is 8-bit data", []string{"8BITMIME"}, "a@a.test", "b@b.test", "Subject: Grüße\r\n\r\nx", "MAIL FROM:<a@a.test> BODY=8BITMIME", nil, MailOptions{}},
		{"CRLF injection", nil, "a@a.test>\r\nRCPT TO:<evil@x", "b@b.test", "x", "", ErrBadAddress, MailOptions{}},
		{"bad recipient", nil, "a@a.test", "b@b.test> NOTIFY=NEVER", "x", "", ErrBadAddress, MailOptions{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mail string
			addr := startServer(t, func(s *session) {
				s.greet(tt.exts...)
				mail = s.line()
				if mail == "" || strings.HasPrefix(mail, "QUIT") {
					return
				}
				s.reply("250 Ok")
				s.expect("RCPT")
				s.reply("250 Ok")
				s.expect("DATA")
				s.reply("354 Go")
				s.data()
				s.reply("250 Ok")
			})
			c, err := Dial(context.Background(), quick(addr))
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.SendWith(context.Background(), tt.from, []string{tt.rcpt}, []byte(tt.body), tt.opts)
			c.Quit()
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if mail != tt.wantMail {
				t.Errorf("MAIL = %q, want %q", mail, tt.wantMail)
			}
		})
	}
}

func TestSendDotStuffingOnTheWire(t *testing.T) {
	var wire string
	addr := startServer(t, func(s *session) {
		s.greet()
		s.expect("MAIL")
		s.reply("250 Ok")
		s.expect("RCPT")
		s.reply("250 Ok")
		s.expect("DATA")
		s.reply("354 Go")
		wire = s.data()
		s.reply("250 Ok")
	})
	c, err := Dial(context.Background(), quick(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := "Subject: dots\n\n.\n..two\r\n.hidden\rbare CR\n\r\n.\r\nQUIT\nlast"
	if _, err := c.Send(context.Background(), "a@a.test", []string{"b@b.test"}, []byte(body)); err != nil {
		t.Fatal(err)
	}
	want := "Subject: dots\r\n\r\n..\r\n...two\r\n..hidden\r\nbare CR\r\n\r\n..\r\nQUIT\r\nlast\r\n.\r\n"
	if wire != want {
		t.Errorf("wire = %q\nwant   %q", wire, want)
	}
}

func TestResetAndQuit(t *testing.T) {
	addr := startServer(t, func(s *session) {
		s.greet()
		s.expect("RSET")
		s.reply("250 2.0.0 Ok")
		s.expect("RSET")
		s.reply("421 4.4.2 Timeout")
		s.expect("QUIT")
		s.reply("221 Bye")
	})
	c, err := Dial(context.Background(), quick(addr))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	var r *Reply
	if err := c.Reset(context.Background()); !errors.As(err, &r) || r.Code != 421 || r.Stage != StageRset {
		t.Fatalf("Reset: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Send(context.Background(), "", []string{"a@b.test"}, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Quit: %v", err)
	}
}
