package reception

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// fakeSuppressor suppresses a fixed set and records what it was asked.
type fakeSuppressor struct {
	list map[string]bool
	mu   sync.Mutex
	seen []string
}

func (f *fakeSuppressor) SuppressedAtRcpt(rcpt string, t RcptContext) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen = append(f.seen, rcpt+" from "+t.From+" via "+t.Listener+" "+t.ClientIP)
	return f.list[rcpt]
}

// TestSuppressedRecipientRefusedOthersAccepted: a suppressed recipient is
// answered 550 5.7.1 at RCPT, in the stored form of its address, and the
// others of the transaction are accepted and delivered to the sink.
func TestSuppressedRecipientRefusedOthersAccepted(t *testing.T) {
	sup := &fakeSuppressor{list: map[string]bool{"gone@xn--bcher-kva.example": true}}
	e := newEnv(t)
	e.p.Suppressions = sup
	e.start()
	c := e.ehlo()
	c.expect("MAIL FROM:<a@client.test> SMTPUTF8", "250")
	c.expect("RCPT TO:<gone@bücher.example>", "550 5.7.1 Recipient suppressed")
	c.expect("RCPT TO:<kept@example.com>", "250")
	c.expect("DATA", "354")
	c.expect("Subject: x\r\n\r\nhi\r\n.", "250")
	subs := e.sink.got()
	if len(subs) != 1 || strings.Join(subs[0].Recipients, ",") != "kept@example.com" {
		t.Fatalf("sink got %+v, want one message to kept@example.com", subs)
	}
	sup.mu.Lock()
	defer sup.mu.Unlock()
	if len(sup.seen) != 2 || sup.seen[0] != "gone@xn--bcher-kva.example from a@client.test via test 127.0.0.1" {
		t.Fatalf("suppressor asked %q", sup.seen)
	}
}

// Suppressed recipients do not count as refused RCPTs (maxRcptFailures):
// a bulk sender's session with many of them goes on.
func TestSuppressedRecipientsDoNotCloseTheSession(t *testing.T) {
	sup := &fakeSuppressor{list: map[string]bool{}}
	for i := range maxRcptFailures + 10 {
		sup.list[fmt.Sprintf("gone%d@example.com", i)] = true
	}
	e := newEnv(t)
	e.p.Suppressions = sup
	e.start()
	c := e.ehlo()
	c.expect("MAIL FROM:<a@client.test>", "250")
	for i := range maxRcptFailures + 10 {
		c.expect(fmt.Sprintf("RCPT TO:<gone%d@example.com>", i), "550 5.7.1")
	}
	c.expect("RCPT TO:<kept@example.com>", "250")
}
