package dmarcreport

import (
	"bytes"
	"errors"
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

// BuildMail is the report as a mail message (RFC 7489 §7.2.1.1): a
// multipart/mixed message whose first part says what the message is to
// a human and whose second is the gzipped XML, application/gzip, named
// per §7.2.1.1; the Subject names the policy domain, the submitter and
// the report id.
func BuildMail(rep *Feedback, w *Window, sub Submitter, p MailParams) ([]byte, error) {
	id := rep.Metadata.ReportID
	if strings.ContainsAny(w.Domain+sub.Hostname+id, "\r\n") {
		return nil, fmt.Errorf("dmarcreport: report mail: a line break in %q, %q or %q", w.Domain, sub.Hostname, id)
	}
	if sub.Hostname == "" || p.From == "" || p.To == "" {
		return nil, errors.New("dmarcreport: report mail: hostname, From and To are required")
	}
	gz, err := rep.Gzip()
	if err != nil {
		return nil, err
	}
	var h mail.Header
	h.SetDate(p.Date)
	h.SetAddressList("From", []*mail.Address{{Address: p.From}})
	h.SetAddressList("To", []*mail.Address{{Address: p.To}})
	// RFC 7489 §7.2.1.1: "Report Domain: <domain> Submitter: <domain>
	// Report-ID: <msg-id>", the id in angle brackets (RFC 5322 msg-id).
	h.SetSubject(fmt.Sprintf("Report Domain: %s Submitter: %s Report-ID: <%s>", w.Domain, sub.Hostname, id))
	// AddRaw keeps the name as RFC 5322 spells it (Set would write
	// Message-Id). Every try of the report has the same id, so a
	// collector can tell a repeat.
	h.AddRaw([]byte("Message-ID: <" + id + ">\r\n"))
	params := map[string]string{}
	if p.Boundary != "" {
		params["boundary"] = p.Boundary
	}
	h.SetContentType("multipart/mixed", params)

	var buf bytes.Buffer
	mw, err := message.CreateWriter(&buf, h.Header)
	if err != nil {
		return nil, fmt.Errorf("dmarcreport: report mail: %w", err)
	}
	var th message.Header
	th.SetContentType("text/plain", map[string]string{"charset": "us-ascii"})
	th.Set("Content-Transfer-Encoding", "7bit")
	tw, err := mw.CreatePart(th)
	if err != nil {
		return nil, fmt.Errorf("dmarcreport: report mail: %w", err)
	}
	fmt.Fprintf(tw, "This is a DMARC aggregate report (RFC 7489) from %s\r\nfor %s, %s to %s.\r\n", sub.Hostname, w.Domain,
		w.Start.UTC().Format(time.RFC3339), w.End.UTC().Format(time.RFC3339))
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("dmarcreport: report mail: %w", err)
	}
	var ah message.Header
	name := FileName(w, sub.Hostname)
	ah.SetContentType("application/gzip", map[string]string{"name": name})
	ah.SetContentDisposition("attachment", map[string]string{"filename": name})
	ah.Set("Content-Transfer-Encoding", "base64")
	aw, err := mw.CreatePart(ah)
	if err != nil {
		return nil, fmt.Errorf("dmarcreport: report mail: %w", err)
	}
	if _, err := aw.Write(gz); err != nil {
		return nil, fmt.Errorf("dmarcreport: report mail: %w", err)
	}
	if err := aw.Close(); err != nil {
		return nil, fmt.Errorf("dmarcreport: report mail: %w", err)
	}
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("dmarcreport: report mail: %w", err)
	}
	return buf.Bytes(), nil
}
