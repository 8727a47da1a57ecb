package delivery

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cuemta/cuemta/queue"
)

// fakeStore is a Store whose Due returns a fixed backlog and which
// records leases; attempts of its messages finish at once (no pending
// recipients).
type fakeStore struct {
	Store
	due    []queue.Envelope
	leased map[string]bool
}

func (f *fakeStore) Due(_ time.Time, max int) []queue.Envelope {
	var out []queue.Envelope
	for _, e := range f.due {
		if len(out) == max {
			break
		}
		if !f.leased[e.ID] {
			out = append(out, e)
		}
	}
	return out
}

func (f *fakeStore) Lease(id string, _ time.Time) bool { f.leased[id] = true; return true }

func (f *fakeStore) Get(id string) (queue.Envelope, bool) {
	for _, e := range f.due {
		if e.ID == id {
			return e, true
		}
	}
	return queue.Envelope{}, false
}

func (f *fakeStore) RecordAttempt(string, []queue.RecipientResult, time.Time) error { return nil }

func (f *fakeStore) Complete(string, queue.Outcome, string) error { return nil }

// TestMaxInFlightBoundsMemory: a backlog larger than MaxInFlight is taken
// into memory only up to the bound; the rest stays in the spool.
func TestMaxInFlightBoundsMemory(t *testing.T) {
	st := &fakeStore{leased: map[string]bool{}}
	for i := 0; i < 50; i++ {
		st.due = append(st.due, queue.Envelope{ID: fmt.Sprintf("m%d", i)})
	}
	e := New(Options{Store: st, MaxInFlight: 20, Policy: func() *Policy { return &Policy{} }})
	for i := 0; i < 15; i++ {
		e.inflight[fmt.Sprintf("busy%d", i)] = nil // attempts still running
	}
	e.dispatchDue(context.Background())
	if len(st.leased) != 5 {
		t.Errorf("took %d messages with room for 5", len(st.leased))
	}
	// Those five finished at once (no recipients): 15 in flight again.
	for i := 0; i < 5; i++ {
		e.inflight[fmt.Sprintf("more%d", i)] = nil
	}
	e.dispatchDue(context.Background())
	if len(st.leased) != 5 {
		t.Errorf("took more messages while full: %d leased, want still 5", len(st.leased))
	}
	for i := 0; i < 10; i++ {
		delete(e.inflight, fmt.Sprintf("busy%d", i))
	}
	e.dispatchDue(context.Background())
	if len(st.leased) != 15 {
		t.Errorf("%d leased after 10 attempts finished, want 15", len(st.leased))
	}
}
