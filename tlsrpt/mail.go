package tlsrpt

import (
	"fmt"
	"time"

	"github.com/cuemta/cuemta/internal/reportmail"
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
	gz, err := rep.Gzip()
	if err != nil {
		return nil, err
	}
	msg, err := reportmail.Build(reportmail.Mail{
		From: p.From, To: p.To, Date: p.Date,
		// RFC 8460 §5.3: "Report Domain: <domain> Submitter: <submitter>
		// Report-ID: <report-id>".
		Subject: fmt.Sprintf("Report Domain: %s Submitter: %s Report-ID: <%s>", w.Domain, sub.Hostname, rep.ReportID),
		// The names as RFC 8460 §5.3 and RFC 5322 spell them.
		Fields: []reportmail.Field{{Name: "Message-ID", Value: "<" + rep.ReportID + ">"},
			{Name: "TLS-Report-Domain", Value: w.Domain}, {Name: "TLS-Report-Submitter", Value: sub.Hostname}},
		Subtype: "report", Params: map[string]string{"report-type": "tlsrpt"}, Boundary: p.Boundary,
		Text: fmt.Sprintf("This is an aggregate TLS report (RFC 8460) from %s\r\nfor %s, %s to %s.\r\n",
			sub.Hostname, w.Domain, rep.DateRange.Start.UTC().Format(time.RFC3339), rep.DateRange.End.UTC().Format(time.RFC3339)),
		AttachmentType: "application/tlsrpt+gzip", FileName: FileName(w, sub.Hostname), Attachment: gz,
	})
	if err != nil {
		return nil, fmt.Errorf("tlsrpt: %w", err)
	}
	return msg, nil
}
