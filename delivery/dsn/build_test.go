package dsn

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/internal/golden"
)

var (
	arrival = time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)
	now     = time.Date(2026, 3, 6, 9, 31, 7, 0, time.FixedZone("", 3600))
)

const original = "Received: from client.a.test by mta.a.test\n" +
	"Message-ID: <orig-1@a.test>\n" +
	"From: Alice <alice@a.test>\n" +
	"To: bob@b.test, carol@b.test\n" +
	"Subject: Quarterly report\n" +
	"\n" +
	"The body must not come back.\n"

func failedParams() Params {
	return Params{
		ReportingMTA: "mta.a.test",
		From:         "MAILER-DAEMON@mta.a.test",
		To:           "alice@a.test",
		MessageID:    "<dsn-20260306-0001@mta.a.test>",
		EnvelopeID:   "QQ314159",
		Arrival:      arrival,
		Now:          now,
		Recipients: []Recipient{
			{
				Addr: "bob@b.test", Action: ActionFailed, Status: "5.1.1", RemoteMTA: "mx1.b.test",
				Diagnostic:  "smtp; 550 5.1.1 The email account that you tried to reach does not exist. Please try\n double-checking the recipient's email address for typos or unnecessary spaces.",
				LastAttempt: now.Add(-time.Minute), Category: "bad-mailbox",
			},
			{
				Addr: "carol@b.test", OriginalAddr: "Carol@B.test", Action: ActionFailed, Status: "4.4.7",
				RemoteMTA: "mx2.b.test", Diagnostic: "421 4.7.0 Try again later", Category: "expired",
			},
		},
		OriginalHeaders: []byte(original),
	}
}

func delayedParams() Params {
	return Params{
		ReportingMTA: "mta.a.test",
		From:         "MAILER-DAEMON@mta.a.test",
		To:           "<alice@a.test>",
		MessageID:    "dsn-20260306-0002@mta.a.test",
		Arrival:      arrival,
		Now:          now,
		Recipients: []Recipient{{
			Addr: "dave@c.test", Action: ActionDelayed, Status: "4.7.1", RemoteMTA: "mx.c.test",
			Diagnostic:     "smtp; 451 4.7.1 Greylisted, please try again later",
			WillRetryUntil: arrival.Add(5 * 24 * time.Hour),
		}},
		Reason:          "Your message has been delayed by greylisting at the recipient's provider.\nNo action is needed.",
		OriginalHeaders: []byte(original),
	}
}

func utf8Params() Params {
	p := failedParams()
	p.MessageID = "dsn-utf8@mta.a.test"
	p.Recipients = []Recipient{{Addr: "jürgen@b.test", Action: ActionFailed, Status: "5.1.1", Diagnostic: "smtp; 550 5.1.1 Unbekannter Empfänger"}}
	p.Reason = "Ihre Nachricht konnte nicht zugestellt werden."
	p.OriginalHeaders = nil
	return p
}

// deliveredParams is a success report asked for by NOTIFY=SUCCESS, with
// the ENVID and ORCPT the client gave (RFC 3461 §4).
func deliveredParams() Params {
	return Params{
		ReportingMTA: "mta.a.test",
		From:         "MAILER-DAEMON@mta.a.test",
		To:           "alice@a.test",
		MessageID:    "dsn-20260306-0003@mta.a.test",
		EnvelopeID:   "QQ314159",
		Arrival:      arrival,
		Now:          now,
		Recipients: []Recipient{{
			Addr: "bob@b.test", OriginalAddr: "Bob@B.test", Action: ActionDelivered, Status: "2.0.0",
			RemoteMTA: "mx1.b.test", Diagnostic: "smtp; 250 2.0.0 Ok: queued as 4F2",
			LastAttempt: now,
		}},
		OriginalHeaders: []byte(original),
	}
}

// failedFullParams is a failure with RET=FULL: the whole message comes
// back as message/rfc822.
func failedFullParams() Params {
	p := failedParams()
	p.MessageID = "dsn-20260306-0004@mta.a.test"
	p.Recipients = p.Recipients[:1]
	p.Full = true
	return p
}

func TestBuildGolden(t *testing.T) {
	tests := []struct {
		name string
		p    Params
	}{
		{"failed", failedParams()},
		{"delayed", delayedParams()},
		{"utf8", utf8Params()},
		{"delivered", deliveredParams()},
		{"failed-full", failedFullParams()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Build(tt.p)
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, "../../tests/golden/dsn/"+tt.name+".txt", got)
			checkWellFormed(t, got)
			again, _ := Build(tt.p)
			if !bytes.Equal(got, again) {
				t.Error("same params, different output")
			}
		})
	}
}

