package dmarcreport

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
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
	c := &fakeClock{}
	c.Set(s)
	return c
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

// okResult is a message from x.test that passed DKIM and SPF, aligned.
var okResult = Result{
	SourceIP:     netip.MustParseAddr("192.0.2.1"),
	HeaderFrom:   "x.test",
	EnvelopeFrom: "x.test",
	Published:    Policy{Domain: "x.test", ADKIM: "r", ASPF: "r", P: "reject", Pct: 100, Rua: []string{"mailto:dmarc@x.test"}},
	Disposition:  "none",
	DKIMAligned:  true,
	SPFAligned:   true,
	DKIM:         []DKIMAuth{{Domain: "x.test", Selector: "s1", Result: "pass"}},
	SPF:          SPFAuth{Domain: "x.test", Scope: "mfrom", Result: "pass"},
}

// with is okResult changed by f; the slices are copies, so f may change
// them.
func with(f func(*Result)) Result {
	r := okResult
	r.DKIM = slices.Clone(r.DKIM)
	r.Published.Rua = slices.Clone(r.Published.Rua)
	f(&r)
	return r
}

func ptr[T any](v T) *T { return &v }

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

// TestAggregate: results that differ in nothing a report shows share a
// row and its count; each field of a row, changed alone, makes a row of
// its own.
func TestAggregate(t *testing.T) {
	tests := []struct {
		name string
		base *Result // okResult if nil
		r    Result
		same bool // groups with base
	}{
		{name: "identical", r: okResult, same: true},
		{name: "names in other case, trailing dots", same: true, r: with(func(r *Result) {
			r.HeaderFrom, r.EnvelopeFrom, r.Published.Domain = "X.Test.", "X.TEST", "x.TEST."
			r.DKIM[0].Domain, r.SPF.Domain, r.SPF.Result, r.Disposition = "X.test", "x.test.", "PASS", "None"
		})},
		{name: "IPv4-mapped address", same: true, r: with(func(r *Result) { r.SourceIP = netip.MustParseAddr("::ffff:192.0.2.1") })},
		{name: "signatures in another order", same: true,
			base: ptr(with(func(r *Result) { r.DKIM = append(r.DKIM, DKIMAuth{Domain: "y.test", Selector: "a", Result: "fail"}) })),
			r: with(func(r *Result) {
				r.DKIM = []DKIMAuth{{Domain: "y.test", Selector: "a", Result: "fail"}, {Domain: "x.test", Selector: "s1", Result: "pass"}}
			})},
		{name: "one signature more", r: with(func(r *Result) { r.DKIM = append(r.DKIM, DKIMAuth{Domain: "y.test", Selector: "a", Result: "fail"}) })},
		{name: "policy changed (not part of a row)", same: true, r: with(func(r *Result) { r.Published.P = "quarantine" })},
		{name: "source ip", r: with(func(r *Result) { r.SourceIP = netip.MustParseAddr("2001:db8::1") })},
		{name: "disposition", r: with(func(r *Result) { r.Disposition = "reject" })},
		{name: "dkim evaluated", r: with(func(r *Result) { r.DKIMAligned = false })},
		{name: "spf evaluated", r: with(func(r *Result) { r.SPFAligned = false })},
		{name: "header from", r: with(func(r *Result) { r.HeaderFrom = "sub.x.test" })},
		{name: "null sender", r: with(func(r *Result) { r.EnvelopeFrom = "" })},
		{name: "dkim result", r: with(func(r *Result) { r.DKIM[0].Result = "fail" })},
		{name: "dkim selector", r: with(func(r *Result) { r.DKIM[0].Selector = "s2" })},
		{name: "no signature", r: with(func(r *Result) { r.DKIM = nil })},
		{name: "spf scope", r: with(func(r *Result) { r.SPF.Scope = "helo" })},
		{name: "spf result", r: with(func(r *Result) { r.SPF.Result = "softfail" })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock("2026-12-01T10:00:00Z")
			s := openTest(t, c, "")
			base := okResult
			if tt.base != nil {
				base = *tt.base
			}
			s.Record(base)
			s.Record(tt.r)
			s.Record(base)
			w := s.Open("x.test")
			if w == nil {
				t.Fatal("no window for x.test")
			}
			var counts []int64
			for _, r := range w.Rows {
				counts = append(counts, r.Count)
			}
			want := []int64{2, 1}
			if tt.same {
				want = []int64{3}
			}
			if !slices.Equal(counts, want) {
				t.Errorf("row counts %v, want %v", counts, want)
			}
		})
	}
}

