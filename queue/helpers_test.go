package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

var ctx = context.Background()

func quietLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testOpts returns small segments so tests cross file boundaries, and no
// background compaction so tests decide when it runs.
func testOpts(t testing.TB) Options {
	return Options{SegmentSize: 64 << 10, BodyFileSize: 256 << 10, CompactInterval: -1, Logger: quietLogger(t)}
}

func mustOpen(t testing.TB, dir string, opts Options) *Spool {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func mustClose(t testing.TB, s *Spool) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func testEnv(i int) *Envelope {
	return &Envelope{
		From:       fmt.Sprintf("sender%d@example.org", i),
		Recipients: []Recipient{{Addr: fmt.Sprintf("rcpt%d@example.com", i)}},
		Listener:   "mx",
		ClientIP:   "192.0.2.1",
		Tenant:     "acme",
		Pool:       "default",
		Priority:   i % 3,
		Generation: 7,
	}
}

func testBody(i, size int) []byte {
	b := bytes.Repeat([]byte(fmt.Sprintf("message %d line\r\n", i)), size/16+1)
	return b[:size]
}

// envEqual compares envelopes with time.Time.Equal (the spool returns UTC).
func envEqual(a, b Envelope) bool {
	if !a.Received.Equal(b.Received) || !a.NextAttempt.Equal(b.NextAttempt) {
		return false
	}
	a.Received, b.Received, a.NextAttempt, b.NextAttempt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if len(a.Recipients) == 0 && len(b.Recipients) == 0 {
		a.Recipients, b.Recipients = nil, nil
	}
	return fmt.Sprintf("%#v", a) == fmt.Sprintf("%#v", b)
}

// snapshot returns every live envelope and body, sorted by ID.
type liveMsg struct {
	env  Envelope
	body []byte
}

func snapshot(t testing.TB, s *Spool) map[string]liveMsg {
	t.Helper()
	out := make(map[string]liveMsg)
	s.Each(func(e Envelope) bool {
		b, err := s.Body(e.ID)
		if err != nil {
			t.Fatalf("Body(%s): %v", e.ID, err)
		}
		out[e.ID] = liveMsg{e, b}
		return true
	})
	return out
}

func sameSnapshot(t testing.TB, got, want map[string]liveMsg) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("live messages: got %d, want %d", len(got), len(want))
	}
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		g, ok := got[id]
		if !ok {
			t.Fatalf("message %s missing", id)
		}
		if !envEqual(g.env, want[id].env) {
			t.Fatalf("envelope %s:\n got %+v\nwant %+v", id, g.env, want[id].env)
		}
		if !bytes.Equal(g.body, want[id].body) {
			t.Fatalf("body %s differs (%d vs %d bytes)", id, len(g.body), len(want[id].body))
		}
	}
}

// lastSegment returns the path of the newest log segment.
func lastSegment(t testing.TB, dir string) string {
	t.Helper()
	segs, _, err := listSegments(filepath.Join(dir, "wal"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no segments: %v", err)
	}
	return segs[len(segs)-1].path
}

func contextWithCancel() (context.Context, context.CancelFunc) { return context.WithCancel(ctx) }

func isCorrupt(err error) bool { return errors.Is(err, ErrCorrupt) }
