package admin

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http/httptest"
	"net/mail"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/cuemta/cuemta/internal/msgheader"
)

// FuzzInjectRequest decodes an arbitrary /api/inject/v1 body as the
// handler does (decodeJSON, then prepareInject: validation, content
// parsing, MIME building). Invariants: nothing panics; a request that is
// accepted yields, for every recipient, a message that has CRLF line
// endings only, lines of at most 998 octets, parses with net/mail with
// the recipient in To (built content) and whose MIME tree parses down to
// its leaves, each leaf's transfer encoding decoding cleanly; the
// text/plain leaf of built content decodes to text_body (line breaks
// normalised to CRLF; a final CRLF may be added).
func FuzzInjectRequest(f *testing.F) {
	for _, s := range []string{
		`{"envelope_sender":"a@example.org","recipients":[{"email":"b@example.com","name":"Bob"}],"content":"Subject: hi\n\nbody\n"}`,
		`{"envelope_sender":"a@example.org","recipients":[{"email":"b@example.com"}],"content":{"subject":"Héllo","from":{"email":"a@example.org","name":"Älice"},"text_body":"hi\nthere","html_body":"<p>hi</p>"}}`,
		`{"envelope_sender":"a@example.org","recipients":[{"email":"b@example.com"},{"email":"c@example.com","name":"C, D"}],"content":{"text_body":"` + strings.Repeat("long line ", 20) + `","reply_to":{"email":"r@example.org"},"headers":{"X-Campaign":"q3","cc":"x@example.com, Y <y@example.com>","message-id":"<m@x>"},"attachments":[{"data":"aGVsbG8=","base64":true,"content_type":"text/plain","file_name":"a.txt"},{"data":"<svg/>","content_type":"image/svg+xml","content_id":"logo"}]}}`,
		`{"envelope_sender":"a@example.org","recipients":[{"email":"b@example.com"}],"content":{"amp_html_body":"<html amp4email>","text_body":"ü\r\nÿ\r\r\n\u0000"}}`,
		`{"envelope_sender":"","recipients":[],"content":null}`,
		`{"envelope_sender":"a@example.org","recipients":[{"email":"b@example.com"}],"content":{"headers":{"Content-Type":"x"}}}`,
		`{"envelope_sender":"a@example.org","recipients":[{"email":"b@example.com"}],"content":"no header"} trailing`,
		`{"envelope_sender":"a@example.org","recipients":[{"email":"b@example.com"}],"content":{"text_body":"x","attachments":[{"data":"not base64!","base64":true}]}}`,
		`{"envelope_sender":"a@example.org","recipients":[{"email":"b@example.com","notify":["success","delay"],"orcpt":"rfc822;B@x"},{"email":"c@example.com","notify":["never"]}],"dsn":{"ret":"hdrs","envid":"e 1+x","notify":["failure"]},"content":"Subject: hi\n\nbody\n"}`,
		`[1,2,3]`,
		``,
	} {
		f.Add([]byte(s))
	}
	s := &Server{opts: options{
		now:       func() time.Time { return testNow },
		messageID: func() string { return "<fuzz.1@mta.example>" },
	}}
	f.Fuzz(func(t *testing.T, body []byte) {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/api/inject/v1", bytes.NewReader(body))
		var req injectRequest
		if e := decodeJSON(w, r, 1<<20, 0, &req); e != nil {
			if e.status < 400 || e.status > 499 || e.msg == "" {
				t.Fatalf("decode error %+v: want a 4xx with a message", e)
			}
			return
		}
		plan, problems := s.prepareInject(&req)
		if len(problems) > 0 {
			for _, p := range problems {
				if p == "" {
					t.Fatalf("empty problem in %q", problems)
				}
			}
			return
		}
		if plan == nil {
			t.Fatalf("no problems and no message plan")
		}
		// The DSN parameters are what the spool and the next hop take:
		// RFC 3461's keywords, no control characters.
		dsn, rcptDSN := req.dsnOf(0, len(req.Recipients))
		if strings.ContainsFunc(dsn.Ret+dsn.EnvID, unicode.IsControl) || (dsn.Ret != "" && dsn.Ret != "FULL" && dsn.Ret != "HDRS") {
			t.Fatalf("accepted DSN %+v", dsn)
		}
		for _, d := range rcptDSN {
			for _, k := range d.Notify {
				if k != "NEVER" && k != "SUCCESS" && k != "FAILURE" && k != "DELAY" {
					t.Fatalf("accepted NOTIFY %q", d.Notify)
				}
			}
			if strings.ContainsFunc(d.ORCPT, unicode.IsControl) {
				t.Fatalf("accepted ORCPT %q", d.ORCPT)
			}
		}
		_, obj, _ := parseContent(req.Content)
		if (obj == nil) != (plan.perMessage > 1) {
			t.Fatalf("%d recipients per message for content %q", plan.perMessage, req.Content)
		}
		for i := range min(len(req.Recipients), 3) {
			msg := plan.body(i)
			fzCheckMessage(t, msg)
			if obj == nil {
				continue
			}
			m, _ := mail.ReadMessage(bytes.NewReader(msg))
			to, err := mail.ParseAddress(m.Header.Get("To"))
			if err != nil || to.Address != req.Recipients[i].Email {
				t.Fatalf("To %q (%v), want %q", m.Header.Get("To"), err, req.Recipients[i].Email)
			}
			if obj.TextBody != "" {
				got, ok := fzFindText(t, fzMailHeader(m.Header), m.Body, "text/plain")
				if !ok {
					t.Fatalf("no text/plain part for text_body %q in\n%q", obj.TextBody, msg)
				}
				// message() ends the message with CRLF when the last part
				// does not: a lone text part may gain one.
				crlf := func(s string) string { return string(msgheader.CRLF([]byte(s))) }
				if want := crlf(obj.TextBody); crlf(got) != want && crlf(got) != want+"\r\n" {
					t.Fatalf("text/plain part decodes to %q, want %q", got, obj.TextBody)
				}
			}
		}
	})
}

