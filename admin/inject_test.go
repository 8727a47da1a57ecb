package admin

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"time"

	"net/http"
	"net/mail"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cuemta/cuemta/internal/dsnparams"
	"github.com/cuemta/cuemta/internal/golden"
	"github.com/cuemta/cuemta/smtpreply"
)

const goldenDir = "../tests/golden/inject"

// checkMessage compares a built message with a golden file (CRLF shown as
// LF there) after checking that every line ends with CRLF.
func checkMessage(t *testing.T, name string, msg []byte) {
	t.Helper()
	if bytes.Contains(bytes.ReplaceAll(msg, []byte("\r\n"), nil), []byte("\n")) ||
		bytes.Contains(bytes.ReplaceAll(msg, []byte("\r\n"), nil), []byte("\r")) {
		t.Errorf("%s: message has a bare LF or CR", name)
	}
	for i, line := range strings.Split(string(msg), "\r\n") {
		if len(line) > 998 {
			t.Errorf("%s: line %d is %d bytes long", name, i+1, len(line))
		}
	}
	golden.Check(t, filepath.Join(goldenDir, name), bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n")))
}

func TestInjectRawContent(t *testing.T) {
	h := newHarness(t)
	r := h.do("POST", "/api/inject/v1", `{
		"envelope_sender": "noreply@example.com",
		"content": "Subject: hello\nFrom: noreply@example.com\n\nHello there",
		"recipients": [{"email": "recipient@example.com"}, {"email": "other@example.net", "name": "Other"}]
	}`)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	m := r.json(t)
	if m["success_count"] != 2.0 || m["fail_count"] != 0.0 || len(m["failed_recipients"].([]any)) != 0 || len(m["errors"].([]any)) != 0 {
		t.Errorf("reply %s", r.body)
	}
	if ids := m["ids"].([]any); len(ids) != 1 || ids[0] != "id-recipient@example.com" {
		t.Errorf("ids %v", ids)
	}
	if _, ok := m["error"]; ok {
		t.Errorf("error field on success: %s", r.body)
	}
	// The content is the same for every recipient: one message carries
	// them all, so the body is stored once. It has neither Date nor
	// Message-ID: it gets both.
	msgs := h.sortedMessages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages enqueued, want one for both recipients", len(msgs))
	}
	want := "Date: Sat, 14 Mar 2026 15:09:26 +0100\r\nMessage-ID: <test.1@mta.example>\r\n" +
		"Subject: hello\r\nFrom: noreply@example.com\r\n\r\nHello there\r\n"
	if msg := msgs[0]; string(msg.Body) != want || msg.From != "noreply@example.com" ||
		!slices.Equal(msg.Recipients, []string{"recipient@example.com", "other@example.net"}) || msg.ClientIP != "127.0.0.1" {
		t.Errorf("message %+v body %q", msg, msg.Body)
	}
	a := h.Actions()
	if len(a) != 1 || a[0].Action != ActionInject || a[0].Injected != 2 || a[0].Failed != 0 || a[0].Err != nil {
		t.Errorf("actions %+v", a)
	}
}

// TestInjectRawContentKeepsDateAndMessageID checks that fields the
// content has are neither duplicated nor replaced, and that one missing
// field is added alone.
func TestInjectRawContentKeepsDateAndMessageID(t *testing.T) {
	for _, c := range []struct{ content, want string }{
		{"Date: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <own@example.com>\nSubject: s\n\nb",
			"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <own@example.com>\r\nSubject: s\r\n\r\nb\r\n"},
		{"message-id: <own@example.com>\nSubject: s\n\nb",
			"Date: Sat, 14 Mar 2026 15:09:26 +0100\r\nmessage-id: <own@example.com>\r\nSubject: s\r\n\r\nb\r\n"},
		{"DATE: Mon, 1 Jan 2024 00:00:00 +0000\nSubject: s\n\nb",
			"Message-ID: <test.1@mta.example>\r\nDATE: Mon, 1 Jan 2024 00:00:00 +0000\r\nSubject: s\r\n\r\nb\r\n"},
	} {
		h := newHarness(t)
		r := h.do("POST", "/api/inject/v1", `{"envelope_sender": "a@example.com", "content": `+
			strconv.Quote(c.content)+`, "recipients": [{"email": "r@example.com"}]}`)
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if msgs := h.sortedMessages(); len(msgs) != 1 || string(msgs[0].Body) != c.want {
			t.Errorf("content %q: enqueued %q, want %q", c.content, msgs[0].Body, c.want)
		}
	}
}

