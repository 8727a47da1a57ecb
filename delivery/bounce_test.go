package delivery

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/internal/golden"
	"github.com/cuemta/cuemta/queue"
)

var (
	dsnMessageID = regexp.MustCompile(`(?m)^Message-ID: <([a-z2-7]{26})@mta\.example>\r$`)
	dsnBoundary  = regexp.MustCompile(`=_dsn_[0-9a-f]{24}`)
)

// original is a message as reception stores it.
const original = "Received: from client.test ([192.0.2.7])\r\n\tby mta.example (cuemta) with ESMTP id abcdefghijklmnop\r\n\tfor <gone@example.net>;\r\n\tTue, 01 Dec 2026 11:00:00 +0000\r\n" +
	"From: Sender <sender@example.org>\r\nTo: gone@example.net\r\nSubject: the report,\r\n\tfolded\r\nMessage-ID: <orig-1@example.org>\r\n\r\n" +
	"Body text that the DSN must not return.\r\n"

// TestDSNForQueuedMessage: the DSN for a message in a real spool (its
// queue ID made by the spool) has a Message-ID of its own, <random@host>
// (RFC 5322 §3.6.4), not the queue ID, different for each DSN of the same
// message, and returns the original's header section only, folding kept;
// the rest is the golden file tests/golden/dsn/from-queue.txt.
func TestDSNForQueuedMessage(t *testing.T) {
	cfg := loadTestConfig(t, "hostname: \"mta.example\"\n")
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	sp, err := queue.Open(filepath.Join(t.TempDir(), "spool"), queue.Options{
		CompactInterval: -1, Now: func() time.Time { return now }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	id, err := sp.Enqueue(context.Background(), &queue.Envelope{From: "sender@example.org", Received: now.Add(-time.Hour),
		Recipients: []queue.Recipient{{Addr: "gone@example.net"}}}, []byte(original))
	if err != nil {
		t.Fatal(err)
	}
	env, ok := sp.Get(id)
	if !ok {
		t.Fatalf("message %s not in the spool", id)
	}
	e := New(Options{Store: sp, Now: func() time.Time { return now }, Policy: func() *Policy { return &Policy{Config: cfg, Generation: 1} }})
	fails := []failure{{rcpt: "gone@example.net", status: "5.1.1", diagnostic: "550 5.1.1 no such user", remoteMTA: "mx.example.net", category: "bad-mailbox"}}
	for range 2 {
		att := &attempt{sched: e, env: env, policy: e.opts.Policy(), started: now}
		if err := att.bounce(fails); err != nil {
			t.Fatal(err)
		}
	}
	var bodies [][]byte
	sp.Each(func(env queue.Envelope) bool {
		if env.From == "" {
			b, err := sp.Body(env.ID)
			if err != nil {
				t.Fatalf("DSN %s: %v", env.ID, err)
			}
			bodies = append(bodies, b)
		}
		return true
	})
	if len(bodies) != 2 {
		t.Fatalf("%d DSNs in the spool, want 2", len(bodies))
	}
	var ids []string
	for _, b := range bodies {
		m := dsnMessageID.FindSubmatch(b)
		if m == nil {
			t.Fatalf("DSN has no Message-ID <random@mta.example>:\n%s", b)
		}
		ids = append(ids, string(m[1]))
		if strings.Contains(string(m[0]), id) {
			t.Errorf("the DSN's Message-ID %s names the queue ID %s", m[0], id)
		}
	}
	if ids[0] == ids[1] {
		t.Errorf("two DSNs of one message share the Message-ID %s", ids[0])
	}
	out := dsnMessageID.ReplaceAll(bodies[0], []byte("Message-ID: <RANDOM@mta.example>\r"))
	golden.Check(t, "../tests/golden/dsn/from-queue.txt", dsnBoundary.ReplaceAll(out, []byte("=_dsn_RANDOM")))
}
