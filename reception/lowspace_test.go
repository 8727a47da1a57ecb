package reception

import "testing"

// TestLowSpaceRefusesAtMail: while the Sink reports low space, MAIL FROM
// gets 452 4.3.1 and nothing reaches the Sink; the session goes on, and
// once space is back the same session sends a message. A Sink that fills
// up during DATA still answers 452 4.3.1 there (TestSinkErrors).
func TestLowSpaceRefusesAtMail(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.sink.low.Store(true)
	c := e.ehlo()
	const want = "452 4.3.1 Insufficient system storage, try again later"
	if got := c.cmd("MAIL FROM:<a@client.test>"); got != want {
		t.Fatalf("MAIL FROM while low on space: %q, want %q", got, want)
	}
	// No transaction was started: RCPT is out of sequence.
	c.expect("RCPT TO:<b@example.com>", "502 5.5.1") // go-smtp: Missing MAIL FROM command
	if got := c.cmd("MAIL FROM:<> SIZE=100"); got != want {
		t.Fatalf("MAIL FROM:<> while low on space: %q, want %q", got, want)
	}
	// A syntax error is still reported as such.
	c.expect("MAIL FROM:<a b@client.test>", "501")
	if n := len(e.sink.got()); n != 0 {
		t.Fatalf("sink got %d messages", n)
	}

	e.sink.low.Store(false)
	if got := c.sendMessage("a@client.test", []string{"b@example.com"}, "Subject: x\r\n\r\ny\r\n"); got[:3] != "250" {
		t.Fatalf("after space returned: %q", got)
	}
	if n := len(e.sink.got()); n != 1 {
		t.Fatalf("sink got %d messages, want 1", n)
	}
}
