package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cuemta/cuemta/admin"
	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/tlsrpt"
)

type fakeTLSReports struct{ sent []tlsrpt.Sent }

func (f *fakeTLSReports) SendNow(context.Context) []tlsrpt.Sent { return f.sent }

func startTLSRptAdmin(t *testing.T, reports admin.TLSReports) []string {
	t.Helper()
	var opts []admin.Option
	if reports != nil {
		opts = append(opts, admin.WithTLSReports(reports))
	}
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
