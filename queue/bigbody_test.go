package queue

import (
	"bytes"
	"context"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestBigBodiesWrittenInPlace: bodies of bigBody bytes or more are written
// from the caller's slice, beside small ones copied into the batch buffer,
// in one batch; every body reads back whole, before and after a reopen,
// and enqueueing a large body allocates nothing near its size (it used to
// be copied into the batch buffer: one more message-sized garbage).
func TestBigBodiesWrittenInPlace(t *testing.T) {
	dir := t.TempDir()
	opts := testOpts(t)
	opts.GroupCommitWindow = 50 * time.Millisecond // one batch for all
	s := mustOpen(t, dir, opts)
	sizes := []int{10, bigBody - 1, bigBody, 20, 1 << 20, 0, 3<<20 + 5, 30}
	ids := make([]string, len(sizes))
	bodies := make([][]byte, len(sizes))
	var wg sync.WaitGroup
	for i, n := range sizes {
		bodies[i] = testBody(i, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := s.Enqueue(context.Background(), testEnv(i), bodies[i])
			if err != nil {
				t.Errorf("Enqueue %d bytes: %v", n, err)
			}
			ids[i] = id
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	check := func(s *Spool, when string) {
		for i, id := range ids {
			got, err := s.Body(id)
			if err != nil || !bytes.Equal(got, bodies[i]) {
				t.Errorf("%s: body %d (%d bytes): %d bytes back, err %v", when, i, sizes[i], len(got), err)
			}
		}
	}
	check(s, "before reopen")

	big := testBody(99, 8<<20)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := s.Enqueue(context.Background(), testEnv(99), big); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("enqueueing an 8 MiB body allocated %d bytes: it was copied", n)
	}
	mustClose(t, s)
	s = mustOpen(t, dir, opts)
	defer mustClose(t, s)
	check(s, "after reopen")
}
