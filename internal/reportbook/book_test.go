package reportbook

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// tally is the test's window: a count per domain.
type tally struct {
	Head
	N int `json:"n"`
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	c.t = t
}

func newClock(s string) *clock { c := &clock{}; c.Set(s); return c }

func open(t *testing.T, c *clock, path string, maxDomains int, fix func(*tally) bool) *Book[*tally] {
	t.Helper()
	b, err := Open(Options[*tally]{Name: "test", Path: path, Version: 1, Now: c.Now, MaxDomains: maxDomains, Fix: fix})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func add(b *Book[*tally], domain string) {
	b.Record(domain, func(h Head) *tally { return &tally{Head: h} }, func(w *tally, _ *State[*tally]) { w.N++ })
}

// TestWindows: a window per domain and day; the day's end closes it at
// its last second, Cut at once; MaxDomains open windows, the result for
// one more dropped and counted; 3×MaxDomains closed ones, the oldest
// dropped and counted.
func TestWindows(t *testing.T) {
	c := newClock("2026-12-01T10:00:00Z")
	b := open(t, c, "", 2, nil)
	add(b, "a.test")
	add(b, "a.test")
	add(b, "b.test")
	add(b, "c.test") // a third domain: dropped
	if w, ok := b.OpenWindow("a.test"); !ok || w.N != 2 || w.Start.Format(time.RFC3339) != "2026-12-01T10:00:00Z" || !w.End.IsZero() {
		t.Fatalf("open window of a.test %+v %v", w, ok)
	}
	if _, ok := b.OpenWindow("c.test"); ok {
		t.Error("a window beyond MaxDomains")
	}
	if results, _ := b.Dropped(); results != 1 {
		t.Errorf("%d results dropped, want 1", results)
	}
	c.Set("2026-12-02T00:00:01Z")
	add(b, "a.test") // the new day closes yesterday's first
	if b.Pending() != 2 {
		t.Fatalf("%d closed after midnight, want 2", b.Pending())
	}
	due := b.Due(c.Now(), 0, 0)
	if len(due) != 2 || due[0].Domain != "a.test" || due[0].N != 2 || due[0].End.Format(time.RFC3339) != "2026-12-01T23:59:59Z" {
		t.Fatalf("due %+v", due)
	}
	due[0].N = 99 // a copy
	if again := b.Due(c.Now(), 0, 0); again[0].N != 2 {
		t.Error("Due gave the book's own window, not a copy")
	}
	c.Set("2026-12-02T08:30:00Z")
	b.Cut()
	due = b.Due(c.Now(), 0, 0)
	if len(due) != 3 || due[2].N != 1 || due[2].End.Format(time.RFC3339) != "2026-12-02T08:30:00Z" || due[2].Seq <= due[1].Seq {
		t.Fatalf("after Cut: %+v", due)
	}
	// Closed windows beyond 3×MaxDomains = 6: the oldest go.
	for i := range 5 {
		add(b, fmt.Sprintf("d%d.test", i%2))
		b.Cut()
	}
	if _, windows := b.Dropped(); b.Pending() != 6 || windows != 2 {
		t.Errorf("%d closed, %d dropped; want 6 and 2", b.Pending(), windows)
	}
}

// TestSending: Due waits delay plus the window's jitter after its end,
// and a failed window its next try; SentTo, Done and GiveUp act on the
// window of a Seq.
func TestSending(t *testing.T) {
	c := newClock("2026-12-01T10:00:00Z")
	b := open(t, c, "", 10, nil)
	add(b, "a.test")
	c.Set("2026-12-02T00:00:00Z")
	b.Roll()
	w := b.Due(c.Now(), 0, 0)[0]
	const delay, jitter = 5 * time.Minute, time.Hour
	j := Jitter(&w.Head, jitter)
	if j < 0 || j >= jitter || Jitter(&w.Head, jitter) != j || Jitter(&w.Head, 0) != 0 {
		t.Fatalf("jitter %v: not within [0, %v) or not stable", j, jitter)
	}
	spread := map[time.Duration]bool{}
	for i := range 10 {
		spread[Jitter(&Head{Domain: fmt.Sprintf("d%d.test", i), Start: w.Start}, jitter)] = true
	}
	if len(spread) < 5 {
		t.Errorf("ten domains share %d jitter values: not spread", len(spread))
	}
	at := w.End.Add(delay + j)
	if n := len(b.Due(at.Add(-time.Second), delay, jitter)); n != 0 {
		t.Errorf("due a second before delay+jitter")
	}
	if n := len(b.Due(at, delay, jitter)); n != 1 {
		t.Errorf("not due at delay+jitter")
	}
	b.SentTo(w.Seq, "x@a.test")
	b.SentTo(w.Seq, "x@a.test")
	b.Failed(w.Seq, at.Add(time.Hour), errors.New("queue full"))
	if n := len(b.Due(at.Add(time.Minute), delay, jitter)); n != 0 {
		t.Error("due before its next try")
	}
	got := b.Due(at.Add(time.Hour), delay, jitter)
	if len(got) != 1 || got[0].Attempts != 1 || got[0].LastError != "queue full" || len(got[0].SentTo) != 1 {
		t.Fatalf("after a failure: %+v", got)
	}
	b.Done(w.Seq)
	if b.Pending() != 0 {
		t.Error("Done left the window")
	}
	add(b, "b.test")
	b.Cut()
	b.GiveUp(b.Due(c.Now(), 0, 0)[0].Seq)
	if _, windows := b.Dropped(); b.Pending() != 0 || windows != 1 {
		t.Errorf("GiveUp: %d pending, %d dropped", b.Pending(), windows)
	}
}

// TestPersistence: Flush and Open keep windows, sending state and
// counters, in a 0600 file in a 0700 directory; a file of another
// version, or not JSON, is set aside and counting starts afresh; Fix
// and null windows are applied on load.
func TestPersistence(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "book")
	path := filepath.Join(dir, "state.json")
	c := newClock("2026-12-01T10:00:00Z")
	b := open(t, c, path, 10, nil)
	add(b, "a.test")
	add(b, "b.test")
	b.Record("a.test", func(h Head) *tally { return &tally{Head: h} }, func(_ *tally, st *State[*tally]) { st.Count("odd") })
	b.Cut()
	add(b, "a.test")
	seq := b.Due(c.Now(), 0, 0)[0].Seq
	b.SentTo(seq, "x@a.test")
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, path: 0o600} {
		if st, err := os.Stat(p); err != nil || st.Mode() != want {
			t.Errorf("%s: %v %v, want mode %v", p, st.Mode(), err, want)
		}
	}
	b2 := open(t, c, path, 10, func(w *tally) bool { return w.Domain != "b.test" })
	due := b2.Due(c.Now(), 0, 0)
	if len(due) != 1 || due[0].Domain != "a.test" || due[0].N != 1 || len(due[0].SentTo) != 1 || b2.Counter("odd") != 1 {
		t.Errorf("reloaded: %+v, counter %d", due, b2.Counter("odd"))
	}
	if w, ok := b2.OpenWindow("a.test"); !ok || w.N != 1 {
		t.Errorf("reloaded open window %+v %v", w, ok)
	}
	add(b2, "c.test")
	if err := b2.Flush(); err != nil {
		t.Fatal(err)
	}
	if w, _ := open(t, c, path, 10, nil).OpenWindow("c.test"); w == nil || w.Seq <= seq {
		t.Errorf("a window after reload reuses a Seq: %+v", w)
	}

	var st State[*tally]
	raw, _ := os.ReadFile(path)
	json.Unmarshal(raw, &st)
	st.Closed = append(st.Closed, nil)
	raw, _ = json.Marshal(st)
	os.WriteFile(path, raw, 0o600)
	if b := open(t, c, path, 10, nil); b.Pending() != 1 {
		t.Errorf("a null closed window: %d pending, want 1", b.Pending())
	}

	for i, bad := range []string{"{not json", `{"version": 2}`} {
		c.Set(fmt.Sprintf("2026-12-01T11:00:0%dZ", i))
		os.WriteFile(path, []byte(bad), 0o600)
		if b := open(t, c, path, 10, nil); b.Pending() != 0 {
			t.Errorf("%s: windows from a damaged file", bad)
		}
		if _, err := os.Stat(fmt.Sprintf("%s.damaged-%d", path, c.Now().Unix())); err != nil {
			t.Errorf("%s: not set aside: %v", bad, err)
		}
	}
}

