package dmarcreport

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeQueue is Enqueue: it keeps what it is given, or fails for the
// addresses in fail.
type fakeQueue struct {
	mu   sync.Mutex
	fail map[string]bool
	sent []queued
}

type queued struct {
	from, to string
	msg      []byte
}

func (q *fakeQueue) Enqueue(_ context.Context, from, to string, msg []byte) (string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.fail[to] {
		return "", errors.New("spool full")
	}
	q.sent = append(q.sent, queued{from, to, msg})
	return fmt.Sprintf("id%d", len(q.sent)), nil
}

func (q *fakeQueue) setFail(to string, fail bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.fail == nil {
		q.fail = map[string]bool{}
	}
	q.fail[to] = fail
}

// to lists the addresses queued to, in order.
func (q *fakeQueue) to() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []string
	for _, s := range q.sent {
		out = append(out, s.to)
	}
	return out
}

// fakeDNS is LookupTXT over a map; names in fail answer SERVFAIL. It
// keeps the names asked.
type fakeDNS struct {
	mu    sync.Mutex
	txt   map[string][]string
	fail  map[string]bool
	asked []string
}

func (d *fakeDNS) LookupTXT(_ context.Context, name string) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.asked = append(d.asked, name)
	if d.fail[name] {
		return nil, errors.New("SERVFAIL")
	}
	return d.txt[name], nil
}

var testSettings = Settings{Submitter: testSubmitter, MailFrom: "postmaster@mta.test", Delay: 5 * time.Minute, Jitter: time.Hour,
	Retry: time.Hour, MaxAge: 48 * time.Hour}

func newTestReporter(store *Store, c *fakeClock, set Settings, q *fakeQueue, d *fakeDNS) *Reporter {
	return NewReporter(ReporterOptions{
		Store:     store,
		Settings:  func() Settings { return set },
		LookupTXT: d.LookupTXT,
		Enqueue:   q.Enqueue,
		Now:       c.Now,
	})
}

// rua is okResult for policy domain with the given rua.
func ruaResult(domain string, rua ...string) Result {
	return with(func(r *Result) { r.Published.Domain, r.Published.Rua = domain, rua })
}

func byDomain(sent []Sent) map[string]Sent {
	m := map[string]Sent{}
	for _, s := range sent {
		m[s.Domain] = s
	}
	return m
}

