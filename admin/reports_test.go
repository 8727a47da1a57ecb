package admin

import (
	"context"
	"net/http"
	"testing"

	"github.com/cuemta/cuemta/dmarcreport"
	"github.com/cuemta/cuemta/tlsrpt"
)

// fakeTLSReports answers SendNow with fixed reports and counts calls.
type fakeTLSReports struct {
	calls int
	sent  []tlsrpt.Sent
}

func (f *fakeTLSReports) SendNow(context.Context) []tlsrpt.Sent {
	f.calls++
	return f.sent
}

func TestTLSReportSend(t *testing.T) {
	f := &fakeTLSReports{sent: []tlsrpt.Sent{{Domain: "x.test", ReportID: "r1", Outcome: "sent", Rua: []string{"mailto:r@x.test"}}}}
	h := newHarness(t, WithTLSReports(f))
	r := h.do("POST", "/api/v1/tlsrpt/send", nil)
	if r.status != http.StatusOK || f.calls != 1 {
		t.Fatalf("POST: %d %s (%d calls)", r.status, r.body, f.calls)
	}
	reps, _ := r.json(t)["reports"].([]any)
	if len(reps) != 1 || reps[0].(map[string]any)["domain"] != "x.test" || reps[0].(map[string]any)["outcome"] != "sent" {
		t.Errorf("reply %s", r.body)
	}
	f.sent = nil
	if r := h.do("POST", "/api/v1/tlsrpt/send", nil); r.status != http.StatusOK || string(r.body) == "" || r.json(t)["reports"] == nil {
		t.Errorf("nothing to send: %d %s, want an empty list", r.status, r.body)
	}
	if r := h.do("GET", "/api/v1/tlsrpt/send", nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", r.status)
	}
}

// fakeDMARCReports answers SendNow with fixed reports and counts calls.
type fakeDMARCReports struct {
	calls int
	sent  []dmarcreport.Sent
}

func (f *fakeDMARCReports) SendNow(context.Context) []dmarcreport.Sent {
	f.calls++
	return f.sent
}

func TestDMARCReportSend(t *testing.T) {
	f := &fakeDMARCReports{sent: []dmarcreport.Sent{{Domain: "x.test", ReportID: "r1", Outcome: "sent", Rua: []string{"agg@x.test"},
		Refused: []string{"mailto:agg@y.test: external destination not verified"}}}}
	h := newHarness(t, WithDMARCReports(f))
	r := h.do("POST", "/api/v1/dmarc/send", nil)
	if r.status != http.StatusOK || f.calls != 1 {
		t.Fatalf("POST: %d %s (%d calls)", r.status, r.body, f.calls)
	}
	reps, _ := r.json(t)["reports"].([]any)
	if len(reps) != 1 || reps[0].(map[string]any)["domain"] != "x.test" || reps[0].(map[string]any)["refused"] == nil {
		t.Errorf("reply %s", r.body)
	}
	f.sent = nil
	if r := h.do("POST", "/api/v1/dmarc/send", nil); r.status != http.StatusOK || r.json(t)["reports"] == nil {
		t.Errorf("nothing to send: %d %s, want an empty list", r.status, r.body)
	}
	if r := h.do("GET", "/api/v1/dmarc/send", nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", r.status)
	}
}

// TestReportSendOff: without the reporter, each endpoint names the
// setting that turns it on.
func TestReportSendOff(t *testing.T) {
	h := newHarness(t)
	wantError(t, h.do("POST", "/api/v1/tlsrpt/send", nil), http.StatusNotFound, "tlsReporting.enabled")
	wantError(t, h.do("POST", "/api/v1/dmarc/send", nil), http.StatusNotFound, "dmarcReporting.enabled")
}
