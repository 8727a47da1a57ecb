package e2e

import (
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/mail"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/cuemta/cuemta/sim"
)

// aggregateReport is the part of an RFC 7489 Appendix C report the test
// reads, decoded here on its own rather than with package dmarcreport's
// types, so that a field misnamed there fails here.
type aggregateReport struct {
	XMLName  xml.Name `xml:"feedback"`
	Metadata struct {
		OrgName   string `xml:"org_name"`
		Email     string `xml:"email"`
		ReportID  string `xml:"report_id"`
		DateRange struct {
			Begin int64 `xml:"begin"`
			End   int64 `xml:"end"`
		} `xml:"date_range"`
	} `xml:"report_metadata"`
	Published struct {
		Domain string `xml:"domain"`
		ADKIM  string `xml:"adkim"`
		ASPF   string `xml:"aspf"`
		P      string `xml:"p"`
		Pct    int    `xml:"pct"`
	} `xml:"policy_published"`
	Records []struct {
		Row struct {
			SourceIP  string `xml:"source_ip"`
			Count     int    `xml:"count"`
			Evaluated struct {
				Disposition string `xml:"disposition"`
				DKIM        string `xml:"dkim"`
				SPF         string `xml:"spf"`
			} `xml:"policy_evaluated"`
		} `xml:"row"`
		Identifiers struct {
			HeaderFrom   string `xml:"header_from"`
			EnvelopeFrom string `xml:"envelope_from"`
		} `xml:"identifiers"`
		Auth struct {
			DKIM []struct {
				Domain   string `xml:"domain"`
				Selector string `xml:"selector"`
				Result   string `xml:"result"`
			} `xml:"dkim"`
			SPF struct {
				Domain string `xml:"domain"`
				Scope  string `xml:"scope"`
				Result string `xml:"result"`
			} `xml:"spf"`
		} `xml:"auth_results"`
	} `xml:"record"`
}