// TestPolicyNewestWins: a record changed during the day is reported as
// last seen, rua included.
func TestPolicyNewestWins(t *testing.T) {
	c := newClock("2026-12-01T10:00:00Z")
	s := openTest(t, c, "")
	s.Record(okResult)
	s.Record(with(func(r *Result) {
		r.Published = Policy{Domain: "X.test", ADKIM: "S", ASPF: "s", P: "Quarantine", SP: "none", Pct: 150,
			Rua: []string{" mailto:new@x.test ", "", "mailto:second@x.test"}}
	}))
	w := s.Open("x.test")
	want := Policy{Domain: "x.test", ADKIM: "s", ASPF: "s", P: "quarantine", SP: "none", Pct: 100,
		Rua: []string{"mailto:new@x.test", "mailto:second@x.test"}}
	if got := w.Policy; got.Domain != want.Domain || got.ADKIM != want.ADKIM || got.ASPF != want.ASPF || got.P != want.P ||
		got.SP != want.SP || got.Pct != want.Pct || !slices.Equal(got.Rua, want.Rua) {
		t.Errorf("policy %+v, want %+v", got, want)
	}
}

// TestDayRollOver: results of one UTC day stay in its window; the first
// result (or Roll) after midnight closes it at the day's last second and
// opens the next day's.
func TestDayRollOver(t *testing.T) {
	c := newClock("2026-12-01T10:00:00Z")
	s := openTest(t, c, "")
	s.Record(okResult)
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
	if got, want := w.Start.Format(time.RFC3339)+" "+w.End.Format(time.RFC3339), "2026-12-01T10:00:00Z 2026-12-01T23:59:59Z"; got != want {
		t.Errorf("window %s, want %s", got, want)
	}
	if len(w.Rows) != 1 || w.Rows[0].Count != 2 {
		t.Errorf("closed window rows %+v, want one of count 2", w.Rows)
	}
	open := s.Open("x.test")
	if open == nil || open.Rows[0].Count != 1 || open.Start.Format(time.RFC3339) != "2026-12-02T00:00:01Z" {
		t.Errorf("the new day's window is %+v, want one result from 00:00:01", open)
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

// TestCaps: domains, rows per window and closed windows are bounded, and
// what the caps drop is counted, as are results that cannot be reported.
func TestCaps(t *testing.T) {
	c := newClock("2026-12-01T10:00:00Z")
	s := openTest(t, c, "", func(o *StoreOptions) { o.MaxDomains, o.MaxRecords = 2, 3 })
	for _, d := range []string{"a.test", "b.test", "c.test", "A.TEST."} {
		s.Record(with(func(r *Result) { r.Published.Domain = d }))
	}
	if s.Open("c.test") != nil {
		t.Error("a third domain was counted beyond MaxDomains 2")
	}
	if w := s.Open("a.test"); w == nil || w.Rows[0].Count != 2 {
		t.Errorf("a.test (also written A.TEST.) window %+v, want a row of 2", w)
	}
	for i := range 5 {
		s.Record(with(func(r *Result) {
			r.Published.Domain = "a.test"
			r.SourceIP = netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)})
		}))
	}
	w := s.Open("a.test")
	if len(w.Rows) != 3 || w.DroppedResults != 3 {
		t.Errorf("a.test: %d rows, %d dropped; want 3 rows (MaxRecords) and 3 dropped", len(w.Rows), w.DroppedResults)
	}
	// An existing row still counts at the cap.
	s.Record(with(func(r *Result) { r.Published.Domain = "a.test" }))
	if w := s.Open("a.test"); w.Rows[0].Count != 3 {
		t.Errorf("a row at the cap counts %d, want 3", w.Rows[0].Count)
	}
	for _, bad := range []Result{
		with(func(r *Result) { r.SourceIP = netip.Addr{} }),
		with(func(r *Result) { r.Published.Domain = "" }),
		with(func(r *Result) { r.Published.Domain = "x.test\r\nBcc: v@y.test" }),
	} {
		s.Record(bad)
	}
	if results, _ := s.Dropped(); results != 1+3+3 {
		t.Errorf("dropped results %d, want 7 (c.test, 3 rows over the cap, 3 unreportable)", results)
	}
	// Closed windows are bounded too: 3 × MaxDomains.
	for day := 2; day <= 6; day++ {
		c.Set(time.Date(2026, 12, day, 1, 0, 0, 0, time.UTC).Format(time.RFC3339))
		for _, d := range []string{"a.test", "b.test"} {
			s.Record(with(func(r *Result) { r.Published.Domain = d }))
		}
	}
	if n := s.Pending(); n != 6 {
		t.Errorf("%d closed windows kept, want 6 (3 × MaxDomains)", n)
	}
	if _, windows := s.Dropped(); windows != 4 { // days 1-5 closed, 10 windows
		t.Errorf("dropped windows %d, want 4", windows)
	}
}

