package tlsrpt

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	_ "github.com/cuemta/cuemta/internal/golden" // -update
)

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(s string) *fakeClock {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return &fakeClock{t: t}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(s string) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

var (
	okResult = Result{PolicyDomain: "x.test", PolicyType: PolicyNoPolicyFound, SendingIP: "127.0.0.1", ReceivingMX: "mx.x.test", ReceivingIP: "127.0.0.5"}
	noTLS    = Result{PolicyDomain: "x.test", PolicyType: PolicyNoPolicyFound, Failure: StartTLSNotSupported, SendingIP: "127.0.0.1",
		ReceivingMX: "mx.x.test", ReceivingIP: "127.0.0.5", Reason: "STARTTLS not offered"}
)

func openTest(t *testing.T, c *fakeClock, path string, tune ...func(*StoreOptions)) *Store {
	t.Helper()
	o := StoreOptions{Path: path, Now: c.Now}
	for _, f := range tune {
		f(&o)
	}
	s, err := OpenStore(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestDayRollOver: results of one UTC day stay in its window; the first
// result (or Roll) after midnight closes it at the day's last second and
// opens the next day's.
func TestDayRollOver(t *testing.T) {
	c := newClock("2026-12-01T10:00:00Z")
	s := openTest(t, c, "")
	s.Record(okResult)
	s.Record(noTLS)
	c.Set("2026-12-01T23:59:59Z")
	s.Record(okResult)
	if n := s.Pending(); n != 0 {
		t.Fatalf("%d windows closed before the day ended", n)
	}
	c.Set("2026-12-02T00:00:01Z")
	s.Record(okResult)
	due := s.Due(c.Now(), 0, 0)
	if len(due) != 1 {
		t.Fatalf("%d windows due after midnight, want 1", len(due))
	}
	w := due[0]
	if got, want := w.Start.Format(time.RFC3339), "2026-12-01T10:00:00Z"; got != want {
		t.Errorf("start %s, want %s", got, want)
	}
	if got, want := w.End.Format(time.RFC3339), "2026-12-01T23:59:59Z"; got != want {
		t.Errorf("end %s, want %s", got, want)
	}
	if p := w.Policies[0]; len(w.Policies) != 1 || p.Success != 2 || p.Failure != 1 || p.Details[0].Count != 1 {
		t.Errorf("closed window counts %+v, want 2 successes and 1 failure", p)
	}
	open := s.Open("x.test")
	if open == nil || open.Policies[0].Success != 1 || open.Start.Format(time.RFC3339) != "2026-12-02T00:00:01Z" {
		t.Errorf("the new day's window is %+v, want one success from 00:00:01", open)
	}
	// A day without results closes by Roll as well.
	c.Set("2026-12-03T00:10:00Z")
	s.Roll()
	if n := s.Pending(); n != 2 {
		t.Errorf("%d windows pending after the second day, want 2", n)
	}
	// Due waits for the delay after the end.
	if n := len(s.Due(c.Now(), time.Hour, 0)); n != 1 {
		t.Errorf("%d windows due 10 minutes into the day with a 1h delay, want only the older one", n)
	}
}

// TestPersistence: the counts survive a reopen (after a Flush), closed
// windows with their sending state included; an unreadable file is set
// aside rather than stopping the start.
func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tlsrpt", "state.json")
	c := newClock("2026-12-01T10:00:00Z")
	s := openTest(t, c, path)
	s.Record(okResult)
	s.Record(noTLS)
	c.Set("2026-12-02T01:00:00Z")
	s.Roll()
	w := s.Due(c.Now(), 0, 0)[0]
	s.Failed(w.Seq, c.Now().Add(time.Hour), os.ErrDeadlineExceeded)
	s.Record(noTLS)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	s.Record(okResult) // not flushed: lost by the "crash" below
	// The state names domains and addresses: the owner's only.
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700 | os.ModeDir} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, st.Mode(), want)
		}
	}

	s2 := openTest(t, c, path)
	if n := len(s2.Due(c.Now(), 0, 0)); n != 0 {
		t.Errorf("%d windows due before their retry time after reopen", n)
	}
	due := s2.Due(c.Now().Add(time.Hour), 0, 0)
	if len(due) != 1 || due[0].Attempts != 1 || due[0].Policies[0].Success != 1 || due[0].Policies[0].Failure != 1 {
		t.Fatalf("closed windows after reopen: %+v", due)
	}
	open := s2.Open("x.test")
	if open == nil || open.Policies[0].Failure != 1 || open.Policies[0].Success != 0 {
		t.Errorf("open window after reopen %+v, want the flushed failure and not the unflushed success", open)
	}

	// Reopened on a later day, the open window closes at once.
	c.Set("2026-12-03T00:00:05Z")
	s3 := openTest(t, c, path)
	if n := s3.Pending(); n != 2 {
		t.Errorf("%d pending after reopening a day later, want 2", n)
	}

	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	s4 := openTest(t, c, path)
	if s4.Pending() != 0 {
		t.Error("a damaged state file gave windows")
	}
	if _, err := os.Stat(fmt.Sprintf("%s.damaged-%d", path, c.Now().Unix())); err != nil {
		t.Errorf("the damaged file was not set aside: %v", err)
	}
}