// sortedMessages are the enqueued messages in recipient order (workers
// enqueue concurrently).
func (h *harness) sortedMessages() []*Message {
	h.fake.mu.Lock()
	defer h.fake.mu.Unlock()
	msgs := slices.Clone(h.fake.msgs)
	slices.SortFunc(msgs, func(a, b *Message) int { return strings.Compare(a.Recipients[0], b.Recipients[0]) })
	return msgs
}

func TestInjectKumoExampleIgnoresUnknownFields(t *testing.T) {
	h := newHarness(t)
	r := h.do("POST", "/api/inject/v1", `{
		"envelope_sender": "noreply@example.com",
		"content": "Subject: hello {{ name }}\n\nHello there",
		"recipients": [{"email": "recipient@example.com", "name": "Jo", "substitutions": {"x": 1}, "metadata": {"k": "v"}}],
		"substitutions": {"name": "Jo"},
		"template_dialect": "Jinja",
		"deferred_spool": false,
		"deferred_generation": false,
		"trace_headers": {"received_header": true}
	}`)
	if r.status != 200 || r.json(t)["success_count"] != 1.0 {
		t.Errorf("%d %s", r.status, r.body)
	}
}

func TestInjectExtensionFields(t *testing.T) {
	h := newHarness(t)
	r := h.do("POST", "/api/inject/v1", map[string]any{
		"envelope_sender": "a@example.com", "content": "Subject: x\n\ny",
		"recipients": []map[string]string{{"email": "b@example.com"}},
		"tenant":     "acme", "campaign": "spring",
	})
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if m := h.sortedMessages()[0]; m.Tenant != "acme" || m.Campaign != "spring" {
		t.Errorf("message %+v", m)
	}
}

func TestInjectBuilderGolden(t *testing.T) {
	cases := []struct {
		name    string
		content map[string]any
		rcpt    map[string]string
	}{
		{"simple.eml", map[string]any{
			"subject":   "Your order",
			"text_body": "Thanks for your order.\nIt ships tomorrow.\n",
		}, map[string]string{"email": "bob@example.net"}},
		{"alternative.eml", map[string]any{
			"subject":   "Grüße aus Köln — unser Frühjahrsangebot für Sie, mit einem sehr langen Betreff",
			"from":      map[string]string{"email": "news@example.com", "name": "Müller & Söhne"},
			"reply_to":  map[string]string{"email": "help@example.com", "name": "Help Desk"},
			"text_body": "Hallo Zoë,\n\nunser Angebot: 20 % Rabatt auf alles.\n",
			"html_body": "<html><body><p>Hallo Zoë,</p><p>unser Angebot: <b>20&nbsp;% Rabatt</b> auf alles. Dieser Absatz ist absichtlich sehr lang, damit die Zeile umbrochen werden muss.</p></body></html>",
			"headers": map[string]string{
				"X-Campaign":       "spring-2026",
				"List-Unsubscribe": "<mailto:unsub@example.com?subject=unsubscribe>",
				"Cc":               "Jürgen <j@example.org>",
				"X-Note":           "née café",
			},
		}, map[string]string{"email": "zoe@example.net", "name": "Zoë Ångström"}},
		{"attachments.eml", map[string]any{
			"subject":   "資料をお送りします",
			"from":      map[string]string{"email": "tanaka@example.jp", "name": "田中 太郎"},
			"text_body": "こんにちは。\n資料を添付します。よろしくお願いいたします。\n",
			"html_body": `<p>こんにちは。<img src="cid:logo@example.jp"></p>`,
			"attachments": []map[string]any{
				{"data": base64.StdEncoding.EncodeToString([]byte("\x89PNG fake image bytes")), "base64": true, "content_type": "image/png", "content_id": "logo@example.jp", "file_name": "logo.png"},
				{"data": "col1,col2\n1,2\n", "content_type": "text/csv", "file_name": "Übersicht.csv"},
			},
		}, map[string]string{"email": "yamada@example.jp", "name": "山田 花子"}},
		{"overrides.eml", map[string]any{
			"text_body": strings.Repeat("A long line of ASCII text that certainly exceeds seventy-eight characters. ", 3),
			"headers":   map[string]string{"message-id": "<fixed@example.com>", "Date": "Mon, 02 Jan 2006 15:04:05 -0700", "Subject": "from the headers map"},
		}, map[string]string{"email": "c@example.com"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			r := h.do("POST", "/api/inject/v1", map[string]any{
				"envelope_sender": "bounces@example.com",
				"recipients":      []map[string]string{c.rcpt},
				"content":         c.content,
			})
			if r.status != 200 {
				t.Fatalf("%d %s", r.status, r.body)
			}
			msg := h.sortedMessages()[0]
			checkMessage(t, c.name, msg.Body)
			checkRoundTrip(t, msg.Body, c.content)
		})
	}
}