// fzCheckMessage: CRLF only, short lines, net/mail and the MIME tree parse.
func fzCheckMessage(t *testing.T, msg []byte) {
	t.Helper()
	if bytes.Count(msg, []byte("\n")) != bytes.Count(msg, []byte("\r\n")) || bytes.Count(msg, []byte("\r")) != bytes.Count(msg, []byte("\r\n")) {
		t.Fatalf("bare CR or LF in message:\n%q", msg)
	}
	if !bytes.HasSuffix(msg, []byte("\r\n")) {
		t.Fatalf("message does not end in CRLF: %q", msg)
	}
	for _, l := range bytes.Split(msg, []byte("\r\n")) {
		if len(l) > 998 { // RFC 5322 §2.1.1
			t.Fatalf("line of %d octets:\n%q", len(l), l)
		}
	}
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("message does not parse: %v\n%q", err, msg)
	}
	fzWalk(t, fzMailHeader(m.Header), m.Body, 0, msg)
}

type fzHeader interface{ Get(string) string }

func fzMailHeader(h mail.Header) fzHeader { return h }

// walk parses a MIME entity down to its leaves and decodes each leaf.
func fzWalk(t *testing.T, h fzHeader, body io.Reader, depth int, msg []byte) {
	t.Helper()
	ct := h.Get("Content-Type")
	if ct == "" {
		io.Copy(io.Discard, body)
		return
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		t.Fatalf("Content-Type %q: %v\n%q", ct, err, msg)
	}
	if strings.HasPrefix(mt, "multipart/") {
		if depth > 4 {
			t.Fatalf("MIME tree deeper than the builder makes")
		}
		mr := multipart.NewReader(body, params["boundary"])
		n := 0
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s part %d: %v\n%q", mt, n, err, msg)
			}
			fzWalk(t, p.Header, p, depth+1, msg)
			n++
		}
		if n == 0 {
			t.Fatalf("empty %s", mt)
		}
		return
	}
	if _, err := io.ReadAll(fzDecoder(h.Get("Content-Transfer-Encoding"), body)); err != nil {
		t.Fatalf("%s (%s) does not decode: %v\n%q", mt, h.Get("Content-Transfer-Encoding"), err, msg)
	}
}

func fzDecoder(cte string, r io.Reader) io.Reader {
	switch strings.ToLower(cte) {
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, &lineStripper{r: r})
	case "quoted-printable":
		return quotedprintable.NewReader(r)
	}
	return r
}

// findText returns the decoded first leaf of type want.
func fzFindText(t *testing.T, h fzHeader, body io.Reader, want string) (string, bool) {
	t.Helper()
	mt, params, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				return "", false
			}
			if s, ok := fzFindText(t, p.Header, p, want); ok {
				return s, true
			}
		}
	}
	if mt != want || h.Get("Content-Disposition") != "" {
		return "", false
	}
	b, err := io.ReadAll(fzDecoder(h.Get("Content-Transfer-Encoding"), body))
	if err != nil {
		t.Fatalf("decode %s: %v", want, err)
	}
	return string(b), true
}