// TestDMARCReports runs DMARC aggregate reporting end to end: mail from
// sender.test (p=reject, rua to reports.test, which authorises it at
// sender.test._report._dmarc.reports.test, and to unverified.test,
// which does not) arrives at the mx listener, aligned and signed from
// the domain's address, and spoofed from another; mail from quiet.test
// (a record without rua) is not counted. The server is restarted between
// the messages: the counts survive it. POST /api/v1/dmarc/send sends the
// report to reports.test only, and the report decodes (gzip, XML) to one
// row per source, the refused spoof included. The report mail's own
// delivery is not counted: a second forced send has nothing to report.
func TestDMARCReports(t *testing.T) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	pub := base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))
	s := startSim(t, map[string]*sim.Site{
		"corp":    {Domains: []string{"corp.test"}, MX: []sim.MXHost{{Host: "mx.corp.test", IP: "127.0.0.41"}}},
		"reports": {Domains: []string{"reports.test"}, MX: []sim.MXHost{{Host: "mx.reports.test", IP: "127.0.0.8"}}},
	}, func(c *sim.Config) {
		c.DNS.Records = []string{
			`sender.test. 300 IN TXT "v=spf1 ip4:127.0.10.1 -all"`,
			`s1._domainkey.sender.test. 300 IN TXT "v=DKIM1; k=ed25519; p=` + pub + `"`,
			`_dmarc.sender.test. 300 IN TXT "v=DMARC1; p=reject; rua=mailto:agg@reports.test,mailto:agg@unverified.test"`,
			`sender.test._report._dmarc.reports.test. 300 IN TXT "v=DMARC1"`,
			// unverified.test exists but publishes no §7.1 record.
			`unverified.test. 300 IN TXT "v=spf1 -all"`,
			`quiet.test. 300 IN TXT "v=spf1 ip4:127.0.10.1 -all"`,
			`_dmarc.quiet.test. 300 IN TXT "v=DMARC1; p=none"`,
		}
	})
	dir := mtaConfig(t, s, `
relay: networks: ["192.0.2.0/24"]
relay: domains: ["corp.test"]
rules: message: [
	{name: "dmarc-reject", when: "auth.dmarc == 'fail' && dmarc.disposition == 'reject'",
	 reject: {code: 550, enhanced: "5.7.1", text: "Unauthenticated mail from a domain that asks for rejection"}},
]
dmarcReporting: {enabled: true, organization: "cuemta e2e", flushInterval: "1h"}
`)
	msg := func(from, subject string, signed bool) []byte {
		m := []byte("From: " + from + "\r\nTo: <staff@corp.test>\r\nSubject: " + subject +
			"\r\nDate: Thu, 03 Dec 2026 05:00:00 +0000\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@e2e.test>\r\n\r\nHello.\r\n")
		if !signed {
			return m
		}
		var out bytes.Buffer
		if err := dkim.Sign(&out, bytes.NewReader(m), &dkim.SignOptions{Domain: "sender.test", Selector: "s1", Signer: key}); err != nil {
			t.Fatal(err)
		}
		return out.Bytes()
	}
	srv := startServer(t, dir, "mx")
	send := func(local, mailFrom string, m []byte, want string) {
		t.Helper()
		if got := sendFrom(t, srv.addrs["mx"], local, "mail.client.test", mailFrom, "staff@corp.test", m); !strings.HasPrefix(got, want) {
			t.Fatalf("%s: reply %q, want %q", subjectOf(m), got, want)
		}
	}
	send("127.0.10.1", "alice@sender.test", msg("Alice <alice@sender.test>", "first", true), "250 ")
	send("127.0.20.1", "ceo@sender.test", msg("CEO <ceo@sender.test>", "spoofed", false), "550 5.7.1")
	send("127.0.10.1", "bob@quiet.test", msg("bob@quiet.test", "quiet", false), "250 ")
	// A clean stop saves the counts; the second aligned message lands in
	// the same row after the restart. (Delivered first: a delivery cut
	// short by the stop would wait for its retry.)
	waitFor(t, 20*time.Second, "two messages at corp", func() bool { return len(messagesTo(s, "corp")) == 2 })
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	srv = startServer(t, dir, "mx")
	send("127.0.10.1", "alice@sender.test", msg("Alice <alice@sender.test>", "second", true), "250 ")
	waitFor(t, 20*time.Second, "three messages at corp", func() bool { return len(messagesTo(s, "corp")) == 3 })

	code, out := api(t, "POST", "http://"+srv.admin+"/api/v1/dmarc/send", "", "")
	if code != http.StatusOK {
		t.Fatalf("POST /api/v1/dmarc/send: %d %v", code, out)
	}
	reps, _ := out["reports"].([]any)
	if len(reps) != 1 {
		t.Fatalf("POST /api/v1/dmarc/send: %d reports, want 1 (sender.test only): %v", len(reps), out)
	}
	rep := reps[0].(map[string]any)
	if rep["domain"] != "sender.test" || rep["outcome"] != "sent" {
		t.Errorf("report %v, want sender.test sent", rep)
	}
	if got := fmt.Sprint(rep["refused"]); !strings.Contains(got, "agg@unverified.test") || strings.Contains(got, "reports.test") {
		t.Errorf("refused %s, want the unverified external destination only", got)
	}
	waitFor(t, 20*time.Second, "the report at reports.test", func() bool { return len(messagesTo(s, "reports")) == 1 })
	m := messagesTo(s, "reports")[0]
	if len(m.Rcpts) != 1 || m.Rcpts[0] != "agg@reports.test" {
		t.Errorf("report mail to %v, want agg@reports.test", m.Rcpts)
	}
	got, subject := readDMARCReport(t, m.Body)
	if want := "Report Domain: sender.test Submitter: mta.test Report-ID: "; !strings.HasPrefix(subject, want) {
		t.Errorf("Subject %q, want it to start %q", subject, want)
	}
	if got.Metadata.OrgName != "cuemta e2e" || got.Metadata.Email != "postmaster@mta.test" || got.Metadata.ReportID == "" ||
		got.Metadata.DateRange.End < got.Metadata.DateRange.Begin {
		t.Errorf("report_metadata %+v", got.Metadata)
	}
	if p := got.Published; p.Domain != "sender.test" || p.P != "reject" || p.ADKIM != "r" || p.ASPF != "r" || p.Pct != 100 {
		t.Errorf("policy_published %+v", p)
	}
	var rows []string
	for _, r := range got.Records {
		var dk []string
		for _, d := range r.Auth.DKIM {
			dk = append(dk, d.Domain+"/"+d.Selector+"="+d.Result)
		}
		rows = append(rows, fmt.Sprintf("%s x%d %s dkim=%s spf=%s from=%s env=%s auth-dkim=%v auth-spf=%s/%s=%s",
			r.Row.SourceIP, r.Row.Count, r.Row.Evaluated.Disposition, r.Row.Evaluated.DKIM, r.Row.Evaluated.SPF,
			r.Identifiers.HeaderFrom, r.Identifiers.EnvelopeFrom, dk, r.Auth.SPF.Domain, r.Auth.SPF.Scope, r.Auth.SPF.Result))
	}
	sort.Strings(rows)
	want := []string{
		"127.0.10.1 x2 none dkim=pass spf=pass from=sender.test env=sender.test auth-dkim=[sender.test/s1=pass] auth-spf=sender.test/mfrom=pass",
		"127.0.20.1 x1 reject dkim=fail spf=fail from=sender.test env=sender.test auth-dkim=[] auth-spf=sender.test/mfrom=fail",
	}
	if strings.Join(rows, "\n") != strings.Join(want, "\n") {
		t.Errorf("records:\n%s\nwant:\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
	}

	code, out = api(t, "POST", "http://"+srv.admin+"/api/v1/dmarc/send", "", "")
	if reps, _ := out["reports"].([]any); code != http.StatusOK || len(reps) != 0 {
		t.Errorf("second send: %d %v, want nothing left to report", code, out)
	}
}