// checkRoundTrip parses a built message as a mail client would and checks
// that the subject and bodies decode to what was sent.
func checkRoundTrip(t *testing.T, raw []byte, content map[string]any) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("built message does not parse: %v", err)
	}
	if subject, ok := content["subject"].(string); ok {
		got, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
		if err != nil || got != subject {
			t.Errorf("subject decodes to %q (%v), want %q", got, err, subject)
		}
	}
	if from, ok := content["from"].(map[string]string); ok {
		a, err := m.Header.AddressList("From")
		if err != nil || len(a) != 1 || a[0].Name != from["name"] || a[0].Address != from["email"] {
			t.Errorf("From decodes to %v (%v), want %v", a, err, from)
		}
	}
	if _, err := m.Header.AddressList("To"); err != nil {
		t.Errorf("To does not parse: %v", err)
	}
	texts := map[string]string{}
	collectParts(t, textproto(m.Header), m.Body, texts)
	for field, ct := range map[string]string{"text_body": "text/plain", "html_body": "text/html"} {
		want, ok := content[field].(string)
		if !ok {
			continue
		}
		got := texts[ct]
		if !strings.HasPrefix(m.Header.Get("Content-Type"), "multipart/") && !strings.HasSuffix(want, "\n") {
			got = strings.TrimSuffix(got, "\r\n") // the line break that ends every message
		}
		if got != strings.ReplaceAll(want, "\n", "\r\n") {
			t.Errorf("%s decodes to %q, want %q", ct, got, want)
		}
	}
}

type header interface{ Get(string) string }

func textproto(h mail.Header) header { return h }

func collectParts(t *testing.T, h header, body io.Reader, texts map[string]string) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		t.Fatalf("Content-Type %q: %v", h.Get("Content-Type"), err)
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Fatalf("multipart: %v", err)
			}
			collectParts(t, p.Header, p, texts)
		}
	}
	var r io.Reader = body
	switch h.Get("Content-Transfer-Encoding") {
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, &lineStripper{r: body})
	}
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: decode: %v", mt, err)
	}
	texts[mt] = string(data)
}

// lineStripper drops CR and LF so base64 decodes across lines.
type lineStripper struct{ r io.Reader }

func (l *lineStripper) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	j := 0
	for _, c := range p[:n] {
		if c != '\r' && c != '\n' {
			p[j] = c
			j++
		}
	}
	return j, err
}

func TestInjectBuilderPerRecipient(t *testing.T) {
	h := newHarness(t)
	var rcpts []map[string]string
	for i := range 40 {
		rcpts = append(rcpts, map[string]string{"email": fmt.Sprintf("user%02d@example.com", i), "name": fmt.Sprintf("User %d", i)})
	}
	r := h.do("POST", "/api/inject/v1", map[string]any{
		"envelope_sender": "a@example.com", "recipients": rcpts,
		"content": map[string]any{"subject": "hi", "text_body": "hello"},
	})
	if r.status != 200 || r.json(t)["success_count"] != 40.0 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	msgs := h.sortedMessages()
	for i, msg := range msgs {
		m, err := mail.ReadMessage(bytes.NewReader(msg.Body))
		if err != nil {
			t.Fatal(err)
		}
		to, _ := m.Header.AddressList("To")
		if len(to) != 1 || to[0].Address != msg.Recipients[0] || to[0].Name != fmt.Sprintf("User %d", i) {
			t.Errorf("message to %s has To %v", msg.Recipients[0], to)
		}
		// IDs are drawn in recipient order.
		if id := m.Header.Get("Message-ID"); id != fmt.Sprintf("<test.%d@mta.example>", i+1) {
			t.Errorf("message %d has Message-ID %s", i, id)
		}
	}
}

