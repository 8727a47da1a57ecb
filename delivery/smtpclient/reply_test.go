package smtpclient

import (
	"bufio"
	"reflect"
	"strings"
	"testing"
)

func TestReplyParsing(t *testing.T) {
	tests := []struct {
		in   string
		want Reply
	}{
		{"250 2.1.5 Ok\r\n", Reply{250, "2.1.5", "Ok", "rcpt", []string{"2.1.5 Ok"}}},
		{"550 5.1.1\r\n", Reply{550, "5.1.1", "", "rcpt", []string{"5.1.1"}}},
		{"250 Ok\r\n", Reply{250, "", "Ok", "rcpt", []string{"Ok"}}},
		{"250\r\n", Reply{250, "", "", "rcpt", []string{""}}},
		// Class mismatch: the text merely looks like a code.
		{"250 5.1.1 is a version\r\n", Reply{250, "", "5.1.1 is a version", "rcpt", []string{"5.1.1 is a version"}}},
		// Multi-line: the lines are joined with one space, the repeated
		// enhanced code is kept once; Lines are as received.
		{"550-5.7.1 First line\r\n550-5.7.1 second\r\n550 5.7.1 third\r\n",
			Reply{550, "5.7.1", "First line second third", "rcpt", []string{"5.7.1 First line", "5.7.1 second", "5.7.1 third"}}},
		{"421-4.7.0 [TSS04] Messages temporarily deferred\r\n421 see https://help.test\r\n",
			Reply{421, "4.7.0", "[TSS04] Messages temporarily deferred see https://help.test", "rcpt", []string{"4.7.0 [TSS04] Messages temporarily deferred", "see https://help.test"}}},
		// A continuation line with another code keeps it, as text.
		{"451-4.3.0 Try later\r\n451 4.7.1 greylisted\r\n",
			Reply{451, "4.3.0", "Try later 4.7.1 greylisted", "rcpt", []string{"4.3.0 Try later", "4.7.1 greylisted"}}},
		{"452 4.5.3 Too many recipients\n", Reply{452, "4.5.3", "Too many recipients", "rcpt", []string{"4.5.3 Too many recipients"}}},
		// Gmail wraps its replies mid-sentence and indents the URL line:
		// the phrase a rule looks for must survive the wrap, with one space.
		{"421-4.7.0 [192.0.2.1] Our system has detected that this message is\r\n" +
			"421-4.7.0 suspicious due to the very low reputation of the sending\r\n" +
			"421-4.7.0 domain. To best protect our users from spam, the message has been\r\n" +
			"421-4.7.0 blocked. Please visit\r\n" +
			"421 4.7.0  https://support.google.com/mail/answer/188131 for more information. - gsmtp\r\n",
			Reply{421, "4.7.0",
				"[192.0.2.1] Our system has detected that this message is suspicious due to the very low reputation of the sending domain. " +
					"To best protect our users from spam, the message has been blocked. Please visit https://support.google.com/mail/answer/188131 for more information. - gsmtp",
				"rcpt", []string{
					"4.7.0 [192.0.2.1] Our system has detected that this message is",
					"4.7.0 suspicious due to the very low reputation of the sending",
					"4.7.0 domain. To best protect our users from spam, the message has been",
					"4.7.0 blocked. Please visit",
					"4.7.0  https://support.google.com/mail/answer/188131 for more information. - gsmtp",
				}}},
	}
	for _, tt := range tests {
		c := &Conn{br: bufio.NewReader(strings.NewReader(tt.in))}
		got, err := c.readReply("rcpt")
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(*got, tt.want) {
			t.Errorf("%q:\n got %#v\nwant %#v", tt.in, *got, tt.want)
		}
	}
}

// TestReplyText: the join on its own, as policy tests use it for a reply
// written as lines.
func TestReplyText(t *testing.T) {
	tests := []struct {
		code           int
		lines          []string
		enhanced, text string
	}{
		{421, nil, "", ""},
		{421, []string{"4.7.28 Our system has detected an unusual rate of", "4.7.28 unsolicited mail."}, "4.7.28", "Our system has detected an unusual rate of unsolicited mail."},
		// The first line decides the code; an empty line adds no space.
		{550, []string{"no code here", "", "5.7.1 still text"}, "", "no code here 5.7.1 still text"},
		// The class must match the code's (RFC 3463 §2).
		{250, []string{"5.1.1 looks like a code"}, "", "5.1.1 looks like a code"},
		{250, []string{"2.0.0"}, "2.0.0", ""},
	}
	for _, tt := range tests {
		enh, text := ReplyText(tt.code, tt.lines)
		if enh != tt.enhanced || text != tt.text {
			t.Errorf("ReplyText(%d, %q) = %q, %q; want %q, %q", tt.code, tt.lines, enh, text, tt.enhanced, tt.text)
		}
	}
}

func TestReplyHelpers(t *testing.T) {
	tests := []struct {
		r               Reply
		class           int
		temp, perm, pos bool
		err             string
	}{
		{Reply{Code: 250, Enhanced: "2.0.0", Text: "Ok", Stage: StageEOD}, 2, false, false, true, "smtp eod: 250 2.0.0 Ok"},
		{Reply{Code: 354, Text: "Go ahead", Stage: StageData}, 3, false, false, false, "smtp data: 354 Go ahead"},
		{Reply{Code: 451, Enhanced: "4.7.1", Text: "Greylisted\nretry", Stage: StageRcpt}, 4, true, false, false, "smtp rcpt: 451 4.7.1 Greylisted retry"},
		{Reply{Code: 550, Enhanced: "5.1.1", Text: "No such user", Stage: StageRcpt}, 5, false, true, false, "smtp rcpt: 550 5.1.1 No such user"},
	}
	for _, tt := range tests {
		r := tt.r
		if r.Class() != tt.class || r.Temporary() != tt.temp || r.Permanent() != tt.perm || r.Positive() != tt.pos || r.Error() != tt.err {
			t.Errorf("%+v: class %d temp %v perm %v pos %v err %q", r, r.Class(), r.Temporary(), r.Permanent(), r.Positive(), r.Error())
		}
	}
}
