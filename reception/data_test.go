package reception

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestSmuggling sends the classic SMTP smuggling payloads: a fake end of
// data followed by a second transaction, then the real end. The server
// must see at most one message and never act on the smuggled commands.
func TestSmuggling(t *testing.T) {
	const smuggled = "MAIL FROM:<admin@example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n" +
		"From: admin@example.com\r\nSubject: smuggled\r\n\r\nevil\r\n"
	tests := []struct {
		name    string
		fakeEnd string
		want    string // the one reply to the end of data
	}{
		{`\n.\r\n`, "\n.\r\n", "550 5.6.0 Bare LF/CR not allowed"},
		{`\r\n.\n`, "\r\n.\n", "550 5.6.0 Bare LF/CR not allowed"},
		{`\r.\r\n`, "\r.\r\n", "550 5.6.0 Bare LF/CR not allowed"},
		{`\n.\n`, "\n.\n", "550 5.6.0 Bare LF/CR not allowed"},
		{`\r.\r`, "\r.\r", "550 5.6.0 Bare LF/CR not allowed"},
		{`\n.\r`, "\n.\r", "550 5.6.0 Bare LF/CR not allowed"},
		// Upstream go-smtp dropped the CR of ".\r" and queued this; the
		// fork passes it on and the bare CR is refused. ("\r\r\n.\r\n" is
		// a real end of data: see TestDataEndAfterBareCR.)
		{`\r\n.\r`, "\r\n.\r", "550 5.6.0 Bare LF/CR not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t).start()
			c := e.ehlo()
			c.expect("MAIL FROM:<a@client.test>", "250")
			c.expect("RCPT TO:<b@example.com>", "250")
			c.expect("DATA", "354")
			c.send("Subject: legit\r\n\r\nhello" + tt.fakeEnd + smuggled + ".\r\n")
			if got := c.reply(); got != tt.want {
				t.Fatalf("end of data: %q, want %q", got, tt.want)
			}
			// The next reply must answer NOOP: nothing smuggled was run.
			if got := c.cmd("NOOP"); got != "250 2.0.0 I have successfully done nothing" {
				t.Fatalf("after the message: %q (smuggled commands were run?)", got)
			}
			subs := e.sink.got()
			if tt.want[0] == '5' && len(subs) != 0 || tt.want[0] == '2' && len(subs) != 1 {
				t.Fatalf("sink got %d messages", len(subs))
			}
			for _, s := range subs {
				if s.From != "a@client.test" || strings.Join(s.Recipients, ",") != "b@example.com" {
					t.Errorf("stored envelope %q -> %q", s.From, s.Recipients)
				}
				if hasBareCRorLF(s.Body) {
					t.Errorf("stored body has a bare CR or LF: %q", s.Body)
				}
			}
		})
	}
}

func TestBareLineEndings(t *testing.T) {
	for _, body := range []string{
		"Subject: x\n\nunix line endings\n\r\n",
		"Subject: x\r\n\r\none bare\nLF\r\n",
		"Subject: x\r\n\r\none bare\rCR\r\n",
		"Subject: x\r\n\r\ndoubled CR\r\r\nmore\r\n",
	} {
		t.Run(fmt.Sprintf("%q", body), func(t *testing.T) {
			e := newEnv(t).start()
			c := e.ehlo()
			if got := c.sendMessage("a@client.test", []string{"b@example.com"}, body); got != "550 5.6.0 Bare LF/CR not allowed" {
				t.Fatalf("DATA: %q", got)
			}
			c.expect("MAIL FROM:<a@client.test>", "250")
			c.expect("RCPT TO:<b@example.com>", "250")
			c.send("BDAT " + itoa(len(body)) + " LAST\r\n" + body)
			if got := c.reply(); got != "550 5.6.0 Bare LF/CR not allowed" {
				t.Fatalf("BDAT: %q", got)
			}
			if n := len(e.sink.got()); n != 0 {
				t.Fatalf("sink stored %d messages", n)
			}
		})
	}
}

func TestSinkErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"storage full", &Reply{Code: 452, Enhanced: "4.3.1", Text: "Insufficient system storage"},
			"452 4.3.1 Insufficient system storage"},
		{"wrapped policy reject", fmt.Errorf("rules: %w", &Reply{Code: 550, Enhanced: "5.7.1", Text: "Message rejected by policy", Cause: errors.New("rule spam")}),
			"550 5.7.1 Message rejected by policy"},
		{"plain error", errors.New("disk on fire"),
			"451 4.3.0 Requested action aborted: local storage error, try again later"},
		{"reply without enhanced code", &Reply{Code: 554, Text: "No"}, "554 5.0.0 No"},
		{"reply text with newlines", &Reply{Code: 550, Enhanced: "5.7.1", Text: "a\r\nb"}, "550 5.7.1 a  b"},
		{"success code as error", &Reply{Code: 250, Enhanced: "2.0.0", Text: "huh"},
			"451 4.3.0 Requested action aborted: local storage error, try again later"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.sink.err = tt.err
			e.start()
			c := e.ehlo()
			if got := c.sendMessage("a@client.test", []string{"b@example.com"}, "Subject: x\r\n\r\ny\r\n"); got != tt.want {
				t.Fatalf("DATA: %q, want %q", got, tt.want)
			}
			c.expect("MAIL FROM:<a@client.test>", "250")
			c.expect("RCPT TO:<b@example.com>", "250")
			c.send("BDAT 15 LAST\r\nSubject: x\r\n\r\ny")
			if got := c.reply(); got != tt.want {
				t.Fatalf("BDAT: %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSubmissionHeaders(t *testing.T) {
	tests := []struct {
		name      string
		mode      string
		body      string
		wantAdded []string // fields expected right after the client's header
		wantNot   []string // substrings that must not be in the body
	}{
		{"submission adds both", "submission", "Subject: s\r\n\r\nbody\r\n",
			[]string{"Message-ID: <", "@mx.test>", "Date: Tue, 04 Mar 2025 05:06:07 +0100\r\n"}, nil},
		{"submission keeps the client's", "submission", "message-id: <x@y>\r\nDATE : Mon, 3 Mar 2025 00:00:00 +0000\r\nSubject: s\r\n\r\nbody\r\n",
			nil, []string{"Message-ID: <", "Date: Tue"}},
		{"mx adds neither", "mx", "Subject: s\r\n\r\nbody\r\n",
			nil, []string{"Message-ID:", "Date:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.l.Mode = tt.mode // auth disabled: relay by network
			e.start()
			c := e.ehlo()
			if got := c.sendMessage("a@client.test", []string{"b@example.com"}, tt.body); !strings.HasPrefix(got, "250") {
				t.Fatalf("DATA: %q", got)
			}
			body := string(e.sink.got()[0].Body)
			if !strings.HasPrefix(body, "Received: from client.test ([127.0.0.1])\r\n\tby mx.test (cuemta) with ESMTP id ") {
				t.Errorf("no Received header first:\n%s", body)
			}
			for _, w := range tt.wantAdded {
				if !strings.Contains(body, w) {
					t.Errorf("body lacks %q:\n%s", w, body)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(body, w) {
					t.Errorf("body has %q:\n%s", w, body)
				}
			}
			if !strings.HasSuffix(body, "\r\n\r\nbody\r\n") {
				t.Errorf("header/body separation lost:\n%q", body)
			}
		})
	}
}