// TestInjectDSN: the request's dsn object and each recipient's notify
// and orcpt reach the backend as SMTP would carry them: keywords in upper
// case, a recipient's own notify before the request's, none when neither
// is given.
func TestInjectDSN(t *testing.T) {
	h := newHarness(t)
	r := h.do("POST", "/api/inject/v1", map[string]any{
		"envelope_sender": "a@example.com", "content": "Subject: x\n\ny",
		"dsn": map[string]any{"ret": "hdrs", "envid": "spring-7", "notify": []string{"failure", "delay"}},
		"recipients": []map[string]any{
			{"email": "b@example.com", "notify": []string{"never"}, "orcpt": "RFC822;B@Example.com"},
			{"email": "c@example.com"},
		},
	})
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	m := h.sortedMessages()[0]
	if m.DSN != (dsnparams.Mail{Ret: "HDRS", EnvID: "spring-7"}) {
		t.Errorf("DSN %+v", m.DSN)
	}
	want := []dsnparams.Rcpt{{Notify: []string{"NEVER"}, ORCPT: "rfc822;B@Example.com"}, {Notify: []string{"FAILURE", "DELAY"}}}
	if len(m.RcptDSN) != len(want) {
		t.Fatalf("RcptDSN %+v, want %+v", m.RcptDSN, want)
	}
	for i := range want {
		if !slices.Equal(m.RcptDSN[i].Notify, want[i].Notify) || m.RcptDSN[i].ORCPT != want[i].ORCPT {
			t.Errorf("RcptDSN[%d] = %+v, want %+v", i, m.RcptDSN[i], want[i])
		}
	}

	h = newHarness(t)
	h.do("POST", "/api/inject/v1", map[string]any{
		"envelope_sender": "a@example.com", "content": "Subject: x\n\ny",
		"recipients": []map[string]any{{"email": "b@example.com"}},
	})
	if m := h.sortedMessages()[0]; m.DSN != (dsnparams.Mail{}) || m.RcptDSN != nil {
		t.Errorf("without DSN parameters: %+v, %+v; want none", m.DSN, m.RcptDSN)
	}
}

