package queue

import (
	"context"
	"testing"
	"time"
)

// TestLeaseIsInMemoryOnly: a leased message leaves the Due order until its
// lease ends, and is due again after a restart (the lease was not work).
func TestLeaseIsInMemoryOnly(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testOpts(t))
	var ids []string
	for i := 0; i < 3; i++ {
		id, err := s.Enqueue(context.Background(), testEnv(i), []byte("body"))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	now := time.Now()
	if !s.Lease(ids[1], now.Add(time.Hour)) {
		t.Fatal("Lease of a live message reported false")
	}
	if s.Lease("nosuchid", now) {
		t.Error("Lease of an unknown message reported true")
	}
	due := s.Due(now.Add(time.Second), 10)
	if len(due) != 2 || due[0].ID == ids[1] || due[1].ID == ids[1] {
		t.Fatalf("Due during the lease = %v, want the two others", due)
	}
	if got := s.Due(now.Add(2*time.Hour), 10); len(got) != 3 {
		t.Fatalf("Due after the lease = %d messages, want 3", len(got))
	}
	mustClose(t, s)
	s = mustOpen(t, dir, testOpts(t))
	defer mustClose(t, s)
	if got := s.Due(now.Add(time.Second), 10); len(got) != 3 {
		t.Fatalf("after reopen Due = %d messages, want 3: a lease must not survive a restart", len(got))
	}
}
