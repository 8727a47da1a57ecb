package reportmail

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
)

func sample() Mail {
	return Mail{
		From: "reports@mta.test", To: "agg@x.test", Date: time.Date(2026, 12, 2, 0, 5, 0, 0, time.UTC),
		Subject: "Report Domain: x.test Submitter: mta.test Report-ID: <r1@mta.test>",
		Fields:  []Field{{Name: "Message-ID", Value: "<r1@mta.test>"}, {Name: "TLS-Report-Domain", Value: "x.test"}},
		Subtype: "report", Params: map[string]string{"report-type": "tlsrpt"}, Boundary: "b0und",
		Text:           "A report.\r\n",
		AttachmentType: "application/gzip", FileName: "mta.test!x.test!1!2.xml.gz", Attachment: []byte("\x1f\x8b binary \x00\xff"),
	}
}

// TestBuild: the mail reads back as a multipart of the given subtype,
// fields as spelled, the text part and the attachment byte for byte.
func TestBuild(t *testing.T) {
	raw, err := Build(sample())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\r\nMessage-ID: <r1@mta.test>\r\n", "\r\nTLS-Report-Domain: x.test\r\n",
		"Content-Type: multipart/report; boundary=b0und; report-type=tlsrpt\r\n"} {
		if !bytes.Contains(raw, []byte(want)) {
			t.Errorf("no %q in\n%s", want, raw)
		}
	}
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	mr := e.MultipartReader()
	if mr == nil {
		t.Fatal("not multipart")
	}
	var parts [][]byte
	var names []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p.Body)
		parts = append(parts, b)
		_, params, _ := p.Header.ContentDisposition()
		names = append(names, params["filename"])
	}
	if len(parts) != 2 || string(parts[0]) != "A report.\r\n" || !bytes.Equal(parts[1], sample().Attachment) || names[1] != sample().FileName {
		t.Errorf("parts %q, names %q", parts, names)
	}
}

// TestBuildRefusesLineBreaks: no value can add a header field.
func TestBuildRefusesLineBreaks(t *testing.T) {
	for name, change := range map[string]func(*Mail){
		"subject":     func(m *Mail) { m.Subject = "x\r\nBcc: victim@example.com" },
		"field value": func(m *Mail) { m.Fields[1].Value = "x.test\nBcc: victim@example.com" },
		"field name":  func(m *Mail) { m.Fields[0].Name = "X\r\nBcc" },
		"file name":   func(m *Mail) { m.FileName = "a\r\nb.gz" },
	} {
		m := sample()
		change(&m)
		if raw, err := Build(m); err == nil || strings.Contains(string(raw), "Bcc:") {
			t.Errorf("%s: a line break was written (%v)", name, err)
		}
	}
	m := sample()
	m.To = ""
	if _, err := Build(m); err == nil {
		t.Error("a mail without To was built")
	}
}