// TestReporter drives the reporter on a fake clock: nothing is sent
// before the day's end plus delay and jitter; then each report goes to
// its rua; one that fails is tried again after Retry, and only it; a
// domain without rua has its counts dropped; a report that keeps failing
// is given up after MaxAge.
func TestReporter(t *testing.T) {
	c := newClock("2026-12-01T10:00:00Z")
	store := openTest(t, c, "")
	q := &fakeQueue{}
	q.setFail("agg@flaky.test", true)
	dns := &fakeDNS{
		txt: map[string][]string{
			"x.test._report._dmarc.collector.test": {"v=DMARC1"},
			"x.test._report._dmarc.flaky.test":     {"v=DMARC1"},
		},
		fail: map[string]bool{"fail.test._report._dmarc.dnsfail.test": true},
	}
	rep := newTestReporter(store, c, testSettings, q, dns)
	ctx := context.Background()
	store.Record(ruaResult("x.test", "mailto:dmarc@x.test", "mailto:agg@collector.test", "mailto:agg@flaky.test"))
	store.Record(ruaResult("none.test"))
	store.Record(ruaResult("fail.test", "mailto:agg@dnsfail.test"))
	if sent := rep.Cycle(ctx); len(sent) != 0 {
		t.Fatalf("sent %+v before the day ended", sent)
	}
	c.Set("2026-12-02T00:04:00Z") // within the delay
	if sent := rep.Cycle(ctx); len(sent) != 0 {
		t.Fatalf("sent %+v within the delay", sent)
	}
	c.Set("2026-12-02T01:05:00Z") // past delay and any jitter
	got := byDomain(rep.Cycle(ctx))
	outcomes := map[string]string{}
	for d, s := range got {
		outcomes[d] = s.Outcome
	}
	if want := map[string]string{"x.test": "retry", "none.test": "no-rua", "fail.test": "retry"}; !maps.Equal(outcomes, want) {
		t.Fatalf("outcomes %v, want %v", outcomes, want)
	}
	if x := got["x.test"]; !slices.Equal(x.Rua, []string{"dmarc@x.test", "agg@collector.test"}) || len(x.Queued) != 2 ||
		!strings.Contains(x.Error, "spool full") {
		t.Errorf("x.test %+v, want queued to two rua and the third failing", x)
	}
	if f := got["fail.test"]; !strings.Contains(f.Error, "SERVFAIL") || len(f.Rua) != 0 {
		t.Errorf("fail.test %+v, want a lookup error and nothing queued", f)
	}
	if to := q.to(); !slices.Equal(to, []string{"dmarc@x.test", "agg@collector.test"}) {
		t.Errorf("queued to %v", to)
	}
	for _, s := range q.sent {
		if s.from != "postmaster@mta.test" {
			t.Errorf("envelope sender %q", s.from)
		}
	}
	// The queue recovers; the next cycle within Retry sends nothing.
	q.setFail("agg@flaky.test", false)
	c.Set("2026-12-02T01:30:00Z")
	if sent := rep.Cycle(ctx); len(sent) != 0 {
		t.Fatalf("sent %+v before the retry time", sent)
	}
	c.Set("2026-12-02T02:06:00Z")
	got = byDomain(rep.Cycle(ctx))
	if x := got["x.test"]; x.Outcome != "sent" || !slices.Equal(x.Rua, []string{"agg@flaky.test"}) {
		t.Errorf("x.test retry %+v, want sent to the failed rua only", x)
	}
	if to := q.to(); len(to) != 3 {
		t.Errorf("queued to %v, want each rua once", to)
	}
	if f := got["fail.test"]; f.Outcome != "retry" {
		t.Errorf("fail.test %+v, want another retry", f)
	}
	// fail.test keeps failing until MaxAge after its day.
	c.Set("2026-12-04T00:00:00Z")
	sent := rep.Cycle(ctx)
	if len(sent) != 1 || sent[0].Domain != "fail.test" || sent[0].Outcome != "expired" || !strings.Contains(sent[0].Error, "SERVFAIL") {
		t.Errorf("after MaxAge: %+v, want fail.test expired with its last error", sent)
	}
	if n := store.Pending(); n != 0 {
		t.Errorf("%d reports still pending", n)
	}
	if _, windows := store.Dropped(); windows != 1 {
		t.Errorf("dropped windows %d, want 1 (the expired one)", windows)
	}
}

// TestJitter: with no delay and an hour of jitter, each domain's report
// goes out within the hour after the day, not before, and the domains do
// not all go at once.
func TestJitter(t *testing.T) {
	c := newClock("2026-12-01T10:00:00Z")
	store := openTest(t, c, "")
	q := &fakeQueue{}
	set := testSettings
	set.Delay, set.Jitter = 0, time.Hour
	rep := newTestReporter(store, c, set, q, &fakeDNS{})
	domains := []string{"a.test", "b.test", "c.test", "d.test", "e.test", "f.test"}
	for _, d := range domains {
		store.Record(ruaResult(d, "mailto:dmarc@"+d))
	}
	dayEnd := time.Date(2026, 12, 1, 23, 59, 59, 0, time.UTC)
	at := map[string]time.Duration{}
	for m := 0; m <= 61; m++ {
		now := dayEnd.Add(time.Duration(m) * time.Minute)
		c.Set(now.Format(time.RFC3339))
		for _, s := range rep.Cycle(context.Background()) {
			if s.Outcome != "sent" {
				t.Errorf("%s: %+v", s.Domain, s)
			}
			at[s.Domain] = now.Sub(dayEnd)
		}
	}
	if len(at) != len(domains) {
		t.Fatalf("sent within the jitter: %v, want all of %v", at, domains)
	}
	distinct := map[time.Duration]bool{}
	for d, a := range at {
		if a > time.Hour {
			t.Errorf("%s sent %v after the day, beyond the jitter", d, a)
		}
		distinct[a] = true
	}
	if len(distinct) < 2 {
		t.Errorf("every domain sent at once (%v)", at)
	}
}

