package dmarcreport

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"encoding/xml"
	"fmt"
	"slices"
	"strconv"
)

// Feedback is an RFC 7489 aggregate report: the XML of Appendix C.
type Feedback struct {
	XMLName         xml.Name        `xml:"feedback"`
	Version         string          `xml:"version"`
	Metadata        ReportMetadata  `xml:"report_metadata"`
	PolicyPublished PolicyPublished `xml:"policy_published"`
	Records         []ReportRecord  `xml:"record"`
}

// ReportMetadata is who reports, and over what time (report_metadata).
type ReportMetadata struct {
	OrgName          string    `xml:"org_name"`
	Email            string    `xml:"email"`
	ExtraContactInfo string    `xml:"extra_contact_info,omitempty"`
	ReportID         string    `xml:"report_id"`
	DateRange        DateRange `xml:"date_range"`
	// Errors say what the report leaves out (results beyond the row
	// limit).
	Errors []string `xml:"error,omitempty"`
}

// DateRange is the report's time range in seconds since the epoch, UTC
// (Appendix C: DateRangeType).
type DateRange struct {
	Begin int64 `xml:"begin"`
	End   int64 `xml:"end"`
}

// PolicyPublished is the DMARC record the messages were evaluated
// against (Appendix C: PolicyPublishedType).
type PolicyPublished struct {
	Domain string `xml:"domain"`
	ADKIM  string `xml:"adkim,omitempty"`
	ASPF   string `xml:"aspf,omitempty"`
	P      string `xml:"p"`
	SP     string `xml:"sp,omitempty"`
	Pct    int    `xml:"pct"`
}

// ReportRecord is one row of identical results (Appendix C: RecordType).
type ReportRecord struct {
	Row         RecordRow   `xml:"row"`
	Identifiers Identifiers `xml:"identifiers"`
	AuthResults AuthResults `xml:"auth_results"`
}

// RecordRow is where the messages came from, how many, and what DMARC
// made of them (Appendix C: RowType).
type RecordRow struct {
	SourceIP        string          `xml:"source_ip"`
	Count           int64           `xml:"count"`
	PolicyEvaluated PolicyEvaluated `xml:"policy_evaluated"`
}

// PolicyEvaluated is the disposition and the aligned results
// (Appendix C: PolicyEvaluatedType), with the reasons a disposition
// differs from the policy.
type PolicyEvaluated struct {
	Disposition string           `xml:"disposition"`
	DKIM        string           `xml:"dkim"`
	SPF         string           `xml:"spf"`
	Reasons     []OverrideReason `xml:"reason,omitempty"`
}

// OverrideReason says why the disposition is not the policy's
// (Appendix C: PolicyOverrideReason): here only "sampled_out", the
// record's pct (RFC 7489 §6.6.4).
type OverrideReason struct {
	Type    string `xml:"type"`
	Comment string `xml:"comment,omitempty"`
}

// Identifiers are the messages' domains (Appendix C: IdentifierType,
// in its order). EnvelopeFrom is empty for the null sender, but written:
// the schema requires the element.
type Identifiers struct {
	EnvelopeFrom string `xml:"envelope_from"`
	HeaderFrom   string `xml:"header_from"`
}

// AuthResults are the raw DKIM and SPF results, aligned or not
// (Appendix C: AuthResultType).
type AuthResults struct {
	DKIM []DKIMResult `xml:"dkim"`
	SPF  []SPFResult  `xml:"spf"`
}

// DKIMResult is one signature's result (Appendix C:
// DKIMAuthResultType).
type DKIMResult struct {
	Domain   string `xml:"domain"`
	Selector string `xml:"selector,omitempty"`
	Result   string `xml:"result"`
}

// SPFResult is the SPF result (Appendix C: SPFAuthResultType).
type SPFResult struct {
	Domain string `xml:"domain"`
	Scope  string `xml:"scope,omitempty"`
	Result string `xml:"result"`
}

