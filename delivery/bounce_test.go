package delivery

import (
	"regexp"
	"testing"
	"time"

	"github.com/cuemta/cuemta/internal/golden"
	"github.com/cuemta/cuemta/queue"
)

var (
	dsnMessageID = regexp.MustCompile(`(?m)^Message-ID: <([0-9a-f]+)@mta\.example>\r$`)
	dsnBoundary  = regexp.MustCompile(`[0-9a-f]{16,}`)
)

// TestDSNForQueuedMessage: the DSN for a spooled message (a real queue
// ID, as the spool makes them) has a Message-ID of its own with the
// reporting host, different for each DSN of the same message; the rest is
// the golden file tests/golden/dsn/from-queue.txt.
func TestDSNForQueuedMessage(t *testing.T) {
	cfg := loadTestConfig(t, "hostname: \"mta.example\"\n")
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	env := queue.Envelope{ID: "1j1jauo45pvr2pfe", From: "sender@example.org", Received: now.Add(-time.Hour),
		Recipients: []queue.Recipient{{Addr: "gone@example.net"}}}
	st := newMemStore(env)
	e := New(Options{Store: st, Now: func() time.Time { return now }, Policy: func() *Policy { return &Policy{Config: cfg, Generation: 1} }})
	fails := []failure{{rcpt: "gone@example.net", status: "5.1.1", diagnostic: "550 5.1.1 no such user", remoteMTA: "mx.example.net", category: "bad-mailbox"}}
	for range 2 {
		att := &attempt{engine: e, env: env, policy: e.opts.Policy(), started: now}
		if err := att.bounce(fails); err != nil {
			t.Fatal(err)
		}
	}
	bodies := st.dsnBodies
	if len(bodies) != 2 {
		t.Fatalf("%d DSNs queued, want 2", len(bodies))
	}
	var ids []string
	for _, b := range bodies {
		m := dsnMessageID.FindSubmatch(b)
		if m == nil {
			t.Fatalf("DSN has no Message-ID <random@mta.example>:\n%s", b)
		}
		ids = append(ids, string(m[1]))
	}
	if ids[0] == ids[1] {
		t.Errorf("two DSNs of one message share the Message-ID %s", ids[0])
	}
	golden.Check(t, "../tests/golden/dsn/from-queue.txt", dsnBoundary.ReplaceAll(bodies[0], []byte("RANDOM")))
}
