package tlsrpt

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
)

// MailParams are what a report mail needs beside the report.
type MailParams struct {
	From, To string
	Date     time.Time
	// Boundary is the multipart boundary; "" makes a random one (tests
	// fix it for a golden file).
	Boundary string
}

// BuildMail is the report as a mail message (RFC 8460 §5.3): a
// multipart/report (report-type "tlsrpt") whose first part says what the
// message is to a human and whose second is the gzipped report,
// application/tlsrpt+gzip, named per §5.3; the Subject and the
// TLS-Report-Domain and TLS-Report-Submitter fields name the policy
// domain, the submitter and the report id.
func BuildMail(rep *Report, w *Window, sub Submitter, p MailParams) ([]byte, error) {
	if strings.ContainsAny(w.Domain+sub.Hostname+rep.ReportID, "\r\n") {
		return nil, fmt.Errorf("tlsrpt: report mail: a line break in %q, %q or %q", w.Domain, sub.Hostname, rep.ReportID)
	}
	gz, err := rep.Gzip()
	if err != nil {
		return nil, err
	}
	var h mail.Header
	h.SetDate(p.Date)
	h.SetAddressList("From", []*mail.Address{{Address: p.From}})
	h.SetAddressList("To", []*mail.Address{{Address: p.To}})
	// RFC 8460 §5.3: "Report Domain: <domain> Submitter: <submitter>
	// Report-ID: <report-id>".
	h.SetSubject(fmt.Sprintf("Report Domain: %s Submitter: %s Report-ID: <%s>", w.Domain, sub.Hostname, rep.ReportID))
	// AddRaw keeps the names as RFC 8460 §5.3 and RFC 5322 spell them
	// (Set would write Tls-Report-Domain; names are case-insensitive, but
	// people read them). The values are domain names: nothing to encode.
	h.AddRaw([]byte("Message-ID: <" + rep.ReportID + ">\r\n"))
	h.AddRaw([]byte("TLS-Report-Domain: " + w.Domain + "\r\n"))
	h.AddRaw([]byte("TLS-Report-Submitter: " + sub.Hostname + "\r\n"))
	params := map[string]string{"report-type": "tlsrpt"}
	if p.Boundary != "" {
		params["boundary"] = p.Boundary
	}
	h.SetContentType("multipart/report", params)

	var buf bytes.Buffer
	mw, err := message.CreateWriter(&buf, h.Header)
	if err != nil {
		return nil, fmt.Errorf("tlsrpt: report mail: %w", err)
	}
	var th message.Header
	th.SetContentType("text/plain", map[string]string{"charset": "us-ascii"})
	th.Set("Content-Transfer-Encoding", "7bit")
	tw, err := mw.CreatePart(th)
	if err != nil {
		return nil, fmt.Errorf("tlsrpt: report mail: %w", err)
	}
	fmt.Fprintf(tw, "This is an aggregate TLS report (RFC 8460) from %s\r\nfor %s, %s to %s.\r\n",
		sub.Hostname, w.Domain, rep.DateRange.Start.UTC().Format(time.RFC3339), rep.DateRange.End.UTC().Format(time.RFC3339))
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("tlsrpt: report mail: %w", err)
	}
	var ah message.Header
	name := FileName(w, sub.Hostname)
	ah.SetContentType("application/tlsrpt+gzip", map[string]string{"name": name})
	ah.SetContentDisposition("attachment", map[string]string{"filename": name})
	ah.Set("Content-Transfer-Encoding", "base64")
	aw, err := mw.CreatePart(ah)
	if err != nil {
		return nil, fmt.Errorf("tlsrpt: report mail: %w", err)
	}
	if _, err := aw.Write(gz); err != nil {
		return nil, fmt.Errorf("tlsrpt: report mail: %w", err)
	}
	if err := aw.Close(); err != nil {
		return nil, fmt.Errorf("tlsrpt: report mail: %w", err)
	}
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("tlsrpt: report mail: %w", err)
	}
	return buf.Bytes(), nil
}
