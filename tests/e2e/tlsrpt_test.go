package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cuemta/cuemta/sim"
	"github.com/cuemta/cuemta/tlsrpt"
)

// TestTLSReporting runs TLS reporting end to end: deliveries to a domain
// whose MX offers STARTTLS (its _smtp._tls record asks for https: reports,
// posted to a loopback collector) and to one whose MX does not (mailto:
// reports, delivered through the MTA to another sim site). POST
// /api/v1/tlsrpt/send sends both reports at once; each decodes (gzip
// JSON) and counts the sessions of the run: every message went over its
// own connection (maxMessagesPerConnection 1), so sessions = messages.
// The report mail's own delivery is not counted: a second forced send
// has nothing to report.
func TestTLSReporting(t *testing.T) {
	col := &reportCollector{}
	hs := httptest.NewTLSServer(col)
	defer hs.Close()
	// The server trusts the collector's certificate through Go's
	// SSL_CERT_FILE, which the child process inherits.
	pemFile := filepath.Join(t.TempDir(), "collector.pem")
	if err := os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSL_CERT_FILE", pemFile)

	s := startSim(t, map[string]*sim.Site{
		"secure":  {Domains: []string{"secure.test"}, MX: []sim.MXHost{{Host: "mx.secure.test", IP: "127.0.0.6"}}, STARTTLS: true},
		"plain":   {Domains: []string{"plain.test"}, MX: []sim.MXHost{{Host: "mx.plain.test", IP: "127.0.0.7"}}},
		"reports": {Domains: []string{"reports.test"}, MX: []sim.MXHost{{Host: "mx.reports.test", IP: "127.0.0.8"}}},
	}, func(c *sim.Config) {
		c.DNS.Records = []string{
			`_smtp._tls.secure.test. 300 IN TXT "v=TLSRPTv1; rua=` + hs.URL + `/tlsrpt"`,
			`_smtp._tls.plain.test. 300 IN TXT "v=TLSRPTv1;" " rua=mailto:tls-reports@reports.test"`,
			`_smtp._tls.reports.test. 300 IN TXT "v=TLSRPTv1; rua=mailto:loop@reports.test"`,
		}
	})
	srv := startServer(t, mtaConfig(t, s, `
profiles: default: {tls: "opportunistic", maxMessagesPerConnection: 1}
tlsReporting: {enabled: true, organization: "cuemta e2e", contactInfo: "tls-admin@mta.test"}
`), "mx")
	inject(t, srv.addrs["mx"], 1, 5, "alice@origin.test", func(i int) []string {
		if i < 3 {
			return []string{"a@secure.test"}
		}
		return []string{"b@plain.test"}
	})
	waitFor(t, 20*time.Second, "5 deliveries", func() bool { return len(s.Messages()) == 5 })

	code, out := api(t, "POST", "http://"+srv.admin+"/api/v1/tlsrpt/send", "", "")
	if code != http.StatusOK {
		t.Fatalf("POST /api/v1/tlsrpt/send: %d %v", code, out)
	}
	if b, err := json.MarshalIndent(out, "", "  "); err == nil {
		t.Logf("POST /api/v1/tlsrpt/send:\n%s", b)
	}
	var got tlsrpt.Sent
	outcomes := map[string]string{}
	for _, r := range out["reports"].([]any) {
		b, _ := json.Marshal(r)
		json.Unmarshal(b, &got)
		outcomes[got.Domain] = got.Outcome + " " + got.Error
	}
	if outcomes["secure.test"] != "sent " || outcomes["plain.test"] != "sent " || len(outcomes) != 2 {
		t.Fatalf("forced send: %v, want secure.test and plain.test sent", outcomes)
	}

	// https: the collector has the secure.test report.
	col.mu.Lock()
	if len(col.reports) != 1 || col.types[0] != "application/tlsrpt+gzip" {
		t.Fatalf("collector got %d reports (%v), want 1 application/tlsrpt+gzip", len(col.reports), col.types)
	}
	secure := col.reports[0]
	raw := col.raw[0]
	col.mu.Unlock()
	t.Logf("the https report:\n%s", raw)
	checkReport(t, secure, "secure.test", 3, 0)

	// mailto: the plain.test report arrives at the reports site.
	var reportMail *sim.Message
	waitFor(t, 20*time.Second, "the report mail", func() bool {
		for _, m := range s.Messages() {
			if m.Site == "reports" {
				reportMail = &m
				return true
			}
		}
		return false
	})
	if reportMail.From != "postmaster@mta.test" || len(reportMail.Rcpts) != 1 || reportMail.Rcpts[0] != "tls-reports@reports.test" {
		t.Errorf("report mail from %q to %v", reportMail.From, reportMail.Rcpts)
	}
	plain := readReportMail(t, reportMail.Body)
	if b, err := json.MarshalIndent(plain, "", "  "); err == nil {
		t.Logf("the mailed report:\n%s", b)
	}
	p := checkReport(t, plain, "plain.test", 0, 2)
	if len(p.FailureDetails) != 1 {
		t.Fatalf("failure details %+v, want one group", p.FailureDetails)
	}
	if d := p.FailureDetails[0]; d.ResultType != tlsrpt.StartTLSNotSupported || d.ReceivingMXHostname != "mx.plain.test" ||
		d.ReceivingIP != "127.0.0.7" || d.FailedSessionCount != 2 || d.SendingMTAIP == "" {
		t.Errorf("failure detail %+v, want 2 starttls-not-supported at mx.plain.test 127.0.0.7", d)
	}

	// The report mail's delivery to reports.test was not counted, so
	// nothing is left to report (and no report about reports goes out).
	code, out = api(t, "POST", "http://"+srv.admin+"/api/v1/tlsrpt/send", "", "")
	if reps, _ := out["reports"].([]any); code != http.StatusOK || len(reps) != 0 {
		t.Errorf("second forced send: %d %v, want no reports", code, out)
	}
	m := metricsText(t, srv)
	for _, want := range []string{"cuemta_tlsrpt_reports_pending 0", "cuemta_tlsrpt_results_dropped_total 0"} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestTLSReportingOffByDefault: without tlsReporting.enabled nothing is
// counted and the endpoint says it is off.
func TestTLSReportingOffByDefault(t *testing.T) {
	s := startSim(t, map[string]*sim.Site{
		"plain": {Domains: []string{"plain.test"}, MX: []sim.MXHost{{Host: "mx.plain.test", IP: "127.0.0.7"}}},
	})
	srv := startServer(t, mtaConfig(t, s, ``), "mx")
	code, out := api(t, "POST", "http://"+srv.admin+"/api/v1/tlsrpt/send", "", "")
	if code != http.StatusNotFound || !strings.Contains(out["error"].(string), "tlsReporting.enabled") {
		t.Errorf("POST /api/v1/tlsrpt/send with TLS reporting off: %d %v, want 404 naming tlsReporting.enabled", code, out)
	}
}

// checkReport checks the report's frame and its single no-policy-found
// policy's counts, and returns that policy.
func checkReport(t *testing.T, r *tlsrpt.Report, domain string, ok, failed int64) tlsrpt.PolicyReport {
	t.Helper()
	if r.OrganizationName != "cuemta e2e" || r.ContactInfo != "tls-admin@mta.test" || !strings.Contains(r.ReportID, domain) ||
		r.DateRange.Start.IsZero() || r.DateRange.End.Before(r.DateRange.Start) {
		t.Errorf("%s report frame: %+v", domain, r)
	}
	if len(r.Policies) != 1 {
		t.Fatalf("%s report has %d policies, want 1", domain, len(r.Policies))
	}
	p := r.Policies[0]
	if p.Policy.Type != tlsrpt.PolicyNoPolicyFound || p.Policy.Domain != domain {
		t.Errorf("%s policy %+v, want no-policy-found for %s", domain, p.Policy, domain)
	}
	if p.Summary.Successful != ok || p.Summary.Failure != failed {
		t.Errorf("%s summary %+v, want %d successful and %d failed sessions", domain, p.Summary, ok, failed)
	}
	return p
}

// readReportMail decodes the application/tlsrpt+gzip part of a report
// mail (RFC 8460 §5.3) and checks the mail's report fields.
func readReportMail(t *testing.T, msg []byte) *tlsrpt.Report {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Header.Get("TLS-Report-Domain"); got != "plain.test" {
		t.Errorf("TLS-Report-Domain %q", got)
	}
	if got := m.Header.Get("TLS-Report-Submitter"); got != "mta.test" {
		t.Errorf("TLS-Report-Submitter %q", got)
	}
	if s := m.Header.Get("Subject"); !strings.HasPrefix(s, "Report Domain: plain.test Submitter: mta.test Report-ID: <") {
		t.Errorf("Subject %q", s)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "tlsrpt" {
		t.Fatalf("Content-Type %q", m.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("no application/tlsrpt+gzip part: %v", err)
		}
		if !strings.HasPrefix(p.Header.Get("Content-Type"), "application/tlsrpt+gzip") {
			continue
		}
		zr, err := gzip.NewReader(base64.NewDecoder(base64.StdEncoding, p))
		if err != nil {
			t.Fatal(err)
		}
		var r tlsrpt.Report
		if err := json.NewDecoder(zr).Decode(&r); err != nil {
			t.Fatal(err)
		}
		return &r
	}
}

// reportCollector is an https: rua on loopback.
type reportCollector struct {
	mu      sync.Mutex
	reports []*tlsrpt.Report
	raw     [][]byte
	types   []string
}

func (c *reportCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	raw, err := io.ReadAll(zr)
	var rep tlsrpt.Report
	if err == nil {
		err = json.Unmarshal(raw, &rep)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reports = append(c.reports, &rep)
	c.raw = append(c.raw, raw)
	c.types = append(c.types, r.Header.Get("Content-Type"))
}

// TestTLSReportingSurvivesCrash: the counts are saved every
// flushInterval; once saved, a SIGKILL loses none of them, and the
// restarted server reports them.
func TestTLSReportingSurvivesCrash(t *testing.T) {
	col := &reportCollector{}
	hs := httptest.NewTLSServer(col)
	defer hs.Close()
	pemFile := filepath.Join(t.TempDir(), "collector.pem")
	if err := os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSL_CERT_FILE", pemFile)
	s := startSim(t, map[string]*sim.Site{
		"plain": {Domains: []string{"plain.test"}, MX: []sim.MXHost{{Host: "mx.plain.test", IP: "127.0.0.7"}}},
	}, func(c *sim.Config) {
		c.DNS.Records = []string{`_smtp._tls.plain.test. 300 IN TXT "v=TLSRPTv1; rua=` + hs.URL + `/tlsrpt"`}
	})
	spool := filepath.Join(t.TempDir(), "spool")
	dir := writeConfig(t, fmt.Sprintf(`
hostname: "mta.test"
listeners: mx: addr: "127.0.0.1:0"
admin: addr: "127.0.0.1:0"
spool: dir: %q
dns: servers: [%q]
delivery: port: %d
profiles: default: {tls: "opportunistic", maxMessagesPerConnection: 1}
tlsReporting: {enabled: true, flushInterval: "100ms"}
`, spool, s.DNSAddr(), s.Port()))
	srv := startServer(t, dir, "mx")
	inject(t, srv.addrs["mx"], 1, 2, "alice@origin.test", func(int) []string { return []string{"b@plain.test"} })
	waitFor(t, 20*time.Second, "2 deliveries", func() bool { return len(s.Messages()) == 2 })
	state := filepath.Join(spool, "tlsrpt", "state.json")
	waitFor(t, 10*time.Second, "both sessions saved", func() bool {
		b, err := os.ReadFile(state)
		return err == nil && strings.Contains(string(b), `"failure":2`)
	})
	srv.kill()

	srv = startServer(t, dir, "mx")
	code, out := api(t, "POST", "http://"+srv.admin+"/api/v1/tlsrpt/send", "", "")
	if code != http.StatusOK {
		t.Fatalf("POST /api/v1/tlsrpt/send: %d %v", code, out)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.reports) != 1 {
		t.Fatalf("collector got %d reports after the restart, want 1 (%v)", len(col.reports), out)
	}
	p := col.reports[0].Policies[0]
	if p.Summary.Failure != 2 || p.Summary.Successful != 0 || p.FailureDetails[0].ResultType != tlsrpt.StartTLSNotSupported {
		t.Errorf("after the crash the report counts %+v %+v, want the 2 starttls-not-supported sessions", p.Summary, p.FailureDetails)
	}
}
