// Package reportmail writes the mail that carries a report to another
// domain (TLS reports, RFC 8460 §5.3; DMARC aggregate reports, RFC 7489
// §7.2.1.1): a multipart message whose first part tells a human what it
// is and whose second is the report, base64, as a named attachment.
//
// Invariant: no value given to it can add a header field: a line break
// in the Subject or in any field's value is refused.
package reportmail

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
)

// Field is a header field written as given: names as the RFCs spell them
// (message.Header.Set would write Message-Id), values that need no
// encoding (domain names, ids).
type Field struct{ Name, Value string }

// Mail is a report mail.
type Mail struct {
	From, To string
	Date     time.Time
	Subject  string
	Fields   []Field
	// Subtype is the multipart subtype ("report", "mixed") and Params
	// its parameters besides the boundary.
	Subtype string
	Params  map[string]string
	// Boundary is the multipart boundary; "" makes a random one (tests
	// fix it for a golden file).
	Boundary string
	// Text is the human-readable first part, US-ASCII, CRLF line ends.
	Text string
	// AttachmentType and FileName describe the report part.
	AttachmentType, FileName string
	Attachment               []byte
}

// Build is m as a message.
func Build(m Mail) ([]byte, error) {
	if m.From == "" || m.To == "" {
		return nil, errors.New("report mail: From and To are required")
	}
	values := []string{m.Subject, m.FileName}
	for _, f := range m.Fields {
		values = append(values, f.Name, f.Value)
	}
	for _, v := range values {
		if strings.ContainsAny(v, "\r\n") {
			return nil, fmt.Errorf("report mail: a line break in %q", v)
		}
	}
	var h mail.Header
	h.SetDate(m.Date)
	h.SetAddressList("From", []*mail.Address{{Address: m.From}})
	h.SetAddressList("To", []*mail.Address{{Address: m.To}})
	h.SetSubject(m.Subject)
	for _, f := range m.Fields {
		h.AddRaw([]byte(f.Name + ": " + f.Value + "\r\n"))
	}
	params := map[string]string{}
	for k, v := range m.Params {
		params[k] = v
	}
	if m.Boundary != "" {
		params["boundary"] = m.Boundary
	}
	h.SetContentType("multipart/"+m.Subtype, params)

	var buf bytes.Buffer
	mw, err := message.CreateWriter(&buf, h.Header)
	if err != nil {
		return nil, fmt.Errorf("report mail: %w", err)
	}
	var th message.Header
	th.SetContentType("text/plain", map[string]string{"charset": "us-ascii"})
	th.Set("Content-Transfer-Encoding", "7bit")
	if err := writePart(mw, th, []byte(m.Text)); err != nil {
		return nil, err
	}
	var ah message.Header
	ah.SetContentType(m.AttachmentType, map[string]string{"name": m.FileName})
	ah.SetContentDisposition("attachment", map[string]string{"filename": m.FileName})
	ah.Set("Content-Transfer-Encoding", "base64")
	if err := writePart(mw, ah, m.Attachment); err != nil {
		return nil, err
	}
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("report mail: %w", err)
	}
	return buf.Bytes(), nil
}

// writePart writes one part; go-message applies its
// Content-Transfer-Encoding.
func writePart(mw *message.Writer, h message.Header, body []byte) error {
	w, err := mw.CreatePart(h)
	if err != nil {
		return fmt.Errorf("report mail: %w", err)
	}
	if _, err := w.Write(body); err != nil {
		return fmt.Errorf("report mail: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("report mail: %w", err)
	}
	return nil
}
