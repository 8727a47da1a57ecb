package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cuemta/cuemta/admin"
	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/dmarcreport"
	"github.com/cuemta/cuemta/tlsrpt"
)

type fakeTLSReports struct{ sent []tlsrpt.Sent }

func (f *fakeTLSReports) SendNow(context.Context) []tlsrpt.Sent { return f.sent }

type fakeDMARCReports struct{ sent []dmarcreport.Sent }

func (f *fakeDMARCReports) SendNow(context.Context) []dmarcreport.Sent { return f.sent }

func startTLSRptAdmin(t *testing.T, reports admin.TLSReports) []string {
	t.Helper()
	var opts []admin.Option
	if reports != nil {
		opts = append(opts, admin.WithTLSReports(reports))
	}
	return startReportsAdmin(t, opts...)
}

// startReportsAdmin serves an admin API with opts and returns the
// --admin flag that reaches it.
func startReportsAdmin(t *testing.T, opts ...admin.Option) []string {
	t.Helper()
	srv, err := admin.New(config.Admin{Addr: "127.0.0.1:0"}, &cliBackend{}, nil, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return []string{"--admin", strings.TrimPrefix(ts.URL, "http://")}
}

func TestTLSRptSend(t *testing.T) {
	f := &fakeTLSReports{sent: []tlsrpt.Sent{
		{Domain: "x.test", ReportID: "20261201T000000Z.1.x.test@mta.test", Rua: []string{"mailto:r@x.test", "https://r.x.test/v1"}, Outcome: "sent"},
		{Domain: "y.test", ReportID: "20261201T000000Z.2.y.test@mta.test", Outcome: "no-record", Error: "no TLSRPT record (0 records begin with v=TLSRPTv1)"},
	}}
	args := startTLSRptAdmin(t, f)
	code, out, stderr := run(runTLSRpt, append([]string{"send"}, args...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	wantText(t, out, `DOMAIN  OUTCOME    RUA                                                 REPORT-ID
x.test  sent       mailto:r@x.test,https://r.x.test/v1                 20261201T000000Z.1.x.test@mta.test
y.test  no-record  no TLSRPT record (0 records begin with v=TLSRPTv1)  20261201T000000Z.2.y.test@mta.test
`)
	f.sent = []tlsrpt.Sent{{Domain: "x.test", ReportID: "r", Outcome: "retry", Error: "https://r.x.test/v1: HTTP 503"}}
	if code, _, stderr := run(runTLSRpt, append([]string{"send"}, args...)...); code != 1 || !strings.Contains(stderr, "1 reports not sent") {
		t.Errorf("a failed report: exit %d, stderr %q, want 1", code, stderr)
	}
	f.sent = nil
	if code, out, _ := run(runTLSRpt, append([]string{"send"}, args...)...); code != 0 || out != "no TLS results to report\n" {
		t.Errorf("nothing to send: exit %d, %q", code, out)
	}
	if code, out, _ := run(runTLSRpt, append([]string{"send", "--json"}, args...)...); code != 0 || !strings.Contains(out, `"reports": []`) {
		t.Errorf("--json: exit %d, %s", code, out)
	}
	if code, _, _ := run(runTLSRpt, "bogus"); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
}

func TestTLSRptSendOff(t *testing.T) {
	args := startTLSRptAdmin(t, nil)
	code, _, stderr := run(runTLSRpt, append([]string{"send"}, args...)...)
	if code != 1 || !strings.Contains(stderr, "tlsReporting.enabled") {
		t.Errorf("TLS reporting off: exit %d, stderr %q", code, stderr)
	}
}

// TestDMARCSend: `cuemta dmarc send` prints the reports, the rua each
// one was refused at, and exits 1 while one waits to be retried.
func TestDMARCSend(t *testing.T) {
	f := &fakeDMARCReports{sent: []dmarcreport.Sent{
		{Domain: "x.test", ReportID: "20261201T000000Z.1.x.test@mta.test", Rua: []string{"agg@x.test"}, Outcome: "sent",
			Refused: []string{"mailto:agg@y.test: external destination not verified (no v=DMARC1 record at x.test._report._dmarc.y.test)"}},
		{Domain: "z.test", ReportID: "20261201T000000Z.2.z.test@mta.test", Outcome: "no-rua",
			Refused: []string{"https://z.test/r: not mailto"}},
	}}
	args := startReportsAdmin(t, admin.WithDMARCReports(f))
	code, out, stderr := run(runDMARC, append([]string{"send"}, args...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	wantText(t, out, `DOMAIN  OUTCOME  RUA         REPORT-ID
x.test  sent     agg@x.test  20261201T000000Z.1.x.test@mta.test
z.test  no-rua   -           20261201T000000Z.2.z.test@mta.test
x.test: not sent to mailto:agg@y.test: external destination not verified (no v=DMARC1 record at x.test._report._dmarc.y.test)
z.test: not sent to https://z.test/r: not mailto
`)
	f.sent = []dmarcreport.Sent{{Domain: "x.test", ReportID: "r", Outcome: "retry", Error: "mailto:agg@x.test: queue report mail: disk full"}}
	if code, _, stderr := run(runDMARC, append([]string{"send"}, args...)...); code != 1 || !strings.Contains(stderr, "cuemta dmarc send: 1 reports not sent") {
		t.Errorf("a failed report: exit %d, stderr %q, want 1", code, stderr)
	}
	f.sent = nil
	if code, out, _ := run(runDMARC, append([]string{"send"}, args...)...); code != 0 || out != "no DMARC results to report\n" {
		t.Errorf("nothing to send: exit %d, %q", code, out)
	}
	off := startReportsAdmin(t)
	if code, _, stderr := run(runDMARC, append([]string{"send"}, off...)...); code != 1 || !strings.Contains(stderr, "dmarcReporting.enabled") {
		t.Errorf("DMARC reporting off: exit %d, stderr %q", code, stderr)
	}
}