// TestCaps: domains, policies and failure-detail groups are bounded and
// what the caps drop is counted; a failure whose detail is dropped still
// counts in the summary.
func TestCaps(t *testing.T) {
	c := newClock("2026-12-01T10:00:00Z")
	s := openTest(t, c, "", func(o *StoreOptions) { o.MaxDomains, o.MaxPolicies, o.MaxFailureDetails = 2, 1, 2 })
	for _, d := range []string{"a.test", "b.test", "c.test", "A.TEST."} {
		r := okResult
		r.PolicyDomain = d
		s.Record(r)
	}
	if s.Open("c.test") != nil {
		t.Error("a third domain was counted beyond MaxDomains 2")
	}
	if w := s.Open("a.test"); w == nil || w.Policies[0].Success != 2 {
		t.Errorf("a.test (also written A.TEST.) window %+v, want 2 successes", w)
	}
	sts := okResult
	sts.PolicyDomain, sts.PolicyType = "a.test", PolicySTS
	s.Record(sts) // a second policy beyond MaxPolicies 1
	for _, ip := range []string{"127.0.0.5", "127.0.0.6", "127.0.0.7", "127.0.0.7"} {
		r := noTLS
		r.PolicyDomain, r.ReceivingIP = "a.test", ip
		s.Record(r)
	}
	w := s.Open("a.test")
	p := w.Policies[0]
	if len(w.Policies) != 1 || p.Failure != 4 || len(p.Details) != 2 || p.DroppedDetails != 2 {
		t.Errorf("a.test policy %+v (%d policies), want 4 failures, 2 detail groups, 2 dropped details, 1 policy", p, len(w.Policies))
	}
	if n := s.DroppedDetails(); n != 2 {
		t.Errorf("dropped details %d, want 2", n)
	}
	if results, _ := s.Dropped(); results != 2 {
		t.Errorf("dropped results %d, want 2 (c.test and the second policy)", results)
	}
	// Closed windows are bounded too: 3 × MaxDomains.
	for day := 2; day <= 6; day++ {
		c.Set(time.Date(2026, 12, day, 1, 0, 0, 0, time.UTC).Format(time.RFC3339))
		for _, d := range []string{"a.test", "b.test"} {
			r := okResult
			r.PolicyDomain = d
			s.Record(r)
		}
	}
	if n := s.Pending(); n != 6 {
		t.Errorf("%d closed windows kept, want 6 (3 × MaxDomains)", n)
	}
	if _, windows := s.Dropped(); windows != 4 { // days 1-5 closed, 10 windows
		t.Errorf("dropped windows %d, want 4", windows)
	}
}
