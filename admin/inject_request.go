package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/mail"
	"strings"
	"unicode"

	"github.com/cuemta/cuemta/internal/dsnparams"
)

// maxInjectRecipients bounds one request.
const maxInjectRecipients = 100_000

// injectRequest is KumoMTA's /api/inject/v1 body. Fields cuemta does not
// support are ignored (the decoder is not strict): substitutions and
// template_dialect (no templating: content is sent as written),
// deferred_generation and deferred_spool (messages are built and stored
// before the reply), trace_headers, and per-recipient metadata.
type injectRequest struct {
	EnvelopeSender string            `json:"envelope_sender"`
	Recipients     []injectRecipient `json:"recipients"`
	Content        json.RawMessage   `json:"content"`

	// cuemta extensions: set the tenant and campaign directly instead of
	// through headers and rules.
	Tenant   string `json:"tenant"`
	Campaign string `json:"campaign"`
	// cuemta extension: the delivery status notification parameters of
	// RFC 3461, as MAIL FROM (ret, envid) and RCPT TO (notify) would
	// carry them.
	DSN *injectDSN `json:"dsn"`

	// Read only to warn that they were ignored.
	Substitutions map[string]any `json:"substitutions"`
}

type injectRecipient struct {
	Email         string         `json:"email"`
	Name          string         `json:"name"`
	Substitutions map[string]any `json:"substitutions"`
	// cuemta extensions (RFC 3461 §4.1, §4.2): this recipient's NOTIFY,
	// in place of dsn.notify, and its original recipient, "type;address"
	// (e.g. "rfc822;user@example.com").
	Notify []string `json:"notify"`
	ORCPT  string   `json:"orcpt"`
}

// injectDSN is the request's "dsn" object.
type injectDSN struct {
	Notify []string `json:"notify"` // "never", or any of "success", "failure", "delay"
	Ret    string   `json:"ret"`    // "full" or "hdrs"
	EnvID  string   `json:"envid"`
}

// RFC 3461's bounds: ENVID at most 100 characters (§4.4), ORCPT's
// address at most 500 (§4.2).
const (
	maxEnvID = 100
	maxORCPT = 500
)

// checkNotify validates a NOTIFY list (RFC 3461 §4.1): NEVER alone, or
// one or more of SUCCESS, FAILURE and DELAY, each once.
func checkNotify(list []string) error {
	seen := map[string]bool{}
	for _, k := range list {
		k = strings.ToLower(k)
		switch k {
		case "never", "success", "failure", "delay":
		default:
			return fmt.Errorf("%q is not one of never, success, failure, delay", k)
		}
		if seen[k] {
			return fmt.Errorf("%q is given twice", k)
		}
		seen[k] = true
	}
	if seen["never"] && len(list) > 1 {
		return fmt.Errorf("never cannot be combined with another value")
	}
	return nil
}

// checkORCPT validates an original recipient "type;address" (RFC 3461
// §4.2): an address type (an atom, such as rfc822), then the address.
func checkORCPT(s string) error {
	typ, addr, ok := strings.Cut(s, ";")
	switch {
	case !ok || typ == "" || addr == "":
		return fmt.Errorf("%q is not \"type;address\" like \"rfc822;user@example.com\"", s)
	case strings.ContainsFunc(typ, func(r rune) bool { return r > 0x7e || r <= ' ' || strings.ContainsRune("()<>@,;:\\\"[]", r) }):
		return fmt.Errorf("%q: the address type is not an atom", s)
	case len(addr) > maxORCPT || strings.ContainsFunc(addr, unicode.IsControl):
		return fmt.Errorf("the address of %q is longer than %d characters or holds a control character", s, maxORCPT)
	}
	return nil
}

// validateDSN adds the problems of the request's DSN parameters.
func (req *injectRequest) validateDSN(add func(string, ...any)) {
	if d := req.DSN; d != nil {
		if err := checkNotify(d.Notify); err != nil {
			add("dsn.notify: %v", err)
		}
		switch strings.ToLower(d.Ret) {
		case "", "full", "hdrs":
		default:
			add("dsn.ret: %q is not full or hdrs", d.Ret)
		}
		if len(d.EnvID) > maxEnvID || strings.ContainsFunc(d.EnvID, func(r rune) bool { return r < ' ' || r > 0x7e }) {
			add("dsn.envid: longer than %d characters or not printable ASCII", maxEnvID)
		}
	}
	for i, rc := range req.Recipients {
		if err := checkNotify(rc.Notify); err != nil {
			add("recipients[%d].notify: %v", i, err)
		}
		if rc.ORCPT != "" {
			if err := checkORCPT(rc.ORCPT); err != nil {
				add("recipients[%d].orcpt: %v", i, err)
			}
		}
	}
}

