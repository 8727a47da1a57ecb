package feedback

import (
	"reflect"
	"testing"
)

// TestTextBounce covers each pattern of textbounce.go with a real-shaped
// plain-text bounce: who failed, with what status, and the quoted
// original's Message-ID.
func TestTextBounce(t *testing.T) {
	tests := []struct {
		name  string
		text  string
		rcpts []Recipient
		msgID string
	}{
		{name: "qmail",
			text: "Hi. This is the qmail-send program at mail.example.org.\n" +
				"I'm afraid I wasn't able to deliver your message to the following addresses.\n" +
				"This is a permanent error; I've given up. Sorry it didn't work out.\n\n" +
				"<nobody@example.org>:\n" +
				"Sorry, no mailbox here by that name. (#5.1.1)\n\n" +
				"--- Below this line is a copy of the message.\n\n" +
				"Return-Path: <bounce+abc@fb.example.com>\n" +
				"Message-ID: <q1@example.com>\n" +
				"To: nobody@example.org\n",
			rcpts: []Recipient{{Addr: "nobody@example.org", Action: "failed", Status: "5.1.1", Diagnostic: "Sorry, no mailbox here by that name. (#5.1.1)"}},
			msgID: "<q1@example.com>"},
		{name: "postfix without DSN",
			text: "I'm sorry to have to inform you that your message could not\nbe delivered to one or more recipients.\n\n" +
				"<full@example.org>: host mx.example.org[192.0.2.3] said: 552 5.2.2 Mailbox full\n" +
				"    (in reply to RCPT TO command)\n\n" +
				"----- Original message -----\n" +
				"Message-Id: <p1@example.com>\n",
			rcpts: []Recipient{{Addr: "full@example.org", Action: "failed", Status: "5.2.2", Diagnostic: "host mx.example.org[192.0.2.3] said: 552 5.2.2 Mailbox full (in reply to RCPT TO command)"}},
			msgID: "<p1@example.com>"},
		{name: "gmail style",
			text: "Delivery to the following recipient failed permanently:\n\n" +
				"     lost@example.org\n\n" +
				"Technical details of permanent failure:\n" +
				"The email account that you tried to reach does not exist. 550 5.1.1\n\n" +
				"----- Original message -----\n\n" +
				"> Message-ID: <g1@example.com>\n",
			rcpts: []Recipient{{Addr: "lost@example.org", Action: "failed", Status: "5.1.1", Diagnostic: "Technical details of permanent failure: The email account that you tried to reach does not exist. 550 5.1.1"}},
			msgID: "<g1@example.com>"},
		{name: "exim, two addresses, reply code only",
			text: "This message was created automatically by mail delivery software.\n\n" +
				"A message that you sent could not be delivered to one or more of its\n" +
				"recipients. This is a permanent error. The following address(es) failed:\n\n" +
				"  a@example.org\n" +
				"    SMTP error from remote mail server after RCPT TO:<a@example.org>:\n" +
				"    550 unknown user\n" +
				"  b@example.org\n" +
				"    SMTP error from remote mail server after end of data:\n" +
				"    554 rejected\n",
			rcpts: []Recipient{
				{Addr: "a@example.org", Action: "failed", Status: "5.0.0", Diagnostic: "SMTP error from remote mail server after RCPT TO:<a@example.org>: 550 unknown user"},
				{Addr: "b@example.org", Action: "failed", Status: "5.0.0", Diagnostic: "SMTP error from remote mail server after end of data: 554 rejected"},
			}},
		{name: "delay notice",
			text: "This is the mail system at host mx.example.org.\n\n" +
				"####################################################################\n" +
				"# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n" +
				"####################################################################\n\n" +
				"Your message could not be delivered for more than 4 hour(s).\nIt will be retried until it is 5 day(s) old.\n\n" +
				"<later@example.org>: connect to mx.example.org[192.0.2.9]:25: Connection timed out\n" +
				"The mail system will retry.\n",
			rcpts: []Recipient{{Addr: "later@example.org", Action: "delayed", Status: "4.0.0", Diagnostic: "connect to mx.example.org[192.0.2.9]:25: Connection timed out The mail system will retry."}}},
		{name: "addresses only in the quoted original do not count",
			text: "Thanks for your message.\n\n----- Original message -----\n<someone@example.org>: hello\nMessage-ID: <x@example.com>\n"},
		{name: "plain mail", text: "Do you sell widgets?\nTo: me@example.org\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := &Report{}
			ok := parseTextBounce(rep, []byte(tc.text))
			if ok != (tc.rcpts != nil) {
				t.Fatalf("parseTextBounce = %v, want %v (recipients %+v)", ok, tc.rcpts != nil, rep.Recipients)
			}
			if !reflect.DeepEqual(rep.Recipients, tc.rcpts) {
				t.Errorf("recipients\n got %+v\nwant %+v", rep.Recipients, tc.rcpts)
			}
			if rep.Original.MessageID != tc.msgID {
				t.Errorf("message id %q, want %q", rep.Original.MessageID, tc.msgID)
			}
		})
	}
}