func TestInjectValidation(t *testing.T) {
	for _, c := range []struct {
		name, body string
		want       []string // in the errors array
	}{
		{"malformed JSON", `{"envelope_sender": "a@example.com",`, []string{"malformed JSON"}},
		{"not an object", `["a"]`, []string{"malformed JSON"}},
		{"empty body", ``, []string{"empty"}},
		{"all missing", `{}`, []string{"envelope_sender is missing", "recipients is missing", "content is missing"}},
		{"null content", `{"envelope_sender": "a@example.com", "recipients": [{"email": "b@example.com"}], "content": null}`, []string{"content is missing"}},
		{"bad sender", `{"envelope_sender": "not an address", "recipients": [{"email": "b@example.com"}], "content": "Subject: x\n\ny"}`, []string{"envelope_sender"}},
		{"display name as sender", `{"envelope_sender": "Al <a@example.com>", "recipients": [{"email": "b@example.com"}], "content": "Subject: x\n\ny"}`, []string{"bare address"}},
		{"bad recipient", `{"envelope_sender": "a@example.com", "recipients": [{"email": "b@example.com"}, {"email": "nobody"}], "content": "Subject: x\n\ny"}`, []string{`recipients[1].email: "nobody"`}},
		{"missing email", `{"envelope_sender": "a@example.com", "recipients": [{"name": "B"}], "content": "Subject: x\n\ny"}`, []string{"recipients[0].email is missing"}},
		{"name with newline", `{"envelope_sender": "a@example.com", "recipients": [{"email": "b@example.com", "name": "B\r\nBcc: x@y.z"}], "content": {"text_body": "x"}}`, []string{"control character"}},
		{"recipients not a list", `{"envelope_sender": "a@example.com", "recipients": "b@example.com", "content": "Subject: x\n\ny"}`, []string{"recipients"}},
		{"content a number", `{"envelope_sender": "a@example.com", "recipients": [{"email": "b@example.com"}], "content": 5}`, []string{"content must be a string"}},
		{"content without headers", `{"envelope_sender": "a@example.com", "recipients": [{"email": "b@example.com"}], "content": "just text"}`, []string{"not an RFC 5322 message"}},
		{"empty builder", `{"envelope_sender": "a@example.com", "recipients": [{"email": "b@example.com"}], "content": {"subject": "x"}}`, []string{"nothing to send"}},
		{"reserved header", `{"envelope_sender": "a@example.com", "recipients": [{"email": "b@example.com"}], "content": {"text_body": "x", "headers": {"Content-Type": "text/html"}}}`, []string{"set by the message builder"}},
		{"header injection", `{"envelope_sender": "a@example.com", "recipients": [{"email": "b@example.com"}], "content": {"text_body": "x", "headers": {"X-A": "1\r\nBcc: evil@example.com"}}}`, []string{"single line"}},
		{"bad header name", `{"envelope_sender": "a@example.com", "recipients": [{"email": "b@example.com"}], "content": {"text_body": "x", "headers": {"X A": "1"}}}`, []string{"header name"}},
		{"bad from", `{"envelope_sender": "a@example.com", "recipients": [{"email": "b@example.com"}], "content": {"text_body": "x", "from": {"email": "nope"}}}`, []string{"content.from.email"}},
		{"bad cc", `{"envelope_sender": "a@example.com", "recipients": [{"email": "b@example.com"}], "content": {"text_body": "x", "headers": {"Cc": "a@@b"}}}`, []string{"not an address list"}},
		{"bad base64", `{"envelope_sender": "a@example.com", "recipients": [{"email": "b@example.com"}], "content": {"text_body": "x", "attachments": [{"data": "!!", "base64": true}]}}`, []string{"not valid base64"}},
		{"bad content type", `{"envelope_sender": "a@example.com", "recipients": [{"email": "b@example.com"}], "content": {"text_body": "x", "attachments": [{"data": "x", "content_type": "no type"}]}}`, []string{"content_type"}},
		{"notify never and more", `{"envelope_sender": "a@example.com", "recipients": [{"email": "b@example.com", "notify": ["never", "failure"]}], "content": "Subject: x\n\ny"}`, []string{"recipients[0].notify: never cannot be combined"}},
		{"notify unknown", `{"envelope_sender": "a@example.com", "recipients": [{"email": "b@example.com"}], "dsn": {"notify": ["always"]}, "content": "Subject: x\n\ny"}`, []string{`dsn.notify: "always" is not one of`}},
		{"notify twice", `{"envelope_sender": "a@example.com", "recipients": [{"email": "b@example.com"}], "dsn": {"notify": ["delay", "DELAY"]}, "content": "Subject: x\n\ny"}`, []string{`"delay" is given twice`}},
		{"bad ret", `{"envelope_sender": "a@example.com", "recipients": [{"email": "b@example.com"}], "dsn": {"ret": "body"}, "content": "Subject: x\n\ny"}`, []string{`dsn.ret: "body" is not full or hdrs`}},
		{"envid with newline", `{"envelope_sender": "a@example.com", "recipients": [{"email": "b@example.com"}], "dsn": {"envid": "a\r\nb"}, "content": "Subject: x\n\ny"}`, []string{"dsn.envid"}},
		{"envid too long", `{"envelope_sender": "a@example.com", "recipients": [{"email": "b@example.com"}], "dsn": {"envid": "` + strings.Repeat("x", 101) + `"}, "content": "Subject: x\n\ny"}`, []string{"dsn.envid: longer than 100"}},
		{"orcpt without type", `{"envelope_sender": "a@example.com", "recipients": [{"email": "b@example.com", "orcpt": "b@example.com"}], "content": "Subject: x\n\ny"}`, []string{"recipients[0].orcpt"}},
		{"orcpt type not an atom", `{"envelope_sender": "a@example.com", "recipients": [{"email": "b@example.com", "orcpt": "rfc 822;b@example.com"}], "content": "Subject: x\n\ny"}`, []string{"not an atom"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			r := h.do("POST", "/api/inject/v1", c.body)
			m := wantError(t, r, http.StatusBadRequest, "")
			// KumoMTA's shape, on errors too.
			for _, k := range []string{"success_count", "fail_count", "failed_recipients", "errors"} {
				if _, ok := m[k]; !ok {
					t.Errorf("no %s in %s", k, r.body)
				}
			}
			if m["success_count"] != 0.0 {
				t.Errorf("success_count %v", m["success_count"])
			}
			errs := fmt.Sprint(m["errors"])
			for _, w := range c.want {
				if !strings.Contains(errs, w) {
					t.Errorf("errors %s do not mention %q", errs, w)
				}
			}
			h.wantNoCalls()
		})
	}
}

