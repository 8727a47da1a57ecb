package metrics

import (
	"slices"
	"testing"
	"time"
)

func TestSampler(t *testing.T) {
	m := New()
	s := NewSampler(m)
	t0 := time.Unix(1_000_000, 0)
	if start, got := s.Series(); start != 0 || got != nil {
		t.Errorf("before the first tick: %d %v", start, got)
	}
	m.Received("mx")
	s.Tick(t0) // the baseline: counts before it are not a second's
	m.Received("mx")
	m.Received("http")
	m.Delivered("gmail")
	s.Tick(t0.Add(time.Second))
	m.Transient("gmail", "transient", "rate-limited")
	m.Bounced("yahoo", "permanent", "bad-mailbox")
	s.Tick(t0.Add(4 * time.Second)) // two seconds missed: zeros
	start, got := s.Series()
	want := []Counts{{Received: 2, Delivered: 1}, {}, {}, {Deferred: 1, Bounced: 1}}
	if start != t0.Unix()+1 || !slices.Equal(got, want) {
		t.Errorf("series from %d: %v, want from %d: %v", start, got, t0.Unix()+1, want)
	}
	all, sites := m.Totals()
	if all != (Counts{Received: 3, Delivered: 1, Deferred: 1, Bounced: 1}) || sites["gmail"] != (Counts{Delivered: 1, Deferred: 1}) {
		t.Errorf("totals %v, sites %v", all, sites)
	}
	// Per-site rates are over the oldest totals kept (the first tick).
	rates := s.SiteRates(t0.Add(4 * time.Second))
	if r := rates["gmail"]; r.Delivered != 0.25 || r.Deferred != 0.25 {
		t.Errorf("gmail rates %v, want 0.25/s each", r)
	}
}

// TestSamplerBounded: an hour and more of ticks keeps one hour.
func TestSamplerBounded(t *testing.T) {
	m := New()
	s := NewSampler(m)
	t0 := time.Unix(2_000_000, 0)
	s.Tick(t0)
	for i := 1; i <= 4000; i++ {
		if i == 3999 {
			m.Delivered("gmail")
		}
		s.Tick(t0.Add(time.Duration(i) * time.Second))
	}
	start, got := s.Series()
	if len(got) != 3600 || start != t0.Unix()+4000-3599 {
		t.Fatalf("%d seconds from %d, want 3600 from %d", len(got), start, t0.Unix()+401)
	}
	if got[3598].Delivered != 1 || got[3599].Delivered != 0 {
		t.Errorf("the delivery is not in its second: %v %v", got[3598], got[3599])
	}
	if len(s.sites) > int(siteWindow/siteEvery)+1 {
		t.Errorf("%d per-site totals kept", len(s.sites))
	}
	// A long gap (the machine slept) is all zeros, not stale seconds.
	s.Tick(t0.Add(9000 * time.Second))
	if _, got := s.Series(); len(got) != 3600 || slices.ContainsFunc(got, func(c Counts) bool { return c != Counts{} }) {
		t.Errorf("after a gap: %d seconds, some non-zero", len(got))
	}
}