// TestDMARCReportsOffByDefault: without dmarcReporting.enabled nothing is
// counted and the endpoint says DMARC reporting is off.
func TestDMARCReportsOffByDefault(t *testing.T) {
	s := startSim(t, map[string]*sim.Site{
		"corp": {Domains: []string{"corp.test"}, MX: []sim.MXHost{{Host: "mx.corp.test", IP: "127.0.0.41"}}},
	})
	srv := startServer(t, mtaConfig(t, s, ``), "mx")
	code, out := api(t, "POST", "http://"+srv.admin+"/api/v1/dmarc/send", "", "")
	if code != http.StatusNotFound || !strings.Contains(fmt.Sprint(out), "dmarcReporting.enabled") {
		t.Errorf("POST /api/v1/dmarc/send with reporting off: %d %v, want 404 naming dmarcReporting.enabled", code, out)
	}
}

// readDMARCReport returns the decoded application/gzip part of a report
// mail and its Subject.
func readDMARCReport(t *testing.T, msg []byte) (*aggregateReport, string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mt, "multipart/") {
		t.Fatalf("report mail Content-Type %q: %v", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("no application/gzip part: %v", err)
		}
		if ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); ct != "application/gzip" {
			continue
		}
		if name := p.FileName(); !strings.HasPrefix(name, "mta.test!sender.test!") || !strings.HasSuffix(name, ".xml.gz") {
			t.Errorf("attachment file name %q, want mta.test!sender.test!<begin>!<end>.xml.gz", name)
		}
		zr, err := gzip.NewReader(base64.NewDecoder(base64.StdEncoding, p))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		var rep aggregateReport
		if err := xml.Unmarshal(raw, &rep); err != nil {
			t.Fatalf("report XML: %v\n%s", err, raw)
		}
		return &rep, m.Header.Get("Subject")
	}
}
