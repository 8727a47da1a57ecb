package dsn

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

// FuzzBuild builds a DSN from fuzzed recipients, diagnostics, reason and
// original headers. Invariants: Build never panics; when it accepts the
// Params, the output has CRLF line endings only and parses (net/mail,
// mime/multipart) as a multipart/report whose report-type matches its
// second part's type, with a text/plain first part, a
// message/(global-)delivery-status second part holding one block per
// recipient with its Final-Recipient and Status, and the original header
// section (only) as a third part when there was one.
func FuzzBuild(f *testing.F) {
	f.Add("bob@b.test", "", ActionFailed, "5.1.1", "mx1.b.test",
		"smtp; 550 5.1.1 The email account that you tried to reach does not exist.\n Please try again", "",
		[]byte(original), "alice@a.test", "dsn-1@mta.a.test", int64(0))
	f.Add("carol@b.test", "Carol@B.test", ActionDelayed, "4.4.7", "", "421 4.7.0 Try again later", "Custom reason\r\nline two\r\n",
		[]byte("Subject: x\r\n"), "<alice@a.test>", "", int64(3600))
	f.Add("ü@bücher.example", "", ActionFailed, "5.6.7", "mx.b.test", "smtp; 553 5.6.7 adresse non ASCII: ü", "Raison: échec",
		[]byte("Subject: =?utf-8?q?caf=C3=A9?=\n\nbody\n"), "a@a.test", "<x@y>", int64(-1))
	f.Add("x@y", "", ActionDelivered, "2.0.0", "", "", "", []byte(nil), "a@a.test", "id", int64(0))
	f.Add("x@y", "", "bogus", "9.9.9", "", "", "", []byte(nil), "MAILER-DAEMON@a.test", "id\r\n", int64(0))
	f.Add("x@y", "", ActionFailed, "5.0.0", "", "--=_dsn_ boundary in text", "--=_dsn_", []byte("X: --=_dsn_\r\n"), "a@a.test", "", int64(0))
	f.Fuzz(func(t *testing.T, addr, orcpt, action, status, remote, diag, reason string, hdrs []byte, to, msgID string, retry int64) {
		p := Params{
			ReportingMTA: "mta.a.test",
			From:         "MAILER-DAEMON@mta.a.test",
			To:           to,
			MessageID:    msgID,
			EnvelopeID:   "ENV1",
			Arrival:      arrival,
			Now:          now,
			Recipients: []Recipient{
				{Addr: addr, OriginalAddr: orcpt, Action: action, Status: status, RemoteMTA: remote,
					Diagnostic: diag, LastAttempt: now.Add(-time.Minute), WillRetryUntil: now.Add(time.Duration(retry) * time.Second)},
				{Addr: "second@b.test", Action: ActionFailed, Status: "5.1.1", Diagnostic: diag},
			},
			OriginalHeaders: hdrs,
			Reason:          reason,
		}
		out, err := Build(p)
		if err != nil {
			return
		}
		if bytes.Count(out, []byte("\n")) != bytes.Count(out, []byte("\r\n")) || bytes.Count(out, []byte("\r")) != bytes.Count(out, []byte("\r\n")) {
			t.Fatalf("bare CR or LF in the DSN:\n%q", out)
		}
		m, err := mail.ReadMessage(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("DSN does not parse as a message: %v\n%q", err, out)
		}
		mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
		if err != nil || mt != "multipart/report" || params["boundary"] == "" {
			t.Fatalf("Content-Type %q: %v", m.Header.Get("Content-Type"), err)
		}
		rt := params["report-type"]
		if rt != "delivery-status" && rt != "global-delivery-status" {
			t.Fatalf("report-type %q", rt)
		}
		if _, err := mail.ParseAddress(m.Header.Get("From")); err != nil {
			t.Fatalf("From %q does not parse: %v", m.Header.Get("From"), err)
		}
		mr := multipart.NewReader(m.Body, params["boundary"])
		var parts []textproto.MIMEHeader
		var bodies [][]byte
		for {
			part, err := mr.NextRawPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("part %d: %v\n%q", len(parts), err, out)
			}
			b, err := io.ReadAll(part)
			if err != nil {
				t.Fatalf("part %d body: %v\n%q", len(parts), err, out)
			}
			parts = append(parts, part.Header)
			bodies = append(bodies, b)
		}
		wantParts := 2
		if len(headerSection(hdrs)) > 0 {
			wantParts = 3
		}
		if len(parts) != wantParts {
			t.Fatalf("%d parts, want %d:\n%q", len(parts), wantParts, out)
		}
		if ct, _, _ := mime.ParseMediaType(parts[0].Get("Content-Type")); ct != "text/plain" {
			t.Fatalf("first part is %q", parts[0].Get("Content-Type"))
		}
		if ct := parts[1].Get("Content-Type"); ct != "message/"+rt {
			t.Fatalf("second part is %q, report-type %q", ct, rt)
		}
		// RFC 3464 §2.1: per-message fields, then a block per recipient.
		blocks := strings.Split(strings.TrimSuffix(string(bodies[1]), "\r\n"), "\r\n\r\n")
		if len(blocks) != 1+len(p.Recipients) {
			t.Fatalf("%d blocks in the status part, want %d:\n%q", len(blocks), 1+len(p.Recipients), bodies[1])
		}
		for i, blk := range blocks[1:] {
			h, err := textproto.NewReader(bufio.NewReader(strings.NewReader(blk + "\r\n\r\n"))).ReadMIMEHeader()
			if err != nil {
				t.Fatalf("recipient block %d: %v\n%q", i, err, blk)
			}
			if h.Get("Status") != p.Recipients[i].Status || h.Get("Action") != p.Recipients[i].Action {
				t.Fatalf("recipient block %d has Status %q Action %q, want %q %q", i, h.Get("Status"), h.Get("Action"), p.Recipients[i].Status, p.Recipients[i].Action)
			}
			// Compare with whitespace collapsed: folding may change it.
			fr := strings.Join(strings.Fields(h.Get("Final-Recipient")), " ")
			if wantAddr := strings.Join(strings.Fields(p.Recipients[i].Addr), " "); !strings.HasSuffix(fr, "; "+wantAddr) && wantAddr != "" {
				t.Fatalf("recipient block %d: Final-Recipient %q, want %q", i, fr, p.Recipients[i].Addr)
			}
		}
		if wantParts == 3 {
			if got := bodies[2]; bytes.Contains(got, []byte("\r\n\r\n")) || !bytes.HasSuffix(got, []byte("\r\n")) {
				t.Fatalf("headers part is not a header section: %q", got)
			}
		}
	})
}