// Submitter is who sends reports: org_name, email and extra_contact_info
// of report_metadata; Hostname is the receiver's domain in report ids,
// the Subject and the attachment's file name; Node is the cluster node's
// name, "" for a server alone (report ids, reportbook.Head.ReportID).
type Submitter struct{ Organization, Email, ContactInfo, Hostname, Node string }

// BuildReport is the report of a closed window. Records come in a stable
// order: the largest count first, then by their fields.
func BuildReport(w *Window, sub Submitter) *Feedback {
	p := w.Policy
	rep := &Feedback{
		Version: "1.0",
		Metadata: ReportMetadata{
			OrgName: sub.Organization, Email: sub.Email, ExtraContactInfo: sub.ContactInfo,
			ReportID:  w.ReportID(sub.Hostname, sub.Node),
			DateRange: DateRange{Begin: w.Start.Unix(), End: w.End.Unix()},
		},
		PolicyPublished: PolicyPublished{Domain: w.Domain, ADKIM: p.ADKIM, ASPF: p.ASPF, P: p.P, SP: p.SP, Pct: p.Pct},
		Records:         make([]ReportRecord, 0, len(w.Rows)),
	}
	if w.DroppedResults > 0 {
		rep.Metadata.Errors = append(rep.Metadata.Errors,
			fmt.Sprintf("%d messages not reported: more distinct records than this receiver keeps", w.DroppedResults))
	}
	rows := slices.Clone(w.Rows)
	slices.SortStableFunc(rows, func(a, b *Row) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.key(), b.key()))
	})
	for _, r := range rows {
		rec := ReportRecord{
			Row: RecordRow{SourceIP: r.SourceIP, Count: r.Count,
				PolicyEvaluated: PolicyEvaluated{Disposition: r.Disposition, DKIM: passFail(r.DKIM), SPF: passFail(r.SPF)}},
			Identifiers: Identifiers{EnvelopeFrom: r.EnvelopeFrom, HeaderFrom: r.HeaderFrom},
			AuthResults: AuthResults{SPF: []SPFResult{{Domain: r.SPFAuth.Domain, Scope: r.SPFAuth.Scope, Result: r.SPFAuth.Result}}},
		}
		for _, d := range r.DKIMAuth {
			rec.AuthResults.DKIM = append(rec.AuthResults.DKIM, DKIMResult(d))
		}
		if r.SampledOut {
			rec.Row.PolicyEvaluated.Reasons = []OverrideReason{{Type: "sampled_out"}}
		}
		rep.Records = append(rep.Records, rec)
	}
	return rep
}

func passFail(ok bool) string {
	if ok {
		return "pass"
	}
	return "fail"
}

// XML is the report as sent, indented for the human who opens it.
func (f *Feedback) XML() ([]byte, error) {
	b, err := xml.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("dmarcreport: encode report: %w", err)
	}
	out := make([]byte, 0, len(xml.Header)+len(b)+1)
	out = append(out, xml.Header...)
	out = append(out, b...)
	return append(out, '\n'), nil
}

// Gzip is the report gzip-compressed (RFC 7489 §7.2.1.1: gzip is the
// compression every receiver must read).
func (f *Feedback) Gzip() ([]byte, error) {
	b, err := f.XML()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		return nil, fmt.Errorf("dmarcreport: gzip report: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("dmarcreport: gzip report: %w", err)
	}
	return buf.Bytes(), nil
}

// FileName is the attachment's name (RFC 7489 §7.2.1.1):
// receiver!policy-domain!begin!end.xml.gz, the times in seconds since
// the epoch.
func FileName(w *Window, hostname string) string {
	return hostname + "!" + w.Domain + "!" + strconv.FormatInt(w.Start.Unix(), 10) + "!" +
		strconv.FormatInt(w.End.Unix(), 10) + ".xml.gz"
}
