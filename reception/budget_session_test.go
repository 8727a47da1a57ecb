package reception

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/config"
)

// partBody is the first 200 KiB of a message, sent before a transaction is
// ended one way or another.
var partBody = "Subject: budget\r\n\r\n" + strings.Repeat(strings.Repeat("y", 76)+"\r\n", 200<<10/78)

// TestBudgetReleasedOnEveryEnding: message data is reserved in the
// server's Budget as it arrives, and every way a transaction can end
// gives all of it back: the 250, a refusal of the content, the Sink's
// error, the size limit, a timeout or rate cut, RSET and a lost connection
// during BDAT, a disconnect mid-DATA, and the budget's own refusal, which
// holds nothing while the client goes on sending.
func TestBudgetReleasedOnEveryEnding(t *testing.T) {
	const limit = 4 << 20
	tests := []struct {
		name  string
		limit int64 // budget; 0: limit
		tune  func(e *testEnv)
		bdat  bool   // the part goes in one BDAT chunk (not LAST) instead of DATA
		first string // BDAT: the reply to that chunk; "": 250 2.0.0 Continue
		held  bool   // the part is held in the budget while the transaction is open
		end   func(c *client) string
		want  string // the reply that ends the transaction; "": none (closed)
		// Budget refusals expected (at MAIL, in the data).
		refusedMail, refusedData uint64
	}{
		{name: "DATA 250", held: true, want: "250 2.0.0 Ok: queued",
			end: func(c *client) string { c.send("end\r\n.\r\n"); return c.reply() }},
		{name: "DATA content refused", held: true, want: "550 5.6.0 Bare LF/CR",
			end: func(c *client) string { c.send("bare\nLF\r\n.\r\n"); return c.reply() }},
		{name: "DATA sink error", held: true, want: "451 4.3.0",
			tune: func(e *testEnv) { e.sink.err = errors.New("disk on fire") },
			end:  func(c *client) string { c.send(".\r\n"); return c.reply() }},
		{name: "DATA too big", held: true, want: "552 5.3.4",
			tune: func(e *testEnv) { e.l.Limits.MaxMessageSize = 300 << 10 },
			end:  func(c *client) string { c.send(partBody + ".\r\n"); return c.reply() }},
		{name: "DATA disconnect", held: true,
			end: func(c *client) string { c.conn.Close(); return "" }},
		{name: "DATA timeout", held: true, want: "421 4.4.2 Timeout waiting for message data",
			tune: func(e *testEnv) {
				e.l.Limits.DataTimeout = config.Duration(300 * time.Millisecond)
				e.l.Limits.MinDataRate = 1
			},
			end: func(c *client) string { return c.reply() }},
		{name: "DATA too slow", held: true, want: "421 4.4.2 Message data too slow",
			tune: func(e *testEnv) {
				e.l.Limits.DataTimeout = config.Duration(300 * time.Millisecond)
				e.l.Limits.MinDataRate = 1 << 30
			},
			end: func(c *client) string { return c.reply() }},
		{name: "DATA over budget", limit: 128 << 10, want: "452 4.3.1", refusedData: 1,
			end: func(c *client) string {
				c.send(partBody + ".\r\n") // more of it, all discarded
				got := c.reply()
				// The session goes on.
				if r := c.sendMessage("a@client.test", []string{"b@example.com"}, "Subject: small\r\n\r\nok\r\n"); !strings.HasPrefix(r, "250") {
					c.t.Errorf("small message after the refusal: %q", r)
				}
				return got
			}},
		{name: "BDAT LAST 250", bdat: true, held: true, want: "250 2.0.0 Ok: queued",
			end: func(c *client) string { c.send("BDAT 5 LAST\r\nend\r\n"); return c.reply() }},
		{name: "BDAT RSET", bdat: true, held: true, want: "250",
			end: func(c *client) string { return c.cmd("RSET") }},
		{name: "BDAT disconnect", bdat: true, held: true,
			end: func(c *client) string { c.conn.Close(); return "" }},
		{name: "BDAT timeout between chunks", bdat: true, held: true, want: "421 4.4.2 Timeout waiting for message data",
			tune: func(e *testEnv) {
				e.l.Limits.DataTimeout = config.Duration(300 * time.Millisecond)
				e.l.Limits.MinDataRate = 1
			},
			end: func(c *client) string { return c.reply() }},
		{name: "BDAT over budget", limit: 128 << 10, bdat: true, first: "452 4.3.1", refusedData: 1,
			end: func(c *client) string { return c.cmd("NOOP") }, want: "250"},
		{name: "MAIL SIZE over budget", limit: 128 << 10, want: "250", refusedMail: 1,
			end: func(c *client) string {
				if got := c.cmd("MAIL FROM:<a@client.test> SIZE=200000"); !strings.HasPrefix(got, "452 4.3.1") {
					c.t.Errorf("MAIL with a SIZE over the budget: %q", got)
				}
				// A declared size that fits is fine: nothing was reserved.
				return c.cmd("MAIL FROM:<a@client.test> SIZE=60000")
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.l.Limits.MaxMessageSize = 1 << 20
			if tt.limit == 0 {
				tt.limit = limit
			}
			b := NewBudget(tt.limit)
			e.p.Budget = b
			if tt.tune != nil {
				tt.tune(e)
			}
			e.start()
			c := e.ehlo()
			if tt.name != "MAIL SIZE over budget" {
				c.expect("MAIL FROM:<a@client.test>", "250")
				c.expect("RCPT TO:<b@example.com>", "250")
				if tt.bdat {
					c.send("BDAT " + itoa(len(partBody)) + "\r\n" + partBody)
					first := tt.first
					if first == "" {
						first = "250 2.0.0 Continue"
					}
					if got := c.reply(); !strings.HasPrefix(got, first) {
						t.Fatalf("first BDAT chunk: %q, want %q", got, first)
					}
				} else {
					c.expect("DATA", "354")
					c.send(partBody)
				}
			}
			if tt.held {
				// Reserved as it arrives: the part, and at most a chunk more.
				waitFor(t, "the part to be reserved", func() bool { return b.InFlight() >= int64(len(partBody))-8<<10 })
				if got := b.InFlight(); got > int64(len(partBody))+chunkSize {
					t.Errorf("holds %d bytes for %d sent, more than a chunk over", got, len(partBody))
				}
			} else if tt.refusedData > 0 {
				// Refused mid-data: nothing is held while the client goes on.
				waitFor(t, "the refusal", func() bool { _, d := b.Refusals(); return d == tt.refusedData })
				if got := b.InFlight(); got != 0 {
					t.Errorf("a refused transaction holds %d bytes", got)
				}
			}
			got := tt.end(c)
			if !strings.HasPrefix(got, tt.want) {
				t.Errorf("ending: %q, want %q", got, tt.want)
			}
			waitFor(t, "the budget to be released", func() bool { return b.InFlight() == 0 })
			if m, d := b.Refusals(); m != tt.refusedMail || d != tt.refusedData {
				t.Errorf("refusals at MAIL %d, in data %d; want %d, %d", m, d, tt.refusedMail, tt.refusedData)
			}
		})
	}
}

