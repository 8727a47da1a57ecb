package dmarcreport

import (
	"bytes"
	"compress/gzip"
	"encoding/xml"
	"io"
	"mime"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"

	"github.com/cuemta/cuemta/internal/golden"
)

var testSubmitter = Submitter{Organization: "Example Receiver", Email: "postmaster@mta.test",
	ContactInfo: "https://mta.test/dmarc", Hostname: "mta.test"}

// reportWindow counts a day of results, as reception would record them,
// and returns the closed window.
func reportWindow(t *testing.T) *Window {
	t.Helper()
	c := newClock("2026-12-01T00:00:00Z")
	s := openTest(t, c, "")
	forged := with(func(r *Result) {
		r.SourceIP = netip.MustParseAddr("2001:db8::25")
		r.EnvelopeFrom, r.Disposition, r.DKIMAligned, r.SPFAligned = "", "reject", false, false
		r.DKIM = nil
		r.SPF = SPFAuth{Domain: "mail.forger.test", Scope: "helo", Result: "fail"}
	})
	list := with(func(r *Result) {
		r.SourceIP = netip.MustParseAddr("198.51.100.7")
		r.EnvelopeFrom, r.SPFAligned = "lists.y.test", false
		r.DKIM = append(r.DKIM, DKIMAuth{Domain: "lists.y.test", Selector: "ml", Result: "pass"})
		r.SPF = SPFAuth{Domain: "lists.y.test", Scope: "mfrom", Result: "pass"}
	})
	// pct=50 spared this one p=reject: quarantined, sampled out.
	sampled := with(func(r *Result) {
		r.SourceIP = netip.MustParseAddr("203.0.113.9")
		r.Disposition, r.SampledOut, r.DKIMAligned, r.SPFAligned = "quarantine", true, false, false
		r.DKIM = nil
		r.SPF = SPFAuth{Domain: "x.test", Scope: "mfrom", Result: "fail"}
	})
	seq := []Result{okResult, okResult, okResult, forged, list, list, sampled}
	for i, r := range seq {
		c.Set(time.Date(2026, 12, 1, i, 0, 0, 0, time.UTC).Format(time.RFC3339))
		s.Record(r)
	}
	// The record changes at the end of the day: the report shows it so.
	s.Record(with(func(r *Result) { r.Published.P, r.Published.SP, r.Published.Pct = "quarantine", "none", 50 }))
	c.Set("2026-12-02T00:10:00Z")
	s.Roll()
	due := s.Due(c.Now(), 0, 0)
	if len(due) != 1 {
		t.Fatalf("%d windows, want 1", len(due))
	}
	return due[0]
}

// TestReportGolden: the report of a day of results, as RFC 7489
// Appendix C XML.
func TestReportGolden(t *testing.T) {
	b, err := BuildReport(reportWindow(t), testSubmitter).XML()
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "testdata/report.golden.xml", b)
}

// rfcFeedback reads a report by the element paths of RFC 7489
// Appendix C, written apart from Feedback so that a wrong tag there
// shows here.
type rfcFeedback struct {
	XMLName  xml.Name `xml:"feedback"`
	Version  string   `xml:"version"`
	OrgName  string   `xml:"report_metadata>org_name"`
	Email    string   `xml:"report_metadata>email"`
	Extra    *string  `xml:"report_metadata>extra_contact_info"`
	ReportID string   `xml:"report_metadata>report_id"`
	Begin    int64    `xml:"report_metadata>date_range>begin"`
	End      int64    `xml:"report_metadata>date_range>end"`
	Errors   []string `xml:"report_metadata>error"`
	Domain   string   `xml:"policy_published>domain"`
	ADKIM    string   `xml:"policy_published>adkim"`
	ASPF     string   `xml:"policy_published>aspf"`
	P        string   `xml:"policy_published>p"`
	SP       *string  `xml:"policy_published>sp"`
	Pct      int      `xml:"policy_published>pct"`
	Records  []struct {
		SourceIP     string   `xml:"row>source_ip"`
		Count        int64    `xml:"row>count"`
		Disposition  string   `xml:"row>policy_evaluated>disposition"`
		DKIM         string   `xml:"row>policy_evaluated>dkim"`
		SPF          string   `xml:"row>policy_evaluated>spf"`
		Reasons      []string `xml:"row>policy_evaluated>reason>type"`
		HeaderFrom   string   `xml:"identifiers>header_from"`
		EnvelopeFrom *string  `xml:"identifiers>envelope_from"`
		DKIMAuth     []struct {
			Domain   string `xml:"domain"`
			Selector string `xml:"selector"`
			Result   string `xml:"result"`
		} `xml:"auth_results>dkim"`
		SPFAuth []struct {
			Domain string `xml:"domain"`
			Scope  string `xml:"scope"`
			Result string `xml:"result"`
		} `xml:"auth_results>spf"`
	} `xml:"record"`
}