func TestInjectTooLarge(t *testing.T) {
	h := newHarness(t, WithLimits(1000, 100))
	body := `{"envelope_sender": "a@example.com", "recipients": [{"email": "b@example.com"}], "content": "Subject: x\n\n` + strings.Repeat("y", 2000) + `"}`
	m := wantError(t, h.do("POST", "/api/inject/v1", body), http.StatusRequestEntityTooLarge, "larger than 1000 bytes")
	if _, ok := m["success_count"]; !ok {
		t.Error("413 without KumoMTA fields")
	}
	h.wantNoCalls()
	// The injection limit, not the small one, applies.
	if r := h.do("POST", "/api/inject/v1", `{"envelope_sender": "a@example.com", "recipients": [{"email": "b@example.com"}], "content": "Subject: x\n\n`+strings.Repeat("y", 500)+`"}`); r.status != 200 {
		t.Errorf("500-byte injection: %d %s", r.status, r.body)
	}
}

func TestInjectPartialRefusal(t *testing.T) {
	h := newHarness(t)
	h.fake.enqueue = func(m *Message) (string, error) {
		if m.Recipients[0] == "blocked@example.com" {
			return "", Refusal(smtpreply.New(550, "5.7.1", "rule no-blocked refused the message"))
		}
		return "id1", nil
	}
	// Built content names its recipient, so each recipient is a message
	// of its own, refused or accepted alone.
	r := h.do("POST", "/api/inject/v1", `{"envelope_sender": "a@example.com", "content": {"subject": "x", "text_body": "y"},
		"recipients": [{"email": "ok@example.com"}, {"email": "blocked@example.com"}]}`)
	m := r.json(t)
	if r.status != 200 || m["success_count"] != 1.0 || m["fail_count"] != 1.0 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if f := m["failed_recipients"].([]any); len(f) != 1 || f[0] != "blocked@example.com" {
		t.Errorf("failed_recipients %v", f)
	}
	if e := m["errors"].([]any); len(e) != 1 || e[0] != "blocked@example.com: 550 5.7.1 rule no-blocked refused the message" {
		t.Errorf("errors %v", e)
	}
	a := h.Actions()
	if len(a) != 1 || a[0].Injected != 1 || a[0].Failed != 1 || a[0].Err == nil {
		t.Errorf("actions %+v", a)
	}
}

// TestInjectSharedBody checks that recipients of the same content share
// stored messages of at most maxRecipientsPerMessage recipients, each
// with its own Message-ID, and that a refusal fails exactly the
// recipients of the refused message.
func TestInjectSharedBody(t *testing.T) {
	h := newHarness(t)
	n := 2*maxRecipientsPerMessage + 500
	var rcpts []map[string]string
	for i := range n {
		rcpts = append(rcpts, map[string]string{"email": fmt.Sprintf("u%05d@example.com", i)})
	}
	h.fake.enqueue = func(m *Message) (string, error) {
		if m.Recipients[0] == fmt.Sprintf("u%05d@example.com", maxRecipientsPerMessage) {
			return "", Refusal(smtpreply.New(550, "5.7.1", "refused"))
		}
		return "id-" + m.Recipients[0], nil
	}
	r := h.do("POST", "/api/inject/v1", map[string]any{
		"envelope_sender": "a@example.com", "recipients": rcpts, "content": "Subject: s\n\n" + strings.Repeat("x", 10000),
	})
	m := r.json(t)
	if r.status != 200 || m["success_count"] != float64(n-maxRecipientsPerMessage) || m["fail_count"] != float64(maxRecipientsPerMessage) {
		t.Fatalf("%d success %v fail %v", r.status, m["success_count"], m["fail_count"])
	}
	if msgs := h.sortedMessages(); len(msgs) != 3 || len(msgs[2].Recipients) != 500 {
		t.Errorf("%d messages stored for %d recipients of one content, want 3", len(msgs), n)
	}
	if ids := m["ids"].([]any); len(ids) != 2 || ids[0] != "id-u00000@example.com" || ids[1] != "id-u02000@example.com" {
		t.Errorf("ids %v", ids)
	}
	if f := m["failed_recipients"].([]any); len(f) != maxRecipientsPerMessage || f[0] != "u01000@example.com" || f[len(f)-1] != "u01999@example.com" {
		t.Errorf("%d failed recipients, first %v", len(f), f[0])
	}
}

