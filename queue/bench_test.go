package queue

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/wal"
)

func benchSpool(b *testing.B) (*Spool, *atomic.Int64) {
	var batches atomic.Int64
	opts := Options{CompactInterval: -1, Logger: quietLogger(b)}
	opts.hooks = &hooks{walWrite: func(l *wal.Log, bt *wal.Batch) error {
		batches.Add(1)
		return l.WriteBatch(bt)
	}}
	s, err := Open(b.TempDir(), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s, &batches
}

func reportBatches(b *testing.B, batches *atomic.Int64) {
	if n := batches.Load(); n > 0 {
		b.ReportMetric(float64(b.N)/float64(n), "msgs/batch")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkEnqueueParallel: ~50 concurrent SMTP sessions storing 2 KB
// messages (SetParallelism(25) x GOMAXPROCS 2).
func BenchmarkEnqueueParallel(b *testing.B) {
	s, batches := benchSpool(b)
	body := testBody(1, 2048)
	b.SetParallelism(25)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Enqueue(ctx, testEnv(int(n.Add(1))), body); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportBatches(b, batches)
}

// BenchmarkEnqueueSerial: one caller, so every Enqueue pays a whole commit.
func BenchmarkEnqueueSerial(b *testing.B) {
	s, batches := benchSpool(b)
	body := testBody(1, 2048)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Enqueue(ctx, testEnv(i), body); err != nil {
			b.Fatal(err)
		}
	}
	reportBatches(b, batches)
}

// BenchmarkDue polls the 100 earliest of 100,000 due messages.
func BenchmarkDue(b *testing.B) {
	x := newIndex()
	for i := range 100000 {
		env := testEnv(i)
		env.ID = fmt.Sprintf("m%d", i)
		enc := encodeEnvelope(nil, env)
		x.put(env.ID, enc, int64((i*7919)%100000), uint64(i+1), bodyRef{})
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if got := x.due(1<<62, 100); len(got) != 100 {
			b.Fatal(len(got))
		}
	}
}

// TestBigSpool measures memory per queued message and replay time with
// 1,000,000 small messages. Gated: CUEMTA_BIG=1 (about a minute, ~1.5 GB
// of disk).
func TestBigSpool(t *testing.T) {
	n := 1_000_000
	if os.Getenv("CUEMTA_BIG") == "" {
		t.Skip("set CUEMTA_BIG=1 to run")
	}
	dir := t.TempDir()
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	base := heap()
	opts := Options{CompactInterval: -1, Logger: quietLogger(t)}
	s := mustOpen(t, dir, opts)
	body := testBody(1, 300)
	start := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 256 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1))
				if i > n {
					return
				}
				env := testEnv(i)
				env.Campaign = "newsletter-2025-11"
				if _, err := s.Enqueue(ctx, env, body); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	enq := time.Since(start)
	live := heap()
	st, _ := s.Stats()
	mustClose(t, s)
	t.Logf("enqueue %d x %d B bodies with 256 goroutines: %v (%.0f msgs/s)", n, len(body), enq.Round(time.Millisecond), float64(n)/enq.Seconds())
	t.Logf("heap after enqueue: %.0f bytes/message (%d MB total)", float64(live-base)/float64(n), (live-base)>>20)
	t.Logf("disk: %+v", st)

	s = nil // let the closed spool's index go before measuring
	base = heap()
	start = time.Now()
	s = mustOpen(t, dir, opts)
	replay := time.Since(start)
	reopened := heap()
	defer mustClose(t, s)
	if s.Len() != n {
		t.Fatalf("Len after reopen = %d", s.Len())
	}
	t.Logf("reopen (replay) of %d messages: %v; heap %.0f bytes/message", n, replay.Round(time.Millisecond), float64(reopened-base)/float64(n))
	start = time.Now()
	due := s.Due(time.Now(), 100)
	t.Logf("Due(now, 100) with %d queued: %v (%d returned)", n, time.Since(start), len(due))
	if replay > 15*time.Second {
		t.Errorf("replay took %v, target < 15 s", replay)
	}
	if per := float64(reopened-base) / float64(n); per > 1024 {
		t.Errorf("%.0f bytes per message, target < 1 KB", per)
	}
}