// dsnOf is the request's DSN parameters for recipients[first:end]: ret
// and envid, and beside each recipient its NOTIFY (its own, else the
// request's) and ORCPT, upper- and lower-cased as SMTP would carry them.
// All empty when the request gives none.
func (req *injectRequest) dsnOf(first, end int) (dsnparams.Mail, []dsnparams.Rcpt) {
	var m dsnparams.Mail
	var notify []string
	if d := req.DSN; d != nil {
		m = dsnparams.Mail{Ret: strings.ToUpper(d.Ret), EnvID: d.EnvID}
		notify = d.Notify
	}
	var rcpts []dsnparams.Rcpt
	for i, rc := range req.Recipients[first:end] {
		n := rc.Notify
		if len(n) == 0 {
			n = notify
		}
		if len(n) == 0 && rc.ORCPT == "" {
			continue
		}
		if rcpts == nil {
			rcpts = make([]dsnparams.Rcpt, end-first)
		}
		for _, k := range n {
			rcpts[i].Notify = append(rcpts[i].Notify, strings.ToUpper(k))
		}
		if rc.ORCPT != "" {
			typ, addr, _ := strings.Cut(rc.ORCPT, ";")
			rcpts[i].ORCPT = strings.ToLower(typ) + ";" + addr
		}
	}
	return m, rcpts
}

// builderContent is the object form of content: KumoMTA builds the MIME
// message from it.
type builderContent struct {
	Subject     string             `json:"subject"`
	From        *namedAddress      `json:"from"`
	ReplyTo     *namedAddress      `json:"reply_to"`
	TextBody    string             `json:"text_body"`
	HTMLBody    string             `json:"html_body"`
	AMPHTMLBody string             `json:"amp_html_body"`
	Headers     map[string]string  `json:"headers"`
	Attachments []injectAttachment `json:"attachments"`
}

type namedAddress struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

type injectAttachment struct {
	Data        string `json:"data"`
	Base64      bool   `json:"base64"`
	ContentType string `json:"content_type"`
	ContentID   string `json:"content_id"`
	FileName    string `json:"file_name"`
}

// validate checks the envelope and returns every problem found, so that a
// client fixes its request in one go.
func (req *injectRequest) validate() []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if req.EnvelopeSender == "" {
		add("envelope_sender is missing")
	} else if err := checkMailbox(req.EnvelopeSender); err != nil {
		add("envelope_sender: %v", err)
	}
	switch {
	case len(req.Recipients) == 0:
		add("recipients is missing or empty: give at least one {\"email\": ...}")
	case len(req.Recipients) > maxInjectRecipients:
		add("%d recipients: at most %d per request", len(req.Recipients), maxInjectRecipients)
	}
	for i, rc := range req.Recipients {
		if rc.Email == "" {
			add("recipients[%d].email is missing", i)
		} else if err := checkMailbox(rc.Email); err != nil {
			add("recipients[%d].email: %v", i, err)
		}
		if err := checkDisplayName(rc.Name); err != nil {
			add("recipients[%d].name: %v", i, err)
		}
	}
	if c := bytes.TrimSpace(req.Content); len(c) == 0 || string(c) == "null" {
		add("content is missing: give an RFC 5322 message as a string, or an object {subject, from, text_body, html_body, ...}")
	}
	for _, v := range []*string{&req.Tenant, &req.Campaign} {
		if err := checkText("tenant and campaign", *v); err != nil {
			add("%v", err)
		}
	}
	req.validateDSN(add)
	return problems
}

// checkMailbox validates an envelope address: a bare addr-spec, no display
// name or angle brackets.
func checkMailbox(s string) error {
	if len(s) > 254 {
		return fmt.Errorf("%q is longer than 254 bytes", s)
	}
	if strings.ContainsAny(s, "<> \t\r\n") {
		return fmt.Errorf("%q is not a bare address like user@example.com", s)
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" {
		return fmt.Errorf("%q is not a valid address like user@example.com", s)
	}
	local, domain, ok := strings.Cut(a.Address, "@")
	if !ok || local == "" || domain == "" || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") {
		return fmt.Errorf("%q is not a valid address like user@example.com", s)
	}
	return nil
}

// checkDisplayName refuses names that could break a header.
func checkDisplayName(s string) error {
	if len(s) > 256 {
		return fmt.Errorf("longer than 256 bytes")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%q contains a control character", s)
		}
	}
	return nil
}

// parseContent decodes content: a JSON string is a whole RFC 5322 message;
// an object describes one to build.
func parseContent(raw json.RawMessage) (text *string, obj *builderContent, err error) {
	raw = bytes.TrimSpace(raw)
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, nil, fmt.Errorf("content: %w", err)
		}
		return &s, nil, nil
	case '{':
		var b builderContent
		dec := json.NewDecoder(bytes.NewReader(raw))
		if err := dec.Decode(&b); err != nil {
			return nil, nil, fmt.Errorf("content: %s", strings.TrimPrefix(err.Error(), "json: "))
		}
		return nil, &b, nil
	default:
		return nil, nil, fmt.Errorf("content must be a string (an RFC 5322 message) or an object describing one")
	}
}
