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
		{"250 2.1.5 Ok\r\n", Reply{Code: 250, Enhanced: "2.1.5", Text: "Ok", Stage: "rcpt", Lines: []string{"2.1.5 Ok"}}},
		{"550 5.1.1\r\n", Reply{Code: 550, Enhanced: "5.1.1", Text: "", Stage: "rcpt", Lines: []string{"5.1.1"}}},
		{"250 Ok\r\n", Reply{Code: 250, Enhanced: "", Text: "Ok", Stage: "rcpt", Lines: []string{"Ok"}}},
		{"250\r\n", Reply{Code: 250, Enhanced: "", Text: "", Stage: "rcpt", Lines: []string{""}}},
		// Class mismatch: the text merely looks like a code.
		{"250 5.1.1 is a version\r\n", Reply{Code: 250, Enhanced: "", Text: "5.1.1 is a version", Stage: "rcpt", Lines: []string{"5.1.1 is a version"}}},
		// Multi-line: the lines are joined with one space, the repeated
		// enhanced code is kept once; Lines are as received.
		{"550-5.7.1 First line\r\n550-5.7.1 second\r\n550 5.7.1 third\r\n",
			Reply{Code: 550, Enhanced: "5.7.1", Text: "First line second third", Stage: "rcpt", Lines: []string{"5.7.1 First line", "5.7.1 second", "5.7.1 third"}}},
		{"421-4.7.0 [TSS04] Messages temporarily deferred\r\n421 see https://help.test\r\n",
			Reply{Code: 421, Enhanced: "4.7.0", Text: "[TSS04] Messages temporarily deferred see https://help.test", Stage: "rcpt", Lines: []string{"4.7.0 [TSS04] Messages temporarily deferred", "see https://help.test"}}},
		// A continuation line with another code keeps it, as text.
		{"451-4.3.0 Try later\r\n451 4.7.1 greylisted\r\n",
			Reply{Code: 451, Enhanced: "4.3.0", Text: "Try later 4.7.1 greylisted", Stage: "rcpt", Lines: []string{"4.3.0 Try later", "4.7.1 greylisted"}}},
		{"452 4.5.3 Too many recipients\n", Reply{Code: 452, Enhanced: "4.5.3", Text: "Too many recipients", Stage: "rcpt", Lines: []string{"4.5.3 Too many recipients"}}},
		// Gmail wraps its replies mid-sentence and indents the URL line:
		// the phrase a rule looks for must survive the wrap, with one space.
		{"421-4.7.0 [192.0.2.1] Our system has detected that this message is\r\n" +
			"421-4.7.0 suspicious due to the very low reputation of the sending\r\n" +
			"421-4.7.0 domain. To best protect our users from spam, the message has been\r\n" +
			"421-4.7.0 blocked. Please visit\r\n" +
			"421 4.7.0  https://support.google.com/mail/answer/188131 for more information. - gsmtp\r\n",
			Reply{Code: 421, Enhanced: "4.7.0",
				Text: "[192.0.2.1] Our system has detected that this message is suspicious due to the very low reputation of the sending domain. " +
					"To best protect our users from spam, the message has been blocked. Please visit https://support.google.com/mail/answer/188131 for more information. - gsmtp",
				Stage: "rcpt", Lines: []string{
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
