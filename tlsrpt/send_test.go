package tlsrpt

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseRecords(t *testing.T) {
	tests := []struct {
		name string
		txts []string
		want []string
		bad  bool
	}{
		{name: "mailto and https", txts: []string{"v=TLSRPTv1; rua=mailto:tls@x.test,https://r.x.test/v1"},
			want: []string{"mailto:tls@x.test", "https://r.x.test/v1"}},
		{name: "white space, trailing delimiter, extension field", txts: []string{"v=TLSRPTv1 ;  ext=1 ; rua=mailto:a@x.test , mailto:b@x.test;"},
			want: []string{"mailto:a@x.test", "mailto:b@x.test"}},
		{name: "other TXT records are ignored", txts: []string{"v=spf1 -all", "v=TLSRPTv1; rua=mailto:a@x.test"},
			want: []string{"mailto:a@x.test"}},
		{name: "other schemes skipped", txts: []string{"v=TLSRPTv1; rua=http://r.x.test/,mailto:a@x.test"},
			want: []string{"mailto:a@x.test"}},
		{name: "none", txts: nil, bad: true},
		{name: "two records", txts: []string{"v=TLSRPTv1; rua=mailto:a@x.test", "v=TLSRPTv1; rua=mailto:b@x.test"}, bad: true},
		{name: "no rua", txts: []string{"v=TLSRPTv1; ext=1"}, bad: true},
		{name: "only http", txts: []string{"v=TLSRPTv1; rua=http://r.x.test/"}, bad: true},
		{name: "bad mailto", txts: []string{"v=TLSRPTv1; rua=mailto:not an address"}, bad: true},
		{name: "version not first", txts: []string{"rua=mailto:a@x.test; v=TLSRPTv1"}, bad: true},
		{name: "version misspelt", txts: []string{"v=TLSRPTv2; rua=mailto:a@x.test"}, bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRecords(tt.txts)
			if tt.bad {
				if !errors.Is(err, ErrNoRecord) {
					t.Fatalf("got %v, %v; want ErrNoRecord", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, u := range got {
				s = append(s, u.String())
			}
			if !slices.Equal(s, tt.want) {
				t.Errorf("got %q, want %q", s, tt.want)
			}
		})
	}
}

// collector is an https: rua that keeps what it is sent; status is its
// answer.
type collector struct {
	mu      sync.Mutex
	status  int
	reports []*Report
	types   []string
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status != http.StatusOK {
		w.WriteHeader(c.status)
		return
	}
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var rep Report
	if err := json.NewDecoder(zr).Decode(&rep); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.reports = append(c.reports, &rep)
	c.types = append(c.types, r.Header.Get("Content-Type"))
}

type queued struct{ from, to string }

// TestReporter drives the reporter on a fake clock: nothing is sent
// before the day's end plus delay and jitter; then the report goes to
// both rua; a rua that fails is tried again after Retry, and only it; a
// domain without a record has its counts dropped; a report too old is
// given up.
func TestReporter(t *testing.T) {
	col := &collector{status: http.StatusServiceUnavailable}
	srv := httptest.NewTLSServer(col)
	defer srv.Close()
	c := newClock("2026-12-01T10:00:00Z")
	store := openTest(t, c, "")
	txt := map[string][]string{
		"_smtp._tls.x.test": {"v=TLSRPTv1; rua=mailto:tls@x.test," + srv.URL + "/report"},
	}
	var mu sync.Mutex
	var mails []queued
	rep := NewReporter(ReporterOptions{
		Store: store,
		Settings: func() Settings {
			return Settings{Submitter: testSubmitter, MailFrom: "postmaster@mta.test", Delay: 5 * time.Minute, Jitter: time.Hour,
				HTTPTimeout: 5 * time.Second, Retry: time.Hour, MaxAge: 48 * time.Hour}
		},
		LookupTXT: func(_ context.Context, name string) ([]string, error) {
			if name == "_smtp._tls.fail.test" {
				return nil, errors.New("SERVFAIL")
			}
			return txt[name], nil
		},
		Enqueue: func(_ context.Context, from, to string, msg []byte) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			mails = append(mails, queued{from, to})
			return fmt.Sprintf("id%d", len(mails)), nil
		},
		HTTP: srv.Client(),
		Now:  c.Now,
	})
	ctx := context.Background()
	for _, d := range []string{"x.test", "x.test", "none.test", "fail.test"} {
		r := okResult
		r.PolicyDomain = d
		store.Record(r)
	}
	if sent := rep.Cycle(ctx); len(sent) != 0 {
		t.Fatalf("sent %+v before the day ended", sent)
	}
	c.Set("2026-12-02T00:04:00Z") // within the delay
	if sent := rep.Cycle(ctx); len(sent) != 0 {
		t.Fatalf("sent %+v within the delay", sent)
	}
	c.Set("2026-12-02T01:05:00Z") // past delay and any jitter
	sent := rep.Cycle(ctx)
	outcomes := map[string]string{}
	for _, s := range sent {
		outcomes[s.Domain] = s.Outcome
	}
	if want := map[string]string{"x.test": "retry", "none.test": "no-record", "fail.test": "retry"}; !maps.Equal(outcomes, want) {
		t.Fatalf("outcomes %v, want %v", outcomes, want)
	}
	if len(mails) != 1 || mails[0] != (queued{"postmaster@mta.test", "tls@x.test"}) {
		t.Errorf("mail queued %+v, want one to tls@x.test", mails)
	}
	// The collector recovers; the next cycle within Retry sends nothing.
	col.mu.Lock()
	col.status = http.StatusOK
	col.mu.Unlock()
	c.Set("2026-12-02T01:30:00Z")
	if sent := rep.Cycle(ctx); len(sent) != 0 {
		t.Fatalf("sent %+v before the retry time", sent)
	}
	c.Set("2026-12-02T02:06:00Z")
	sent = rep.Cycle(ctx)
	if len(sent) != 2 {
		t.Fatalf("retried %+v, want x.test and fail.test", sent)
	}
	for _, s := range sent {
		if s.Domain == "x.test" && (s.Outcome != "sent" || !slices.Equal(s.Rua, []string{srv.URL + "/report"})) {
			t.Errorf("x.test retry %+v, want sent to the https rua only", s)
		}
	}
	if len(mails) != 1 {
		t.Errorf("the mailto rua got the report %d times, want once", len(mails))
	}
	col.mu.Lock()
	if len(col.reports) != 1 || col.types[0] != "application/tlsrpt+gzip" || col.reports[0].Policies[0].Summary.Successful != 2 {
		t.Errorf("collector got %d reports (%v), want one with 2 successful sessions", len(col.reports), col.types)
	}
	col.mu.Unlock()
	// fail.test keeps failing until MaxAge after its day.
	c.Set("2026-12-04T00:00:00Z")
	sent = rep.Cycle(ctx)
	if len(sent) != 1 || sent[0].Domain != "fail.test" || sent[0].Outcome != "expired" {
		t.Errorf("after MaxAge: %+v, want fail.test expired", sent)
	}
	if n := store.Pending(); n != 0 {
		t.Errorf("%d reports still pending", n)
	}
}

// TestSendNow: a forced send cuts the open windows and sends at once.
func TestSendNow(t *testing.T) {
	col := &collector{status: http.StatusOK}
	srv := httptest.NewTLSServer(col)
	defer srv.Close()
	c := newClock("2026-12-01T10:00:00Z")
	store := openTest(t, c, "")
	rep := NewReporter(ReporterOptions{
		Store:    store,
		Settings: func() Settings { return Settings{Submitter: testSubmitter, Delay: time.Hour, Jitter: time.Hour} },
		LookupTXT: func(context.Context, string) ([]string, error) {
			return []string{"v=TLSRPTv1; rua=" + srv.URL}, nil
		},
		HTTP: srv.Client(),
		Now:  c.Now,
	})
	store.Record(okResult)
	store.Record(noTLS)
	c.Set("2026-12-01T12:00:00Z")
	sent := rep.SendNow(context.Background())
	if len(sent) != 1 || sent[0].Outcome != "sent" || sent[0].End != "2026-12-01T12:00:00Z" {
		t.Fatalf("forced send %+v, want x.test sent, ending now", sent)
	}
	store.Record(okResult)
	if w := store.Open("x.test"); w == nil || w.Start.Format(time.RFC3339) != "2026-12-01T12:00:00Z" || w.Policies[0].Success != 1 {
		t.Errorf("after the cut the open window is %+v, want a new one from 12:00", w)
	}
	// A second cut in the same second is a report of its own.
	again := rep.SendNow(context.Background())
	if len(again) != 1 || again[0].Outcome != "sent" || again[0].ReportID == sent[0].ReportID {
		t.Errorf("second forced send in the same second %+v, want a report with an id other than %s", again, sent[0].ReportID)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.reports) != 2 || col.reports[0].Policies[0].Summary.Failure != 1 || col.reports[1].Policies[0].Summary.Successful != 1 {
		t.Errorf("collector got %+v", col.reports)
	}
}

// TestRedirectToHTTPRefused: the default client follows a collector's
// redirect only to https:, so a report never goes out in clear text.
func TestRedirectToHTTPRefused(t *testing.T) {
	plain := httptest.NewServer(&collector{status: http.StatusOK})
	defer plain.Close()
	tlsSrv := httptest.NewTLSServer(http.RedirectHandler(plain.URL+"/report", http.StatusTemporaryRedirect))
	defer tlsSrv.Close()
	c := newClock("2026-12-01T10:00:00Z")
	store := openTest(t, c, "")
	rep := NewReporter(ReporterOptions{
		Store:     store,
		Settings:  func() Settings { return Settings{Submitter: testSubmitter, Retry: time.Hour} },
		LookupTXT: func(context.Context, string) ([]string, error) { return []string{"v=TLSRPTv1; rua=" + tlsSrv.URL}, nil },
		Now:       c.Now,
	})
	// The default client, trusting the test server's certificate.
	rep.opts.HTTP.Transport = tlsSrv.Client().Transport
	store.Record(okResult)
	sent := rep.SendNow(context.Background())
	if len(sent) != 1 || sent[0].Outcome != "retry" || !strings.Contains(sent[0].Error, "https only") {
		t.Fatalf("redirected to http: %+v, want a retry naming the refusal", sent)
	}
}
