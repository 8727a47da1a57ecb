package queue

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/wal"
)

func TestEnqueueReplayRoundTrip(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	cases := []struct {
		name string
		env  Envelope
		body []byte
	}{
		{"minimal", Envelope{Recipients: []Recipient{{Addr: "a@b"}}}, []byte("x")},
		{"empty body and null sender", Envelope{Recipients: []Recipient{{Addr: "a@b"}}}, nil},
		{"every field", Envelope{
			ID: "caller-chosen.ID_1", From: "bounce+x@example.org",
			Recipients: []Recipient{
				{Addr: "one@example.com"},
				{Addr: "two@example.com", Status: RcptDelivered, LastReply: "250 2.0.0 ok"},
				{Addr: "три@пример.рф", Status: RcptFailed, LastReply: "550 5.1.1 no such user"},
			},
			Received: t0, Listener: "submission", ClientIP: "2001:db8::1", User: "alice",
			Tenant: "acme", Campaign: "spring", Pool: "bulk", Route: "smarthost", DKIM: "acme-2025",
			Priority: -3, Attempts: 2, NextAttempt: t0.Add(time.Hour), Generation: 42,
		}, bytes.Repeat([]byte{0, 1, 2, 0xff, '\r', '\n'}, 1000)},
		{"large body", Envelope{Recipients: []Recipient{{Addr: "big@example.com"}}}, testBody(1, 1<<20)},
		{"many recipients", Envelope{Recipients: func() []Recipient {
			r := make([]Recipient, 500)
			for i := range r {
				r[i].Addr = fmt.Sprintf("r%d@example.com", i)
			}
			return r
		}()}, []byte("hi")},
	}
	dir := t.TempDir()
	s := mustOpen(t, dir, testOpts(t))
	want := make(map[string]liveMsg)
	for _, c := range cases {
		id, err := s.Enqueue(ctx, &c.env, c.body)
		if err != nil {
			t.Fatalf("%s: Enqueue: %v", c.name, err)
		}
		if c.env.ID != "" && id != c.env.ID {
			t.Fatalf("%s: id %q, want the caller's %q", c.name, id, c.env.ID)
		}
		got, ok := s.Get(id)
		if !ok {
			t.Fatalf("%s: Get after Enqueue: missing", c.name)
		}
		exp := c.env.clone()
		exp.ID, exp.Size = id, int64(len(c.body))
		if exp.Received.IsZero() {
			if got.Received.IsZero() {
				t.Fatalf("%s: Received not set", c.name)
			}
			exp.Received = got.Received
		}
		if exp.NextAttempt.IsZero() {
			exp.NextAttempt = exp.Received
		}
		if !envEqual(got, exp) {
			t.Fatalf("%s:\n got %+v\nwant %+v", c.name, got, exp)
		}
		want[id] = liveMsg{exp, append([]byte{}, c.body...)}
	}
	if c := cases[0]; c.env.ID != "" {
		t.Fatal("Enqueue modified the caller's envelope")
	}
	sameSnapshot(t, snapshot(t, s), want)
	mustClose(t, s)
	s = mustOpen(t, dir, testOpts(t))
	defer mustClose(t, s)
	sameSnapshot(t, snapshot(t, s), want)
}

func TestGeneratedIDs(t *testing.T) {
	s := mustOpen(t, t.TempDir(), testOpts(t))
	defer mustClose(t, s)
	var prev string
	for i := range 200 {
		id, err := s.Enqueue(ctx, testEnv(i), []byte("b"))
		if err != nil {
			t.Fatal(err)
		}
		if err := validID(id); err != nil || len(id) != 16 {
			t.Fatalf("generated id %q: %v", id, err)
		}
		if id <= prev {
			t.Fatalf("ids not increasing: %q after %q", id, prev)
		}
		prev = id
	}
}

func TestEnqueueRejects(t *testing.T) {
	s := mustOpen(t, t.TempDir(), testOpts(t))
	defer mustClose(t, s)
	cases := []struct {
		name string
		env  Envelope
		want error
	}{
		{"no recipients", Envelope{ID: "a"}, nil},
		{"bad id", Envelope{ID: "a/b", Recipients: []Recipient{{Addr: "x@y"}}}, nil},
		{"duplicate id", Envelope{ID: "dup", Recipients: []Recipient{{Addr: "x@y"}}}, ErrExists},
	}
	if _, err := s.Enqueue(ctx, &Envelope{ID: "dup", Recipients: []Recipient{{Addr: "x@y"}}}, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		_, err := s.Enqueue(ctx, &c.env, []byte("b"))
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d, want 1", s.Len())
	}
}