// TestConcurrent: Record, Due, Cut and Flush at once (run with -race).
func TestConcurrent(t *testing.T) {
	c := newClock("2026-12-01T10:00:00Z")
	b := open(t, c, filepath.Join(t.TempDir(), "state.json"), 100, nil)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				add(b, fmt.Sprintf("d%d.test", (g+i)%7))
				if i%50 == 0 {
					b.Cut()
					for _, w := range b.Due(c.Now(), 0, 0) {
						b.SentTo(w.Seq, "x@y.test")
					}
					if err := b.Flush(); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	total := 0
	b.Cut()
	for _, w := range b.Due(c.Now(), 0, 0) {
		total += w.N
	}
	if total != 800 {
		t.Errorf("%d results counted, want 800", total)
	}
}

// TestReportID: a window's report id names its start, sequence number,
// domain and host, and the cluster node when there is one, so that two
// nodes sharing a hostname never send two reports with one id.
func TestReportID(t *testing.T) {
	h := Head{Seq: 7, Domain: "x.test", Start: time.Date(2026, 12, 1, 0, 0, 3, 0, time.UTC)}
	for _, tc := range []struct{ node, want string }{
		{"", "20261201T000003Z.7.x.test@mx.example.net"},
		{"cuemta-1", "20261201T000003Z.7.cuemta-1.x.test@mx.example.net"},
	} {
		if got := h.ReportID("mx.example.net", tc.node); got != tc.want {
			t.Errorf("node %q: %s, want %s", tc.node, got, tc.want)
		}
	}
	if h.ReportID("mx.example.net", "a") == h.ReportID("mx.example.net", "b") {
		t.Error("two nodes, one id")
	}
}
