package queue

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestCompactReclaims(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testOpts(t))
	var ids []string
	for i := range 3000 {
		id, err := s.Enqueue(ctx, testEnv(i), testBody(i, 1000))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	before, _ := s.Stats()
	for i, id := range ids {
		if i%20 != 7 { // 5% stay live, spread over every file
			if err := s.Complete(id, OutcomeDelivered, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := snapshot(t, s)
	res, err := s.Compact()
	if err != nil {
		t.Fatal(err)
	}
	after, _ := s.Stats()
	t.Logf("before %+v\nafter  %+v\nresult %+v", before, after, res)
	if after.Live != 150 || res.BodiesMoved == 0 || res.BodyFilesFreed == 0 || res.LogBytesFreed == 0 {
		t.Fatalf("compaction did not reclaim: %+v", res)
	}
	if after.DiskBytes*4 > before.DiskBytes {
		t.Fatalf("disk use %d -> %d: want at least a 75%% reduction", before.DiskBytes, after.DiskBytes)
	}
	sameSnapshot(t, snapshot(t, s), want)

	// Once everything is finished, compaction leaves almost nothing.
	for id := range want {
		if err := s.Complete(id, OutcomeDelivered, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	empty, _ := s.Stats()
	t.Logf("empty  %+v", empty)
	if empty.Live != 0 || empty.DiskBytes > 2*testOpts(t).SegmentSize {
		t.Fatalf("after finishing everything: %+v", empty)
	}
	// And the compacted spool replays: new message, reopen, both states agree.
	id, err := s.Enqueue(ctx, testEnv(1), []byte("after compaction"))
	if err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)
	s = mustOpen(t, dir, testOpts(t))
	defer mustClose(t, s)
	if b, err := s.Body(id); s.Len() != 1 || err != nil || string(b) != "after compaction" {
		t.Fatalf("after reopen: Len %d, body %q, %v", s.Len(), b, err)
	}
}

func TestCompactReplayAgrees(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testOpts(t))
	var ids []string
	for i := range 2000 {
		id, err := s.Enqueue(ctx, testEnv(i), testBody(i, 700))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for i, id := range ids {
		switch {
		case i%10 == 3:
			if err := s.Reschedule(id, time.Unix(int64(i), 0)); err != nil {
				t.Fatal(err)
			}
		case i%10 != 5:
			if err := s.Complete(id, OutcomeExpired, "too old"); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range 3 { // repeated compaction is idempotent
		if _, err := s.Compact(); err != nil {
			t.Fatal(err)
		}
	}
	want := snapshot(t, s)
	mustClose(t, s)
	s = mustOpen(t, dir, testOpts(t))
	defer mustClose(t, s)
	sameSnapshot(t, snapshot(t, s), want)
}

func TestBackgroundCompaction(t *testing.T) {
	opts := testOpts(t)
	opts.CompactInterval = 20 * time.Millisecond
	s := mustOpen(t, t.TempDir(), opts)
	defer mustClose(t, s)
	var ids []string
	for i := range 1500 {
		id, err := s.Enqueue(ctx, testEnv(i), testBody(i, 1000))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	before, _ := s.Stats()
	for _, id := range ids {
		if err := s.Complete(id, OutcomeDelivered, ""); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := s.Stats()
		if st.DiskBytes*4 < before.DiskBytes {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("background compaction did not reclaim: before %+v, now %+v", before, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// errorCounter is a slog handler that counts ERROR records and keeps the
// first, so a test can assert that nothing was logged at ERROR.
type errorCounter struct {
	mu    sync.Mutex
	n     int
	first string
}

func (h *errorCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (h *errorCounter) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 {
		h.first = r.Message
		r.Attrs(func(a slog.Attr) bool { h.first += " " + a.String(); return true })
	}
	h.n++
	return nil
}
func (h *errorCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *errorCounter) WithGroup(string) slog.Handler      { return h }

// TestCompactDuringWrites runs compaction in a loop while writers enqueue
// and complete messages, with segments small enough that batches keep
// starting new ones. The log cut used to be chosen off the committer and
// could fall inside a batch being written; the truncation then refused
// with an ERROR. Now no round may fail and every live message survives.
func TestCompactDuringWrites(t *testing.T) {
	dir := t.TempDir()
	errs := &errorCounter{}
	opts := testOpts(t)
	opts.SegmentSize = 2 << 10
	opts.BodyFileSize = 32 << 10
	opts.Logger = slog.New(errs)
	s := mustOpen(t, dir, opts)

	const writers, perWriter = 32, 40
	stop := make(chan struct{})
	var rounds, moved atomic.Int64
	compactErr := make(chan error, 1)
	go func() {
		defer close(compactErr)
		for {
			select {
			case <-stop:
				return
			default:
			}
			res, err := s.Compact()
			if err != nil {
				compactErr <- err
				return
			}
			rounds.Add(1)
			moved.Add(int64(res.RecordsMoved))
		}
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []string
			for i := range perWriter {
				n := w*perWriter + i
				id, err := s.Enqueue(ctx, testEnv(n), testBody(n, 100+n%300))
				if err != nil {
					t.Error(err)
					return
				}
				mine = append(mine, id)
				// Finish most messages soon, so segments become mostly dead
				// and compaction keeps cutting.
				if len(mine) > 3 && i%4 != 0 {
					if err := s.Complete(mine[len(mine)-3], OutcomeDelivered, ""); err != nil {
						t.Error(err)
						return
					}
					mine = append(mine[:len(mine)-3], mine[len(mine)-2:]...)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-compactErr; err != nil {
		t.Fatalf("Compact during writes: %v", err)
	}
	t.Logf("%d compaction rounds, %d records moved", rounds.Load(), moved.Load())
	if rounds.Load() == 0 || moved.Load() == 0 {
		t.Fatalf("compaction never cut the log (%d rounds, %d moved): the test proves nothing", rounds.Load(), moved.Load())
	}
	if errs.n > 0 {
		t.Fatalf("%d ERROR logs, first: %s", errs.n, errs.first)
	}
	want := snapshot(t, s)
	mustClose(t, s)
	s = mustOpen(t, dir, opts)
	defer mustClose(t, s)
	sameSnapshot(t, snapshot(t, s), want)
}