// checkWellFormed parses the message back: CRLF only, RFC 5322 headers,
// a multipart/report with the right parts.
func checkWellFormed(t *testing.T, msg []byte) {
	t.Helper()
	if bytes.Contains(bytes.ReplaceAll(msg, []byte("\r\n"), nil), []byte("\n")) || bytes.Contains(bytes.ReplaceAll(msg, []byte("\r\n"), nil), []byte("\r")) {
		t.Error("bare CR or LF in output")
	}
	for _, l := range strings.Split(string(msg), "\r\n") {
		if len(l) > 998 {
			t.Errorf("line longer than 998: %q", l[:60])
		}
	}
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get("Auto-Submitted") != "auto-replied" {
		t.Error("no Auto-Submitted: auto-replied")
	}
	if _, err := m.Header.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || !strings.HasSuffix(params["report-type"], "delivery-status") {
		t.Fatalf("Content-Type %q: %v", m.Header.Get("Content-Type"), err)
	}
	r := multipart.NewReader(m.Body, params["boundary"])
	var types []string
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		types = append(types, ct)
		body, _ := io.ReadAll(p)
		if strings.HasSuffix(ct, "delivery-status") {
			// RFC 3464 §2.1: per-message fields, then per-recipient blocks.
			blocks := strings.Split(strings.TrimRight(string(body), "\r\n"), "\r\n\r\n")
			if !strings.HasPrefix(blocks[0], "Reporting-MTA: dns; ") || len(blocks) < 2 {
				t.Errorf("delivery-status blocks %q", blocks)
			}
		}
		if ct == "text/rfc822-headers" && strings.Contains(string(body), "must not come back") {
			t.Error("original body returned")
		}
		if ct == "message/rfc822" && !strings.Contains(string(body), "must not come back") {
			t.Error("RET=FULL: the original body is not returned")
		}
	}
	if len(types) < 2 || types[0] != "text/plain" || !strings.HasSuffix(types[1], "delivery-status") {
		t.Errorf("parts %v", types)
	}
}

func TestBuildRejects(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Params)
		want   string
	}{
		{"null sender", func(p *Params) { p.To = "" }, "RFC 5321 §4.5.5"},
		{"bounce to a bounce", func(p *Params) { p.To = "MAILER-DAEMON@x.test" }, "RFC 5321 §4.5.5"},
		{"no recipients", func(p *Params) { p.Recipients = nil }, "no recipients"},
		{"bad action", func(p *Params) { p.Recipients[0].Action = "bounced" }, "unknown action"},
		{"bad status", func(p *Params) { p.Recipients[0].Status = "550" }, "RFC 3463"},
		{"header injection", func(p *Params) { p.To = "a@b.test\r\nBcc: x@y.test" }, "line break"},
		{"recipient injection", func(p *Params) { p.Recipients[0].Addr = "a@b\nX: y" }, "line break"},
		{"no clock", func(p *Params) { p.Now = time.Time{} }, "Now is zero"},
	}
	for _, tt := range tests {
		p := failedParams()
		tt.change(&p)
		if _, err := Build(p); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestNeverBounce(t *testing.T) {
	tests := []struct {
		sender string
		want   bool
	}{
		{"", true},
		{"<>", true},
		{" <> ", true},
		{"MAILER-DAEMON@mx.test", true},
		{"mailer-daemon@mx.test", true},
		{"<MAILER-DAEMON@mx.test>", true},
		{"MAILER-DAEMON", true},
		{"alice@a.test", false},
		{"postmaster@a.test", false}, // RFC 5321 §4.5.1: postmaster must get mail
		{"mailer-daemon-admin@a.test", false},
		{"bounces+123@a.test", false},
	}
	for _, tt := range tests {
		if got := NeverBounce(tt.sender); got != tt.want {
			t.Errorf("NeverBounce(%q) = %v", tt.sender, got)
		}
	}
}

func TestHeaderSection(t *testing.T) {
	tests := []struct{ in, want string }{
		{"A: 1\nB: 2\n\nbody\n", "A: 1\r\nB: 2\r\n"},
		{"A: 1\r\n\r\nbody", "A: 1\r\n"},
		{"A: 1\r\n folded\r\n", "A: 1\r\n folded\r\n"},
		{"A: 1", "A: 1\r\n"},
		{"", ""},
		// RFC 5322 §2.1: a line that is not a field starts the body, which
		// is not returned even without an empty line before it.
		{"A: 1\r\nnot a field\r\nB: 2\r\n\r\nbody\r\n", "A: 1\r\n"},
		{"sUbJeCt :  as sent \r\n\r\n", "sUbJeCt :  as sent \r\n"},
		{" continuation of nothing\r\nA: 1\r\n", ""},
	}
	for _, tt := range tests {
		if got := string(headerSection([]byte(tt.in))); got != tt.want {
			t.Errorf("headerSection(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFold(t *testing.T) {
	long := "Diagnostic-Code: smtp; " + strings.Repeat("word ", 40)
	for _, l := range strings.Split(fold(long), "\r\n") {
		if len(l) > 78 {
			t.Errorf("folded line %d long: %q", len(l), l)
		}
	}
	if strings.ReplaceAll(fold(long), "\r\n\t", " ") != long {
		t.Error("folding changed the content")
	}
	if fold("Short: x") != "Short: x" {
		t.Error("short line folded")
	}
}

func TestRandomMessageID(t *testing.T) {
	p := failedParams()
	p.MessageID = ""
	a, err := Build(p)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Build(p)
	if bytes.Equal(a, b) {
		t.Error("two notifications without MessageID are identical")
	}
	m, _ := mail.ReadMessage(bytes.NewReader(a))
	if id := m.Header.Get("Message-ID"); !strings.HasSuffix(id, "@mta.a.test>") {
		t.Errorf("Message-ID %q", id)
	}
}