// TestMaxRows: the rows of every window together, open and closed, are
// bounded; a window sent gives its rows back at the next Recount, and so
// does one loaded from the file.
func TestMaxRows(t *testing.T) {
	c := newClock("2026-12-01T10:00:00Z")
	path := filepath.Join(t.TempDir(), "state.json")
	s := openTest(t, c, path, func(o *StoreOptions) { o.MaxRows = 4 })
	row := func(domain string, i int) Result {
		return with(func(r *Result) {
			r.Published.Domain = domain
			r.SourceIP = netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
		})
	}
	for i := range 3 {
		s.Record(row("a.test", i))
	}
	s.Cut()
	for i := range 3 {
		s.Record(row("b.test", i)) // the fifth and sixth rows are over
	}
	s.Record(row("b.test", 0)) // an existing row still counts
	if w := s.Open("b.test"); w == nil || len(w.Rows) != 1 || w.Rows[0].Count != 2 || w.DroppedResults != 2 {
		t.Fatalf("b.test %+v, want 1 row of 2 and 2 dropped (4 rows in all)", w)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	s2 := openTest(t, c, path, func(o *StoreOptions) { o.MaxRows = 4 })
	s2.Record(row("c.test", 9))
	if w := s2.Open("c.test"); w == nil || len(w.Rows) != 0 || w.DroppedResults != 1 {
		t.Errorf("reopened with 4 rows held: c.test %+v, want its result dropped", w)
	}
	s.Done(s.Due(c.Now(), 0, 0)[0].Seq) // a.test's report went: 3 rows back
	s.Recount()
	for i := range 3 {
		s.Record(row("b.test", 10+i))
	}
	if w := s.Open("b.test"); len(w.Rows) != 4 {
		t.Errorf("after a.test was sent: b.test has %d rows, want 4", len(w.Rows))
	}
}

// TestPersistence: the counts survive a reopen (after a Flush), closed
// windows with their sending state included; an unreadable file is set
// aside rather than stopping the start.
func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dmarc", "state.json")
	c := newClock("2026-12-01T10:00:00Z")
	s := openTest(t, c, path)
	s.Record(okResult)
	s.Record(with(func(r *Result) { r.Disposition = "reject" }))
	c.Set("2026-12-02T01:00:00Z")
	s.Roll()
	w := s.Due(c.Now(), 0, 0)[0]
	s.Failed(w.Seq, c.Now().Add(time.Hour), os.ErrDeadlineExceeded)
	s.SentTo(w.Seq, "dmarc@x.test")
	s.Record(okResult)
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
	if len(due) != 1 || due[0].Attempts != 1 || len(due[0].Rows) != 2 || !slices.Equal(due[0].SentTo, []string{"dmarc@x.test"}) ||
		due[0].Policy.P != "reject" || due[0].Seq != w.Seq {
		t.Fatalf("closed windows after reopen: %+v", due)
	}
	open := s2.Open("x.test")
	if open == nil || len(open.Rows) != 1 || open.Rows[0].Count != 1 {
		t.Errorf("open window after reopen %+v, want the flushed result and not the unflushed one", open)
	}
	// The reloaded window finds its rows again (the index is rebuilt).
	s2.Record(okResult)
	if open := s2.Open("x.test"); len(open.Rows) != 1 || open.Rows[0].Count != 2 {
		t.Errorf("after reopen a result made rows %+v, want the loaded row counted up", open.Rows)
	}
	if err := s2.Flush(); err != nil {
		t.Fatal(err)
	}

	// Reopened on a later day, the open window closes at once.
	c.Set("2026-12-03T00:00:05Z")
	s3 := openTest(t, c, path)
	if n := s3.Pending(); n != 2 {
		t.Errorf("%d pending after reopening a day later, want 2", n)
	}
	// Window numbers go on: a new window's report id is not an old one's.
	s3.Record(okResult)
	if w3 := s3.Open("x.test"); w3.Seq <= w.Seq+1 {
		t.Errorf("new window seq %d after reopen, want more than %d", w3.Seq, w.Seq+1)
	}
}