func TestInjectAllRefused(t *testing.T) {
	h := newHarness(t)
	h.fake.enqueue = func(m *Message) (string, error) {
		return "", Refusal(smtpreply.New(550, "", "no"))
	}
	m := wantError(t, h.do("POST", "/api/inject/v1", `{"envelope_sender": "a@example.com", "content": "Subject: x\n\ny", "recipients": [{"email": "b@example.com"}]}`),
		http.StatusUnprocessableEntity, "no message was injected")
	if m["fail_count"] != 1.0 {
		t.Errorf("fail_count %v", m["fail_count"])
	}
}

func TestInjectStorageFailure(t *testing.T) {
	for _, err := range []error{errors.New("spool: no space left on device"), Refusal(smtpreply.New(452, "", "insufficient storage"))} {
		h := newHarness(t)
		h.fake.enqueue = func(m *Message) (string, error) { return "", err }
		m := wantError(t, h.do("POST", "/api/inject/v1", `{"envelope_sender": "a@example.com", "content": "Subject: x\n\ny", "recipients": [{"email": "b@example.com"}, {"email": "c@example.com"}]}`),
			http.StatusServiceUnavailable, "retry later")
		if m["fail_count"] != 2.0 || len(m["failed_recipients"].([]any)) != 2 {
			t.Errorf("%v", m)
		}
	}
}

func TestNormalizeMessage(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Subject: a\n\nb", "Subject: a\r\n\r\nb\r\n"},
		{"Subject: a\r\n\r\nb\r\n", "Subject: a\r\n\r\nb\r\n"},
		{"Subject: a\r\rb\rc", "Subject: a\r\n\r\nb\r\nc\r\n"},
		{"Subject: a", "Subject: a\r\n"},
	} {
		got, _, err := normalizeMessage(c.in)
		if err != nil || string(got) != c.want {
			t.Errorf("normalizeMessage(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"just text", "Subject: a\nnot a field\n\nb", " continued\nSubject: a\n\nb", "X Y: 1\n\nb"} {
		if _, _, err := normalizeMessage(in); err == nil || !strings.Contains(err.Error(), "not an RFC 5322 message") {
			t.Errorf("normalizeMessage(%q) = %v, want a refusal", in, err)
		}
	}
}

func TestTextEncoding(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain\nascii\n", "7bit"},
		{strings.Repeat("x", 79), "quoted-printable"},
		{strings.Repeat("x", 78) + "\n" + strings.Repeat("y", 78), "7bit"},
		{"Hallo Zoë, unser Angebot gilt bis Freitag.", "quoted-printable"},
		{"Grüße aus Köln", "base64"}, // shorter than quoted-printable
		{"こんにちは", "base64"},
		{"a text with a nul\x00 byte", "quoted-printable"},
	} {
		if got := textEncoding(c.in); got != c.want {
			t.Errorf("textEncoding(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestActionLogEvent(t *testing.T) {
	ev := ActionEvent{Time: testNow, Action: ActionSuspend, Actor: "cli:root", ClientIP: "127.0.0.1",
		Scope: "site", Key: "outlook", Until: testNow.Add(time.Hour), Reason: "blocked"}.LogEvent()
	if ev.Type != "admin" || ev.Site != "outlook" || ev.Action != "suspend" || ev.Reason != "blocked; until 2026-03-14T15:09:26Z" {
		t.Errorf("%+v", ev)
	}
	ev = ActionEvent{Action: ActionInject, Injected: 3, Failed: 1, Err: errors.New("x: 550 no")}.LogEvent()
	if ev.Reason != "3 injected, 1 failed; failed: x: 550 no" {
		t.Errorf("inject reason %q", ev.Reason)
	}
	ev = ActionEvent{Action: ActionReload, Generation: 7}.LogEvent()
	if ev.Generation != 7 || ev.Reason != "" {
		t.Errorf("%+v", ev)
	}
}
