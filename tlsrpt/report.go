package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Report is an RFC 8460 §4 aggregate report, as JSON (§4.4 names the
// fields).
type Report struct {
	OrganizationName string         `json:"organization-name"`
	DateRange        DateRange      `json:"date-range"`
	ContactInfo      string         `json:"contact-info"`
	ReportID         string         `json:"report-id"`
	Policies         []PolicyReport `json:"policies"`
}

// DateRange is the report's time range; RFC 8460 §4.4 wants RFC 3339
// date-times, written here in UTC to the second.
type DateRange struct {
	Start time.Time `json:"start-datetime"`
	End   time.Time `json:"end-datetime"`
}

// PolicyReport is one policy and its sessions.
type PolicyReport struct {
	Policy         Policy          `json:"policy"`
	Summary        Summary         `json:"summary"`
	FailureDetails []FailureReport `json:"failure-details,omitempty"`
}

// Policy is the policy the sessions were checked against. MXHost is a
// list (RFC 8460 erratum 6241: the original example had a string).
type Policy struct {
	Type   PolicyType `json:"policy-type"`
	String []string   `json:"policy-string,omitempty"`
	Domain string     `json:"policy-domain"`
	MXHost []string   `json:"mx-host,omitempty"`
}

// Summary counts the sessions (RFC 8460 §4.4).
type Summary struct {
	Successful int64 `json:"total-successful-session-count"`
	Failure    int64 `json:"total-failure-session-count"`
}

// FailureReport is one failure-details entry (RFC 8460 §4.3, §4.4).
type FailureReport struct {
	ResultType          ResultType `json:"result-type"`
	SendingMTAIP        string     `json:"sending-mta-ip,omitempty"`
	ReceivingMXHostname string     `json:"receiving-mx-hostname,omitempty"`
	ReceivingMXHelo     string     `json:"receiving-mx-helo,omitempty"`
	ReceivingIP         string     `json:"receiving-ip,omitempty"`
	FailedSessionCount  int64      `json:"failed-session-count"`
	FailureReasonCode   string     `json:"failure-reason-code,omitempty"`
}

// MarshalJSON writes the date-times in UTC, to the second (RFC 3339).
func (d DateRange) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Start string `json:"start-datetime"`
		End   string `json:"end-datetime"`
	}{d.Start.UTC().Format(time.RFC3339), d.End.UTC().Format(time.RFC3339)})
}

// Submitter is who sends a report.
type Submitter struct {
	// Organization is organization-name; Contact is contact-info (an
	// address or URI); Hostname names this MTA in report IDs, the
	// attachment file name and TLS-Report-Submitter; Node is the cluster
	// node's name, "" for a server alone (report IDs,
	// reportbook.Head.ReportID).
	Organization, Contact, Hostname, Node string
}

// BuildReport is the report of a closed window.
func BuildReport(w *Window, sub Submitter) *Report {
	rep := &Report{
		OrganizationName: sub.Organization,
		DateRange:        DateRange{Start: w.Start, End: w.End},
		ContactInfo:      sub.Contact,
		ReportID:         w.ReportID(sub.Hostname, sub.Node),
		Policies:         make([]PolicyReport, 0, len(w.Policies)),
	}
	for _, p := range w.Policies {
		pr := PolicyReport{
			Policy:  Policy{Type: p.Type, String: p.Strings, Domain: w.Domain, MXHost: p.MXHosts},
			Summary: Summary{Successful: p.Success, Failure: p.Failure},
		}
		for _, d := range p.sortedDetails() {
			pr.FailureDetails = append(pr.FailureDetails, FailureReport{
				ResultType: d.Result, SendingMTAIP: d.SendingIP, ReceivingMXHostname: d.ReceivingMX,
				ReceivingMXHelo: d.ReceivingHELO, ReceivingIP: d.ReceivingIP, FailedSessionCount: d.Count,
				FailureReasonCode: d.Reason,
			})
		}
		rep.Policies = append(rep.Policies, pr)
	}
	return rep
}

// JSON is the report as sent, indented for the human who opens it.
func (r *Report) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("tlsrpt: encode report: %w", err)
	}
	return append(b, '\n'), nil
}

// Gzip is the report gzip-compressed, as application/tlsrpt+gzip
// (RFC 8460 §5.3, §6.4).
func (r *Report) Gzip() ([]byte, error) {
	b, err := r.JSON()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		return nil, fmt.Errorf("tlsrpt: gzip report: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("tlsrpt: gzip report: %w", err)
	}
	return buf.Bytes(), nil
}

// FileName is the attachment's name (RFC 8460 §5.3):
// submitter!policy-domain!begin!end!unique-id.json.gz, the times in
// seconds since the epoch.
func FileName(w *Window, hostname string) string {
	return hostname + "!" + w.Domain + "!" + strconv.FormatInt(w.Start.Unix(), 10) + "!" +
		strconv.FormatInt(w.End.Unix(), 10) + "!" + strconv.FormatUint(w.Seq, 10) + ".json.gz"
}