// TestReportDecode reads the report back by the RFC's element names and
// checks what it says.
func TestReportDecode(t *testing.T) {
	w := reportWindow(t)
	b, err := BuildReport(w, testSubmitter).XML()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte(`<?xml version="1.0" encoding="UTF-8"?>`)) {
		t.Errorf("no XML declaration: %.60s", b)
	}
	var f rfcFeedback
	if err := xml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if f.Version != "1.0" || f.OrgName != "Example Receiver" || f.Email != "postmaster@mta.test" || f.Extra == nil ||
		*f.Extra != "https://mta.test/dmarc" || f.ReportID != "20261201T000000Z.1.x.test@mta.test" || len(f.Errors) != 0 {
		t.Errorf("report_metadata %+v", f)
	}
	if f.Begin != time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).Unix() || f.End != time.Date(2026, 12, 1, 23, 59, 59, 0, time.UTC).Unix() {
		t.Errorf("date_range %d-%d, want 2026-12-01 00:00:00 to 23:59:59", f.Begin, f.End)
	}
	if f.Domain != "x.test" || f.ADKIM != "r" || f.ASPF != "r" || f.P != "quarantine" || f.SP == nil || *f.SP != "none" || f.Pct != 50 {
		t.Errorf("policy_published %+v, want the record as last seen", f)
	}
	if len(f.Records) != 4 {
		t.Fatalf("%d records, want 4", len(f.Records))
	}
	ok, list, forged, sampled := f.Records[0], f.Records[1], f.Records[2], f.Records[3] // largest count first, then by fields
	if ok.SourceIP != "192.0.2.1" || ok.Count != 4 || ok.Disposition != "none" || ok.DKIM != "pass" || ok.SPF != "pass" ||
		ok.HeaderFrom != "x.test" || ok.EnvelopeFrom == nil || *ok.EnvelopeFrom != "x.test" ||
		len(ok.DKIMAuth) != 1 || ok.DKIMAuth[0].Selector != "s1" || ok.DKIMAuth[0].Result != "pass" ||
		len(ok.SPFAuth) != 1 || ok.SPFAuth[0].Scope != "mfrom" || ok.SPFAuth[0].Result != "pass" {
		t.Errorf("first record %+v", ok)
	}
	if list.Count != 2 || list.SPF != "fail" || len(list.DKIMAuth) != 2 || list.DKIMAuth[1].Domain != "x.test" {
		t.Errorf("mailing-list record %+v, want 2 messages, SPF not aligned, two signatures in order", list)
	}
	if forged.SourceIP != "2001:db8::25" || forged.Disposition != "reject" || forged.DKIM != "fail" || forged.EnvelopeFrom == nil || *forged.EnvelopeFrom != "" ||
		len(forged.DKIMAuth) != 0 || forged.SPFAuth[0].Scope != "helo" || forged.SPFAuth[0].Domain != "mail.forger.test" {
		t.Errorf("forged record %+v, want reject, an empty envelope_from (the null sender), no dkim", forged)
	}
	if sampled.SourceIP != "203.0.113.9" || sampled.Disposition != "quarantine" || len(sampled.Reasons) != 1 || sampled.Reasons[0] != "sampled_out" ||
		len(ok.Reasons)+len(list.Reasons)+len(forged.Reasons) != 0 {
		t.Errorf("sampled record %+v, want quarantine for the reason sampled_out, and no reason elsewhere", sampled)
	}

	// Optional elements are left out when empty; dropped results are
	// said.
	w.Policy.SP = ""
	w.DroppedResults = 7
	b, err = BuildReport(w, Submitter{Organization: "o", Email: "e@mta.test", Hostname: "mta.test"}).XML()
	if err != nil {
		t.Fatal(err)
	}
	f = rfcFeedback{}
	if err := xml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if f.SP != nil || f.Extra != nil || len(f.Errors) != 1 || !strings.HasPrefix(f.Errors[0], "7 messages") {
		t.Errorf("sp %v, extra_contact_info %v, errors %q; want neither element, one error", f.SP, f.Extra, f.Errors)
	}
}

