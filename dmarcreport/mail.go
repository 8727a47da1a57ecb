package dmarcreport

import (
	"errors"
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

// BuildMail is the report as a mail message (RFC 7489 §7.2.1.1): a
// multipart/mixed message whose first part says what the message is to
// a human and whose second is the gzipped XML, application/gzip, named
// per §7.2.1.1; the Subject names the policy domain, the submitter and
// the report id.
func BuildMail(rep *Feedback, w *Window, sub Submitter, p MailParams) ([]byte, error) {
	if sub.Hostname == "" {
		return nil, errors.New("dmarcreport: report mail: no hostname")
	}
	gz, err := rep.Gzip()
	if err != nil {
		return nil, err
	}
	id := rep.Metadata.ReportID
	msg, err := reportmail.Build(reportmail.Mail{
		From: p.From, To: p.To, Date: p.Date,
		// RFC 7489 §7.2.1.1: "Report Domain: <domain> Submitter: <domain>
		// Report-ID: <msg-id>", the id in angle brackets (RFC 5322
		// msg-id).
		Subject: fmt.Sprintf("Report Domain: %s Submitter: %s Report-ID: <%s>", w.Domain, sub.Hostname, id),
		// Every try of the report has the same id, so a collector can
		// tell a repeat.
		Fields:  []reportmail.Field{{Name: "Message-ID", Value: "<" + id + ">"}},
		Subtype: "mixed", Boundary: p.Boundary,
		Text: fmt.Sprintf("This is a DMARC aggregate report (RFC 7489) from %s\r\nfor %s, %s to %s.\r\n", sub.Hostname, w.Domain,
			w.Start.UTC().Format(time.RFC3339), w.End.UTC().Format(time.RFC3339)),
		AttachmentType: "application/gzip", FileName: FileName(w, sub.Hostname), Attachment: gz,
	})
	if err != nil {
		return nil, fmt.Errorf("dmarcreport: %w", err)
	}
	return msg, nil
}
