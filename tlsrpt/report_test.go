package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/cuemta/cuemta/internal/golden"
)

var testSubmitter = Submitter{Organization: "Example Sender", Contact: "postmaster@mta.test", Hostname: "mta.test"}

// reportWindow counts a day of results, as delivery would record them,
// and returns the closed window.
func reportWindow(t *testing.T) *Window {
	t.Helper()
	c := newClock("2026-12-01T00:00:00Z")
	s := openTest(t, c, "")
	sts := Result{PolicyDomain: "x.test", PolicyType: PolicySTS,
		PolicyString: []string{"version: STSv1", "mode: enforce", "mx: *.x.test", "max_age: 86400"}, MXHost: []string{"*.x.test"}}
	seq := []Result{okResult, okResult, noTLS, noTLS, sts, sts, sts}
	bad := sts
	bad.Failure, bad.SendingIP, bad.ReceivingMX, bad.ReceivingIP, bad.Reason = CertificateExpired, "192.0.2.1", "mx1.x.test", "192.0.2.25", "x509: certificate has expired"
	seq = append(seq, bad, bad, bad)
	other := noTLS
	other.ReceivingIP = "127.0.0.6"
	seq = append(seq, other)
	for i, r := range seq {
		c.Set(time.Date(2026, 12, 1, i, 0, 0, 0, time.UTC).Format(time.RFC3339))
		s.Record(r)
	}
	c.Set("2026-12-02T00:10:00Z")
	s.Roll()
	due := s.Due(c.Now(), 0, 0)
	if len(due) != 1 {
		t.Fatalf("%d windows, want 1", len(due))
	}
	return due[0]
}

// TestReportGolden: the report of a day of results, as RFC 8460 §4 JSON.
func TestReportGolden(t *testing.T) {
	rep := BuildReport(reportWindow(t), testSubmitter)
	b, err := rep.JSON()
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "testdata/report.golden.json", b)
}

// TestReportSchema validates reports against RFC 8460 §4.3-4.4 written as
// a JSON Schema (testdata/report.schema.json): the one built from a day
// of results passes, and reports that break a rule of the RFC fail, so
// the check is known to bite. Beyond the schema, each policy's failure
// count covers its failure details.
func TestReportSchema(t *testing.T) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	f, err := os.Open("testdata/report.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddResource("report.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("report.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	good, err := BuildReport(reportWindow(t), testSubmitter).JSON()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		edit  func(m map[string]any)
		valid bool
	}{
		{name: "as built", edit: func(map[string]any) {}, valid: true},
		{name: "no organization-name", edit: func(m map[string]any) { delete(m, "organization-name") }},
		{name: "no report-id", edit: func(m map[string]any) { delete(m, "report-id") }},
		{name: "date not RFC 3339", edit: func(m map[string]any) {
			m["date-range"].(map[string]any)["start-datetime"] = "2026-12-01 00:00:00"
		}},
		{name: "unknown policy-type", edit: func(m map[string]any) { policy0(m)["policy-type"] = "dane" }},
		{name: "sts without policy-string", edit: func(m map[string]any) {
			p := m["policies"].([]any)[1].(map[string]any)["policy"].(map[string]any)
			delete(p, "policy-string")
		}},
		{name: "mx-host a string", edit: func(m map[string]any) {
			m["policies"].([]any)[1].(map[string]any)["policy"].(map[string]any)["mx-host"] = "*.x.test"
		}},
		{name: "count not an integer", edit: func(m map[string]any) {
			m["policies"].([]any)[0].(map[string]any)["summary"].(map[string]any)["total-successful-session-count"] = "2"
		}},
		{name: "unknown result-type", edit: func(m map[string]any) { detail0(m)["result-type"] = "tls-broken" }},
		{name: "sending-mta-ip not an address", edit: func(m map[string]any) { detail0(m)["sending-mta-ip"] = "mta.test" }},
		{name: "no failed-session-count", edit: func(m map[string]any) { delete(detail0(m), "failed-session-count") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(good, &m); err != nil {
				t.Fatal(err)
			}
			tt.edit(m)
			err := sch.Validate(m)
			if tt.valid && err != nil {
				t.Fatalf("valid report refused: %v", err)
			}
			if !tt.valid && err == nil {
				t.Fatal("broken report accepted")
			}
		})
	}
	var rep Report
	if err := json.Unmarshal(good, &rep); err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Policies {
		var sum int64
		for _, d := range p.FailureDetails {
			sum += d.FailedSessionCount
		}
		if sum > p.Summary.Failure {
			t.Errorf("policy %s: failure details count %d sessions, the summary %d", p.Policy.Type, sum, p.Summary.Failure)
		}
	}
}

func policy0(m map[string]any) map[string]any {
	return m["policies"].([]any)[0].(map[string]any)["policy"].(map[string]any)
}

func detail0(m map[string]any) map[string]any {
	return m["policies"].([]any)[0].(map[string]any)["failure-details"].([]any)[0].(map[string]any)
}

// TestReportMail: the report as mail (RFC 8460 §5.3): golden message, and
// its structure read back with the standard library.
func TestReportMail(t *testing.T) {
	w := reportWindow(t)
	rep := BuildReport(w, testSubmitter)
	msg, err := BuildMail(rep, w, testSubmitter, MailParams{From: "postmaster@mta.test", To: "reports@x.test",
		Date: time.Date(2026, 12, 2, 0, 10, 0, 0, time.UTC), Boundary: "tlsrpt-boundary"})
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "testdata/report.golden.eml", msg)

	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	wantSubject := "Report Domain: x.test Submitter: mta.test Report-ID: <" + rep.ReportID + ">"
	for k, want := range map[string]string{"Subject": wantSubject, "TLS-Report-Domain": "x.test", "TLS-Report-Submitter": "mta.test"} {
		if got := m.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "tlsrpt" {
		t.Fatalf("Content-Type %q (%v), want multipart/report; report-type=tlsrpt", m.Header.Get("Content-Type"), err)
	}
	bad := *w
	bad.Domain = "x.test\r\nBcc: victim@example.com"
	if _, err := BuildMail(BuildReport(&bad, testSubmitter), &bad, testSubmitter, MailParams{From: "postmaster@mta.test", To: "r@x.test"}); err == nil {
		t.Error("a line break in the domain made a header field")
	}
	got := ReadReportMail(t, msg)
	if got.ReportID != rep.ReportID || len(got.Policies) != len(rep.Policies) {
		t.Errorf("attachment holds %+v, want the report", got)
	}
}

// ReadReportMail decodes the application/tlsrpt+gzip part of a report
// mail.
func ReadReportMail(t *testing.T, msg []byte) *Report {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	_, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			t.Fatal("no application/tlsrpt+gzip part")
		}
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(p.Header.Get("Content-Type"), "application/tlsrpt+gzip") {
			continue
		}
		if cd := p.Header.Get("Content-Disposition"); !strings.Contains(cd, ".json.gz") {
			t.Errorf("Content-Disposition %q names no .json.gz file", cd)
		}
		zr, err := gzip.NewReader(base64.NewDecoder(base64.StdEncoding, p))
		if err != nil {
			t.Fatal(err)
		}
		var rep Report
		if err := json.NewDecoder(zr).Decode(&rep); err != nil {
			t.Fatal(err)
		}
		return &rep
	}
}