// TestSendNow: a forced send cuts the open windows and sends at once,
// whatever the delay; the report holds the day so far.
func TestSendNow(t *testing.T) {
	c := newClock("2026-12-01T10:00:00Z")
	store := openTest(t, c, "")
	q := &fakeQueue{}
	set := testSettings
	set.Delay = 6 * time.Hour
	rep := newTestReporter(store, c, set, q, &fakeDNS{})
	store.Record(okResult)
	store.Record(okResult)
	c.Set("2026-12-01T12:00:00Z")
	sent := rep.SendNow(context.Background())
	if len(sent) != 1 || sent[0].Outcome != "sent" || sent[0].End != "2026-12-01T12:00:00Z" || !slices.Equal(sent[0].Queued, []string{"id1"}) {
		t.Fatalf("forced send %+v, want x.test sent, ending now", sent)
	}
	m := readReportMail(t, q.sent[0].msg)
	if !strings.Contains(string(m.xml), "<count>2</count>") || m.to != "dmarc@x.test" {
		t.Errorf("report mail to %s holds\n%s\nwant a count of 2", m.to, m.xml)
	}
	store.Record(okResult)
	if w := store.Open("x.test"); w == nil || w.Start.Format(time.RFC3339) != "2026-12-01T12:00:00Z" || w.Rows[0].Count != 1 {
		t.Errorf("after the cut the open window is %+v, want a new one from 12:00", w)
	}
	// A second cut in the same second is a report of its own.
	again := rep.SendNow(context.Background())
	if len(again) != 1 || again[0].Outcome != "sent" || again[0].ReportID == sent[0].ReportID {
		t.Errorf("second forced send %+v, want a report with an id other than %s", again, sent[0].ReportID)
	}
	if n := store.Pending(); n != 0 {
		t.Errorf("%d pending after forced sends", n)
	}
}

// TestRuaHandling: which rua of a record get the report (RFC 7489 §6.2,
// §7.1).
func TestRuaHandling(t *testing.T) {
	const verify = "x.test._report._dmarc.collector.test"
	tests := []struct {
		name    string
		rua     []string
		txt     map[string][]string
		fail    bool // the verification lookup fails
		outcome string
		to      []string
		refused []string // substrings, one per refused rua, in order
		asked   []string
	}{
		{name: "same organisational domain needs no lookup", rua: []string{"mailto:a@x.test", "mailto:b@reports.x.test"},
			outcome: "sent", to: []string{"a@x.test", "b@reports.x.test"}},
		{name: "external verified", rua: []string{"mailto:agg@collector.test"}, txt: map[string][]string{verify: {"v=DMARC1;"}},
			outcome: "sent", to: []string{"agg@collector.test"}, asked: []string{verify}},
		{name: "external not verified", rua: []string{"mailto:agg@collector.test"},
			outcome: "no-rua", refused: []string{"mailto:agg@collector.test: external destination not verified"}, asked: []string{verify}},
		{name: "external with another record only", rua: []string{"mailto:agg@collector.test", "mailto:a@x.test"},
			txt: map[string][]string{verify: {"v=spf1 -all"}}, outcome: "sent", to: []string{"a@x.test"},
			refused: []string{"external destination not verified"}, asked: []string{verify}},
		{name: "lookup error is a retry", rua: []string{"mailto:agg@collector.test"}, fail: true, outcome: "retry", asked: []string{verify}},
		{name: "not mailto", rua: []string{"https://r.x.test/dmarc", "mailto:a@x.test"}, outcome: "sent", to: []string{"a@x.test"},
			refused: []string{"https://r.x.test/dmarc: not mailto"}},
		{name: "over its size limit", rua: []string{"mailto:small@x.test!100", "mailto:big@x.test!1m"}, outcome: "sent",
			to: []string{"big@x.test"}, refused: []string{"mailto:small@x.test!100: over its size limit"}},
		{name: "bad size limit", rua: []string{"mailto:a@x.test!10q"}, outcome: "no-rua", refused: []string{"size limit"}},
		{name: "listed twice", rua: []string{"mailto:a@x.test", "mailto:a@X.TEST!10m"}, outcome: "sent", to: []string{"a@x.test"}},
		{name: "at most MaxRua", rua: []string{"mailto:1@x.test", "mailto:2@x.test", "mailto:3@x.test", "mailto:4@x.test",
			"mailto:5@x.test", "mailto:6@x.test", "mailto:7@x.test"}, outcome: "sent",
			to: []string{"1@x.test", "2@x.test", "3@x.test", "4@x.test", "5@x.test"}, refused: []string{"more than 5", "more than 5"}},
		{name: "no rua", outcome: "no-rua"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock("2026-12-01T10:00:00Z")
			store := openTest(t, c, "")
			q := &fakeQueue{}
			dns := &fakeDNS{txt: tt.txt, fail: map[string]bool{verify: tt.fail}}
			rep := newTestReporter(store, c, testSettings, q, dns)
			store.Record(ruaResult("x.test", tt.rua...))
			sent := rep.SendNow(context.Background())
			if len(sent) != 1 {
				t.Fatalf("sent %+v, want one report", sent)
			}
			s := sent[0]
			if s.Outcome != tt.outcome || !slices.Equal(s.Rua, tt.to) || !slices.Equal(q.to(), tt.to) {
				t.Errorf("outcome %s, rua %v, queued to %v; want %s to %v (%+v)", s.Outcome, s.Rua, q.to(), tt.outcome, tt.to, s)
			}
			if len(s.Refused) != len(tt.refused) {
				t.Fatalf("refused %q, want %q", s.Refused, tt.refused)
			}
			for i, r := range tt.refused {
				if !strings.Contains(s.Refused[i], r) {
					t.Errorf("refused %q, want %q", s.Refused[i], r)
				}
			}
			if !slices.Equal(dns.asked, tt.asked) {
				t.Errorf("looked up %q, want %q", dns.asked, tt.asked)
			}
			if wantPending := tt.outcome == "retry"; (store.Pending() == 1) != wantPending {
				t.Errorf("%d pending after %s", store.Pending(), s.Outcome)
			}
		})
	}
}

