package delivery

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// TestSharedBatch: a shared decision takes 10 ms of the slowest bucket's
// tokens, one at least and 32 at most, so slow rates stay exact.
func TestSharedBatch(t *testing.T) {
	for _, tc := range []struct {
		rates []SharedRate
		want  int
	}{
		{[]SharedRate{{PerSecond: 10}}, 1},
		{[]SharedRate{{PerSecond: 199}}, 1},
		{[]SharedRate{{PerSecond: 1000}}, 10},
		{[]SharedRate{{PerSecond: 100000}}, 32},
		{[]SharedRate{{PerSecond: 100000}, {PerSecond: 500}}, 5}, // the provider's is slower
	} {
		if got := sharedBatch(tc.rates); got != tc.want {
			t.Errorf("sharedBatch(%v) = %d, want %d", tc.rates, got, tc.want)
		}
	}
}

// fakeShared is a Shared that only records merge requests: the entry
// tests below carry entries between schedulers by hand.
type fakeShared struct{ changed int }

func (f *fakeShared) AcquireConn(context.Context, []SharedLease) (func(), bool) {
	return func() {}, true
}
func (f *fakeShared) Retain([]SharedLease) bool                                { return true }
func (f *fakeShared) Reserve(context.Context, []SharedRate, int) time.Duration { return 0 }
func (f *fakeShared) Count(string, time.Duration, int) (int, bool)             { return 0, false }
func (f *fakeShared) Changed()                                                 { f.changed++ }

// TestSharedEntries: a suspension made on one node is in force on
// another once its entries are applied there, a resume (a tombstone)
// lifts it and tells OnSharedResume, an older entry never replaces a newer
// one, and a throttle for a lane not yet used waits for it.
func TestSharedEntries(t *testing.T) {
	now := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	var resumed []string
	fa, fb := &fakeShared{}, &fakeShared{}
	a := New(Options{Now: clock, Shared: fa})
	b := New(Options{Now: clock, Shared: fb, OnSharedResume: func(scope, key string) { resumed = append(resumed, scope+":"+key) }})

	if err := a.Suspend(ScopeProvider, "yahoo/s1", now.Add(time.Hour), "TSS04", "tss04"); err != nil {
		t.Fatal(err)
	}
	if fa.changed == 0 {
		t.Error("a suspension did not ask for a merge")
	}
	old := a.SharedEntries()
	b.ApplyShared(old)
	if got := b.Suspensions(); len(got) != 1 || got[0].Key != "yahoo/s1" || got[0].Origin != "tss04" {
		t.Fatalf("b's suspensions after the merge: %+v", got)
	}
	now = now.Add(time.Second)
	if !a.Resume(ScopeProvider, "yahoo") {
		t.Fatal("resume found nothing")
	}
	b.ApplyShared(a.SharedEntries())
	if got := b.Suspensions(); len(got) != 0 {
		t.Fatalf("b's suspensions after the resume: %+v", got)
	}
	if !slices.Equal(resumed, []string{"provider:yahoo/s1"}) {
		t.Errorf("OnSharedResume told %v", resumed)
	}
	// The old entry, from a node that missed the resume, stays lifted.
	b.ApplyShared(old)
	if got := b.Suspensions(); len(got) != 0 {
		t.Errorf("an older suspension came back over the resume: %+v", got)
	}
	// A throttle for a lane b has not used is kept for it, and passed on.
	thr := SharedEntry{Key: sharedThrottle + ScopeSource + ":mx:mx.a.test/s1", At: now, Expire: now.Add(time.Hour),
		Value: []byte(`{"until":"2026-12-02T06:00:01Z","maxConnections":1,"rule":"slow"}`)}
	b.ApplyShared([]SharedEntry{thr})
	found := false
	for _, e := range b.SharedEntries() {
		found = found || e.Key == thr.Key
	}
	if !found {
		t.Error("b does not keep the throttle for the lane it has not used yet")
	}
}

// countingShared is a Shared whose Reserve counts its calls and tokens
// and takes a while, as a round trip does.
type countingShared struct {
	fakeShared
	mu            sync.Mutex
	calls, tokens int
}

func (c *countingShared) Reserve(_ context.Context, _ []SharedRate, n int) time.Duration {
	time.Sleep(5 * time.Millisecond)
	c.mu.Lock()
	c.calls++
	c.tokens += n
	c.mu.Unlock()
	return 0
}

// TestSharedTokensOneFetchPerBatch: connections of a fast lane asking
// for message tokens at once share one round trip per batch, instead of
// one each (which also threw each batch's surplus away).
func TestSharedTokensOneFetchPerBatch(t *testing.T) {
	cs := &countingShared{}
	e := New(Options{Shared: cs})
	l := &lane{site: &site{sched: e, key: "s"}, key: "s/default", msgLim: rate.NewLimiter(100000, 1000)}
	const conns, perConn = 50, 64
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perConn {
				if err := l.waitShared(context.Background(), nil, "msg"); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	want := conns * perConn / sharedBatchMax
	if cs.calls != want || cs.tokens != conns*perConn {
		t.Errorf("%d messages took %d round trips for %d tokens, want %d round trips for %d", conns*perConn, cs.calls, cs.tokens, want, conns*perConn)
	}
}