// TestReportMail: the report as mail (RFC 7489 §7.2.1.1): golden
// message, and its structure read back with go-message.
func TestReportMail(t *testing.T) {
	w := reportWindow(t)
	rep := BuildReport(w, testSubmitter)
	msg, err := BuildMail(rep, w, testSubmitter, MailParams{From: "postmaster@mta.test", To: "dmarc@x.test",
		Date: time.Date(2026, 12, 2, 0, 10, 0, 0, time.UTC), Boundary: "dmarc-boundary"})
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "testdata/report.golden.eml", msg)

	wantXML, err := rep.XML()
	if err != nil {
		t.Fatal(err)
	}
	got := readReportMail(t, msg)
	if got.subject != "Report Domain: x.test Submitter: mta.test Report-ID: <"+rep.Metadata.ReportID+">" {
		t.Errorf("Subject %q", got.subject)
	}
	if got.messageID != rep.Metadata.ReportID || got.from != "postmaster@mta.test" || got.to != "dmarc@x.test" {
		t.Errorf("Message-ID %q, From %q, To %q", got.messageID, got.from, got.to)
	}
	if !got.date.Equal(time.Date(2026, 12, 2, 0, 10, 0, 0, time.UTC)) {
		t.Errorf("Date %v", got.date)
	}
	if got.mediaType != "multipart/mixed" || !strings.Contains(got.text, "DMARC aggregate report") {
		t.Errorf("Content-Type %s, text part %q", got.mediaType, got.text)
	}
	wantName := "mta.test!x.test!1796083200!1796169599.xml.gz"
	if got.name != wantName || got.filename != wantName {
		t.Errorf("attachment name=%q filename=%q, want %q", got.name, got.filename, wantName)
	}
	if !bytes.Equal(got.xml, wantXML) {
		t.Errorf("attachment holds\n%s\nwant\n%s", got.xml, wantXML)
	}

	bad := *w
	bad.Domain = "x.test\r\nBcc: victim@example.com"
	if _, err := BuildMail(BuildReport(&bad, testSubmitter), &bad, testSubmitter, MailParams{From: "postmaster@mta.test", To: "r@x.test"}); err == nil {
		t.Error("a line break in the domain made a header field")
	}
}

// reportMail is what a collector reads of a report mail.
type reportMail struct {
	subject, messageID, from, to, mediaType string
	date                                    time.Time
	text, name, filename                    string
	xml                                     []byte
}

// readReportMail parses a report mail with go-message and gunzips its
// application/gzip part.
func readReportMail(t *testing.T, msg []byte) reportMail {
	t.Helper()
	mr, err := mail.CreateReader(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	var got reportMail
	h := mr.Header
	if got.subject, err = h.Subject(); err != nil {
		t.Fatal(err)
	}
	if got.messageID, err = h.MessageID(); err != nil {
		t.Fatal(err)
	}
	if got.date, err = h.Date(); err != nil {
		t.Fatal(err)
	}
	from, err := h.AddressList("From")
	if err != nil || len(from) != 1 {
		t.Fatalf("From %v: %v", from, err)
	}
	to, err := h.AddressList("To")
	if err != nil || len(to) != 1 {
		t.Fatalf("To %v: %v", to, err)
	}
	got.from, got.to = from[0].Address, to[0].Address
	got.mediaType, _, _ = mime.ParseMediaType(h.Get("Content-Type"))
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch ph := p.Header.(type) {
		case *mail.InlineHeader:
			b, _ := io.ReadAll(p.Body)
			got.text = string(b)
		case *mail.AttachmentHeader:
			ct, params, err := ph.ContentType()
			if err != nil || ct != "application/gzip" {
				t.Fatalf("attachment Content-Type %q: %v", ct, err)
			}
			got.name = params["name"]
			if got.filename, err = ph.Filename(); err != nil {
				t.Fatal(err)
			}
			zr, err := gzip.NewReader(p.Body) // go-message undid the base64
			if err != nil {
				t.Fatal(err)
			}
			if got.xml, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got.xml == nil {
		t.Fatal("no application/gzip attachment")
	}
	return got
}