func TestCompleteAndStateChangesReplay(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testOpts(t))
	var ids []string
	for i := range 30 {
		env := testEnv(i)
		env.Recipients = append(env.Recipients, Recipient{Addr: "second@example.com"})
		id, err := s.Enqueue(ctx, env, testBody(i, 100+i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	next := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for i, id := range ids {
		var err error
		switch i % 5 {
		case 0:
			err = s.Complete(id, OutcomeDelivered, "250 ok")
		case 1:
			err = s.Complete(id, OutcomeBounced, "550 no")
		case 2:
			err = s.RecordAttempt(id, []RecipientResult{{Addr: "second@example.com", Status: RcptDelivered, Reply: "250 queued"}}, next)
		case 3:
			err = s.Reschedule(id, next.Add(time.Duration(i)*time.Minute))
		case 4:
			err = s.Update(id, func(e *Envelope) error { e.Route = "quarantine"; e.Priority = 9; return nil })
		}
		if err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
	}
	if err := s.Complete(ids[0], OutcomeDelivered, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Complete: %v, want ErrNotFound", err)
	}
	if err := s.RecordAttempt(ids[2], []RecipientResult{{Addr: "nobody@x"}}, next); err == nil {
		t.Fatal("RecordAttempt with an unknown recipient succeeded")
	}
	if err := s.Update(ids[4], func(e *Envelope) error { e.ID = "other"; return nil }); err == nil {
		t.Fatal("Update changed the ID")
	}
	e, _ := s.Get(ids[2])
	if e.Attempts != 1 || !e.NextAttempt.Equal(next) || e.Recipients[1].Status != RcptDelivered || e.Recipients[1].LastReply != "250 queued" || e.Recipients[0].Status != RcptPending {
		t.Fatalf("after RecordAttempt: %+v", e)
	}
	if e, _ := s.Get(ids[4]); e.Route != "quarantine" || e.Priority != 9 || e.Size != 104 {
		t.Fatalf("after Update: %+v", e)
	}
	if _, err := s.Body(ids[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Body of completed: %v", err)
	}
	want := snapshot(t, s)
	if len(want) != 18 {
		t.Fatalf("live = %d, want 18", len(want))
	}
	mustClose(t, s)
	s = mustOpen(t, dir, testOpts(t))
	defer mustClose(t, s)
	sameSnapshot(t, snapshot(t, s), want)
}

func TestDueOrdering(t *testing.T) {
	s := mustOpen(t, t.TempDir(), testOpts(t))
	defer mustClose(t, s)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	// offsets in minutes, deliberately out of order
	offs := []int{50, 3, 70, 3, 20, -10, 90, 0, 45, 60, 10, 30}
	for i, off := range offs {
		env := testEnv(i)
		env.ID = fmt.Sprintf("m%02d", i)
		env.NextAttempt = base.Add(time.Duration(off) * time.Minute)
		if _, err := s.Enqueue(ctx, env, nil); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		now  int // minutes after base
		max  int
		want []int // offsets, in order
	}{
		{-20, 10, nil},
		{0, 10, []int{-10, 0}},
		{30, 100, []int{-10, 0, 3, 3, 10, 20, 30}},
		{1000, 3, []int{-10, 0, 3}},
		{1000, 100, []int{-10, 0, 3, 3, 10, 20, 30, 45, 50, 60, 70, 90}},
		{1000, 0, nil},
	}
	for _, c := range cases {
		got := s.Due(base.Add(time.Duration(c.now)*time.Minute), c.max)
		var offsGot []int
		for _, e := range got {
			offsGot = append(offsGot, int(e.NextAttempt.Sub(base)/time.Minute))
		}
		if fmt.Sprint(offsGot) != fmt.Sprint(c.want) {
			t.Errorf("Due(%d, %d) = %v, want %v", c.now, c.max, offsGot, c.want)
		}
	}
	// Rescheduling and completion move messages in the heap.
	if err := s.Reschedule("m05", base.Add(95*time.Minute)); err != nil { // was -10
		t.Fatal(err)
	}
	if err := s.Complete("m07", OutcomeDelivered, ""); err != nil { // was 0
		t.Fatal(err)
	}
	got := s.Due(base.Add(1000*time.Minute), 100)
	if len(got) != 11 || got[0].ID != "m01" && got[0].ID != "m03" || got[10].ID != "m05" {
		var ids []string
		for _, e := range got {
			ids = append(ids, e.ID)
		}
		t.Fatalf("after changes: %v", ids)
	}
}

func TestLockHeldBySecondOpen(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testOpts(t))
	_, err := Open(dir, testOpts(t))
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	want := fmt.Sprintf("spool %s is locked by another cuemta process (pid ", dir)
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not contain %q", err, want)
	}
	mustClose(t, s)
	s = mustOpen(t, dir, testOpts(t)) // released by Close
	mustClose(t, s)
	if _, err := s.Enqueue(ctx, testEnv(1), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Enqueue after Close: %v", err)
	}
}

func TestConcurrentMixedOps(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testOpts(t))
	var wg sync.WaitGroup
	var mu sync.Mutex
	want := make(map[string]liveMsg)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				n := g*1000 + i
				body := testBody(n, 300+n%700)
				id, err := s.Enqueue(ctx, testEnv(n), body)
				if err != nil {
					t.Error(err)
					return
				}
				switch i % 3 {
				case 0:
					err = s.Complete(id, OutcomeDelivered, "")
				case 1:
					err = s.Reschedule(id, time.Unix(int64(n), 0))
				}
				if err != nil {
					t.Error(err)
					return
				}
				if i%3 != 0 {
					e, _ := s.Get(id)
					mu.Lock()
					want[id] = liveMsg{e, body}
					mu.Unlock()
				}
				s.Due(time.Now(), 5)
			}
		}()
	}
	wg.Add(1)
	go func() { // compaction racing the writers
		defer wg.Done()
		for range 5 {
			if _, err := s.Compact(); err != nil {
				t.Error(err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	wg.Wait()
	sameSnapshot(t, snapshot(t, s), want)
	mustClose(t, s)
	s = mustOpen(t, dir, testOpts(t))
	defer mustClose(t, s)
	sameSnapshot(t, snapshot(t, s), want)
}

func TestContextCancelled(t *testing.T) {
	s := mustOpen(t, t.TempDir(), testOpts(t))
	defer mustClose(t, s)
	cctx, cancel := contextWithCancel()
	cancel()
	if _, err := s.Enqueue(cctx, testEnv(1), []byte("x")); err == nil {
		t.Fatal("Enqueue with a cancelled context succeeded")
	}
	if s.Len() != 0 {
		t.Fatalf("Len = %d after a cancelled Enqueue", s.Len())
	}
}

// TestCancelWhileQueued: a request whose context ends while it waits
// behind a slow commit is withdrawn and never stored.
func TestCancelWhileQueued(t *testing.T) {
	dir := t.TempDir()
	release := make(chan struct{})
	entered := make(chan struct{}, 10)
	opts := testOpts(t)
	opts.hooks = &hooks{walWrite: func(l *wal.Log, b *wal.Batch) error {
		entered <- struct{}{}
		<-release
		return l.WriteBatch(b)
	}}
	s := mustOpen(t, dir, opts)
	first := make(chan error, 1)
	go func() {
		_, err := s.Enqueue(ctx, &Envelope{ID: "slow", Recipients: []Recipient{{Addr: "a@b"}}}, []byte("1"))
		first <- err
	}()
	<-entered // the committer is inside the first batch's write
	cctx, cancel := contextWithCancel()
	second := make(chan error, 1)
	go func() {
		_, err := s.Enqueue(cctx, &Envelope{ID: "withdrawn", Recipients: []Recipient{{Addr: "a@b"}}}, []byte("2"))
		second <- err
	}()
	for len(s.reqs) == 0 { // wait until the request is queued behind the batch
		runtime.Gosched()
	}
	cancel()
	if err := <-second; err == nil || !strings.Contains(err.Error(), "nothing stored") {
		t.Fatalf("cancelled Enqueue: %v", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Get("withdrawn"); ok || s.Len() != 1 {
		t.Fatalf("withdrawn request was stored (Len %d)", s.Len())
	}
	mustClose(t, s)
	s = mustOpen(t, dir, testOpts(t))
	defer mustClose(t, s)
	if _, ok := s.Get("withdrawn"); ok || s.Len() != 1 {
		t.Fatalf("after reopen: withdrawn request present (Len %d)", s.Len())
	}
}