// TestRetryAcrossRestart: the rua that took a report are saved with the
// window, so after a restart a retry goes only to the one that failed.
func TestRetryAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	c := newClock("2026-12-01T10:00:00Z")
	store := openTest(t, c, path)
	q := &fakeQueue{}
	q.setFail("b@x.test", true)
	store.Record(ruaResult("x.test", "mailto:a@x.test", "mailto:b@x.test"))
	c.Set("2026-12-02T02:00:00Z")
	sent := newTestReporter(store, c, testSettings, q, &fakeDNS{}).Cycle(context.Background())
	if len(sent) != 1 || sent[0].Outcome != "retry" || !slices.Equal(sent[0].Rua, []string{"a@x.test"}) {
		t.Fatalf("first try %+v, want a@x.test only and a retry", sent)
	}
	if err := store.Flush(); err != nil {
		t.Fatal(err)
	}
	store2 := openTest(t, c, path)
	q2 := &fakeQueue{}
	c.Set("2026-12-02T03:00:00Z")
	sent = newTestReporter(store2, c, testSettings, q2, &fakeDNS{}).Cycle(context.Background())
	if len(sent) != 1 || sent[0].Outcome != "sent" || !slices.Equal(q2.to(), []string{"b@x.test"}) {
		t.Errorf("after restart %+v, queued to %v; want b@x.test only", sent, q2.to())
	}
}

// TestNoMailFrom: without a sender address nothing is queued, and the
// report waits for the config to be fixed.
func TestNoMailFrom(t *testing.T) {
	c := newClock("2026-12-01T10:00:00Z")
	store := openTest(t, c, "")
	q := &fakeQueue{}
	set := testSettings
	set.MailFrom = ""
	store.Record(okResult)
	sent := newTestReporter(store, c, set, q, &fakeDNS{}).SendNow(context.Background())
	if len(sent) != 1 || sent[0].Outcome != "retry" || len(q.to()) != 0 || store.Pending() != 1 {
		t.Errorf("without MailFrom: %+v, queued %v", sent, q.to())
	}
}

// TestRunFlushesAtEnd: Run saves the counts when its context ends.
func TestRunFlushesAtEnd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	c := newClock("2026-12-01T10:00:00Z")
	store := openTest(t, c, path)
	store.Record(okResult)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	newTestReporter(store, c, testSettings, &fakeQueue{}, &fakeDNS{}).Run(ctx, time.Hour)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no state after Run ended: %v", err)
	}
	if w := openTest(t, c, path).Open("x.test"); w == nil || w.Rows[0].Count != 1 {
		t.Errorf("saved window %+v", w)
	}
}