// TestBudgetSharedByServers: two listeners given one Budget draw on the
// same bound, as the process's listeners do.
func TestBudgetSharedByServers(t *testing.T) {
	b := NewBudget(512 << 10)
	var envs [2]*testEnv
	for i := range envs {
		envs[i] = newEnv(t)
		envs[i].l.Limits.MaxMessageSize = 1 << 20
		envs[i].p.Budget = b
		envs[i].start()
	}
	a := envs[0].ehlo()
	a.expect("MAIL FROM:<a@client.test>", "250")
	a.expect("RCPT TO:<b@example.com>", "250")
	a.expect("DATA", "354")
	a.send(partBody + partBody) // 400 KiB held on the first listener
	waitFor(t, "the first listener's bytes", func() bool { return b.InFlight() >= 2*int64(len(partBody))-8<<10 })

	c := envs[1].ehlo()
	if got := c.cmd("MAIL FROM:<a@client.test> SIZE=200000"); !strings.HasPrefix(got, "452 4.3.1") {
		t.Errorf("second listener, SIZE over what is left: %q", got)
	}
	c.expect("MAIL FROM:<a@client.test>", "250")
	c.expect("RCPT TO:<b@example.com>", "250")
	c.expect("DATA", "354")
	c.send(partBody + ".\r\n")
	if got := c.reply(); !strings.HasPrefix(got, "452 4.3.1") {
		t.Errorf("second listener, data over what is left: %q", got)
	}

	a.send(".\r\n")
	if got := a.reply(); !strings.HasPrefix(got, "250") {
		t.Errorf("first listener's message: %q", got)
	}
	if got := c.sendMessage("a@client.test", []string{"b@example.com"}, partBody); !strings.HasPrefix(got, "250") {
		t.Errorf("second listener once the first is done: %q", got)
	}
	waitFor(t, "the budget to be released", func() bool { return b.InFlight() == 0 })
}