// TestDamagedState: a state file that is not JSON, or of another
// version, is renamed aside and counting starts afresh.
func TestDamagedState(t *testing.T) {
	tests := []struct{ name, content string }{
		{"not json", "{not json"},
		{"other version", `{"version":99,"day":"2026-12-01T00:00:00Z"}`},
		{"truncated", `{"version":1,"day":"2026-12-01T00:00:00Z","closed":[{"seq":1,`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.json")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			c := newClock("2026-12-01T10:00:00Z")
			s := openTest(t, c, path)
			if s.Pending() != 0 || s.Open("x.test") != nil {
				t.Error("a damaged state file gave windows")
			}
			aside := fmt.Sprintf("%s.damaged-%d", path, c.Now().Unix())
			if b, err := os.ReadFile(aside); err != nil || string(b) != tt.content {
				t.Errorf("the damaged file was not set aside as %s: %v", aside, err)
			}
			s.Record(okResult)
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			if s2 := openTest(t, c, path); s2.Open("x.test") == nil {
				t.Error("the fresh state was not saved in place of the damaged one")
			}
		})
	}
	// Null windows and rows (valid JSON) are dropped, not a crash later.
	path := filepath.Join(t.TempDir(), "state.json")
	st := `{"version":1,"day":"2026-12-01T00:00:00Z","open":{"x.test":null},"closed":[null,{"seq":3,"domain":"y.test","start":"2026-11-30T00:00:00Z","end":"2026-11-30T23:59:59Z","rows":[null]}],"lastSeq":3}`
	if err := os.WriteFile(path, []byte(st), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newClock("2026-12-01T10:00:00Z")
	s := openTest(t, c, path)
	s.Record(okResult)
	if due := s.Due(c.Now(), 0, 0); len(due) != 1 || len(due[0].Rows) != 0 {
		t.Errorf("windows %+v, want y.test without rows", due)
	}
}

// TestConcurrentRecord: Record from many goroutines, with flushes, cuts
// and reads in between, loses no result (run with -race).
func TestConcurrentRecord(t *testing.T) {
	c := newClock("2026-12-01T10:00:00Z")
	s := openTest(t, c, filepath.Join(t.TempDir(), "state.json"))
	const workers, each = 8, 200
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			for j := range each {
				s.Record(with(func(r *Result) {
					r.SourceIP = netip.AddrFrom4([4]byte{192, 0, 2, byte(j % 7)})
					r.Published.Domain = fmt.Sprintf("d%d.test", i%3)
				}))
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			if err := s.Flush(); err != nil {
				t.Error(err)
			}
			s.Pending()
			s.Dropped()
			s.Open("d0.test")
		}
	})
	wg.Go(func() {
		for range 5 {
			s.Cut()
			for _, w := range s.Due(c.Now(), 0, 0) {
				_ = BuildReport(w, testSubmitter)
			}
		}
	})
	wg.Wait()
	s.Cut()
	var total int64
	for _, w := range s.Due(c.Now(), 0, 0) {
		for _, r := range w.Rows {
			total += r.Count
		}
	}
	if total != workers*each {
		t.Errorf("counted %d results, want %d", total, workers*each)
	}
}
