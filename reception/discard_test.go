package reception

import (
	"strings"
	"testing"
)

// TestSinkDiscard: a message the Sink discards on purpose (a milter's
// discard) is answered 250 without "queued as", logged with who asked,
// and the session goes on; any other Sink error still refuses.
func TestSinkDiscard(t *testing.T) {
	e := newEnv(t)
	e.sink.err = &Discarded{By: "milter scan", Reason: "discard at eom"}
	e.start()
	c := e.ehlo()
	got := c.sendMessage("a@example.org", []string{"b@example.com"}, "Subject: x\r\n\r\nbody\r\n")
	if got != "250 2.0.0 Ok: message accepted and discarded by a content filter, not queued" {
		t.Errorf("reply %q", got)
	}
	if strings.Contains(got, "queued as") {
		t.Error(`a discarded message was reported "queued as"`)
	}
	if logs := e.logs.String(); !strings.Contains(logs, `msg="message discarded"`) || !strings.Contains(logs, `by="milter scan"`) {
		t.Errorf("no discard log line:\n%s", logs)
	}
	c.expect("NOOP", "250")
}
