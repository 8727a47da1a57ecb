package admin

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"mime"
	"net/mail"
	"slices"
	"sort"
	"strings"
)

// part is one MIME entity: its content headers and encoded body.
type part struct {
	contentType string
	headers     [][2]string // besides Content-Type and Content-Transfer-Encoding
	cte         string      // "" for multiparts
	body        []byte      // encoded, CRLF line ends
}

// built is a message assembled from a content object, less the headers
// that differ per recipient (To, Date, Message-ID).
type built struct {
	from, replyTo, subject string
	custom                 [][2]string // the headers map, encoded, sorted by name
	overrides              map[string]string
	top                    part
}

// headers the builder writes; the headers map may replace them, except the
// MIME structure ones.
var (
	builderHeaders  = []string{"From", "Reply-To", "To", "Subject", "Date", "Message-Id"}
	reservedHeaders = []string{"Mime-Version", "Content-Type", "Content-Transfer-Encoding"}
	addressHeaders  = []string{"From", "Reply-To", "To", "Cc", "Bcc", "Sender", "Resent-From", "Resent-To", "Resent-Cc", "Resent-Sender"}
)

// build validates a content object and assembles everything that is the
// same for every recipient. envelopeSender is the From when none is given.
func build(c *builderContent, envelopeSender string) (*built, []string) {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	b := &built{overrides: map[string]string{}}

	from := namedAddress{Email: envelopeSender}
	if c.From != nil {
		from = *c.From
	}
	if s, err := formatAddress("content.from", from); err != nil {
		add("%v", err)
	} else {
		b.from = s
	}
	if c.ReplyTo != nil {
		if s, err := formatAddress("content.reply_to", *c.ReplyTo); err != nil {
			add("%v", err)
		} else {
			b.replyTo = s
		}
	}
	if strings.ContainsAny(c.Subject, "\r\n") {
		add("content.subject must be a single line")
	}
	b.subject = encodeWord(c.Subject)

	names := make([]string, 0, len(c.Headers))
	for n := range c.Headers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		name, value, err := encodeHeader(n, c.Headers[n])
		if err != nil {
			add("content.headers: %v", err)
			continue
		}
		if slices.Contains(builderHeaders, name) {
			b.overrides[name] = value
			continue
		}
		b.custom = append(b.custom, [2]string{n, value}) // as the client spelt it
	}

	top, err := c.body()
	if err != nil {
		add("%v", err)
	}
	b.top = top
	if len(problems) > 0 {
		return nil, problems
	}
	return b, nil
}

// body builds the MIME tree: alternatives (text, AMP, HTML, in that order
// of preference), inline attachments under multipart/related, the others
// under multipart/mixed.
func (c *builderContent) body() (part, error) {
	var alts []part
	if c.TextBody != "" {
		alts = append(alts, textPart("text/plain", c.TextBody))
	}
	if c.AMPHTMLBody != "" {
		alts = append(alts, textPart("text/x-amp-html", c.AMPHTMLBody))
	}
	if c.HTMLBody != "" {
		alts = append(alts, textPart("text/html", c.HTMLBody))
	}
	if len(alts) == 0 && len(c.Attachments) == 0 {
		return part{}, fmt.Errorf("content has no text_body, html_body, amp_html_body or attachments: nothing to send")
	}
	var inline, attached []part
	for i, a := range c.Attachments {
		p, err := attachmentPart(a)
		if err != nil {
			return part{}, fmt.Errorf("content.attachments[%d]: %w", i, err)
		}
		if a.ContentID != "" {
			inline = append(inline, p)
		} else {
			attached = append(attached, p)
		}
	}
	var top part
	switch len(alts) {
	case 0:
	case 1:
		top = alts[0]
	default:
		top = joinParts("alternative", alts)
	}
	if len(inline) > 0 {
		top = joinParts("related", prepend(top, inline))
	}
	if len(attached) > 0 {
		top = joinParts("mixed", prepend(top, attached))
	}
	return top, nil
}

func prepend(p part, ps []part) []part {
	if p.contentType == "" {
		return ps
	}
	return append([]part{p}, ps...)
}

func textPart(contentType, text string) part {
	cte := textEncoding(text)
	return part{contentType: contentType + "; charset=utf-8", cte: cte, body: encodeText(text, cte)}
}

func attachmentPart(a injectAttachment) (part, error) {
	data := []byte(a.Data)
	if a.Base64 {
		d, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(a.Data), ""))
		if err != nil {
			return part{}, fmt.Errorf("data is not valid base64: %w", err)
		}
		data = d
	}
	ct := a.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	mediaType, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return part{}, fmt.Errorf("content_type %q: %w", ct, err)
	}
	disposition := "attachment"
	if a.ContentID != "" {
		disposition = "inline"
	}
	dparams := map[string]string{}
	if a.FileName != "" {
		if strings.ContainsAny(a.FileName, "\r\n/\\") {
			return part{}, fmt.Errorf("file_name %q must be a plain file name", a.FileName)
		}
		params["name"] = a.FileName
		dparams["filename"] = a.FileName
	}
	p := part{contentType: mime.FormatMediaType(mediaType, params), cte: "base64"}
	if p.contentType == "" {
		return part{}, fmt.Errorf("content_type %q cannot be written", ct)
	}
	p.headers = append(p.headers, [2]string{"Content-Disposition", mime.FormatMediaType(disposition, dparams)})
	if a.ContentID != "" {
		cid := strings.Trim(a.ContentID, "<>")
		if strings.ContainsAny(cid, " \t\r\n<>") {
			return part{}, fmt.Errorf("content_id %q is not a valid id", a.ContentID)
		}
		p.headers = append(p.headers, [2]string{"Content-ID", "<" + cid + ">"})
	}
	var buf bytes.Buffer
	writeBase64(&buf, data)
	p.body = buf.Bytes()
	return p, nil
}

// joinParts joins parts under a boundary derived from their content, so
// that the output is reproducible; it is lengthened in the (unlikely) case
// that it occurs in a part.
func joinParts(subtype string, parts []part) part {
	var inner bytes.Buffer
	for _, p := range parts {
		p.writeTo(&inner)
	}
	sum := sha256.Sum256(inner.Bytes())
	boundary := "=_" + hex.EncodeToString(sum[:12])
	for bytes.Contains(inner.Bytes(), []byte("--"+boundary)) {
		boundary += "_"
	}
	// The CRLF before each delimiter is part of it (RFC 2046), so a body's
	// own final line break survives.
	var buf bytes.Buffer
	for i, p := range parts {
		if i > 0 {
			buf.WriteString("\r\n")
		}
		buf.WriteString("--" + boundary + "\r\n")
		p.writeTo(&buf)
	}
	buf.WriteString("\r\n--" + boundary + "--\r\n")
	return part{contentType: mime.FormatMediaType("multipart/"+subtype, map[string]string{"boundary": boundary}), body: buf.Bytes()}
}

// writeTo writes the part as a body part: content headers, blank line, body.
func (p part) writeTo(buf *bytes.Buffer) {
	p.writeHeaders(buf)
	buf.WriteString("\r\n")
	buf.Write(p.body)
}

func (p part) writeHeaders(buf *bytes.Buffer) {
	writeHeader(buf, "Content-Type", p.contentType)
	if p.cte != "" {
		writeHeader(buf, "Content-Transfer-Encoding", p.cte)
	}
	for _, h := range p.headers {
		writeHeader(buf, h[0], h[1])
	}
}

// message is the complete message for one recipient.
func (b *built) message(to namedAddress, date, messageID string) []byte {
	var buf bytes.Buffer
	buf.Grow(len(b.top.body) + 1024)
	toValue, _ := formatAddress("", to) // validated with the request
	std := [][2]string{
		{"From", b.from},
		{"Reply-To", b.replyTo},
		{"To", toValue},
		{"Subject", b.subject},
		{"Date", date},
		{"Message-Id", messageID},
	}
	for _, h := range std {
		v := h[1]
		if o, ok := b.overrides[h[0]]; ok {
			v = o
		}
		if v == "" {
			continue
		}
		name := h[0]
		if name == "Message-Id" {
			name = "Message-ID"
		}
		writeHeader(&buf, name, v)
	}
	writeHeader(&buf, "MIME-Version", "1.0")
	for _, h := range b.custom {
		writeHeader(&buf, h[0], h[1])
	}
	b.top.writeTo(&buf)
	if !bytes.HasSuffix(buf.Bytes(), []byte("\r\n")) {
		buf.WriteString("\r\n") // SMTP needs the message to end with a line break
	}
	return buf.Bytes()
}

// formatAddress formats a {email, name} pair for a header, encoding a
// non-ASCII name (RFC 2047).
func formatAddress(field string, a namedAddress) (string, error) {
	if err := checkMailbox(a.Email); err != nil {
		return "", fmt.Errorf("%s.email: %w", field, err)
	}
	if err := checkDisplayName(a.Name); err != nil {
		return "", fmt.Errorf("%s.name: %w", field, err)
	}
	s := (&mail.Address{Name: a.Name, Address: a.Email}).String()
	if a.Name == "" {
		s = strings.TrimSuffix(strings.TrimPrefix(s, "<"), ">") // the usual bare form
	}
	return s, nil
}

// encodeHeader validates a header of the headers map and encodes its value:
// address lists are re-formatted (RFC 2047 names), other non-ASCII values
// become encoded-words.
func encodeHeader(name, value string) (string, string, error) {
	if name == "" || len(name) > 76 {
		return "", "", fmt.Errorf("header name %q must be 1 to 76 characters", name)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c > '~' || c == ':' {
			return "", "", fmt.Errorf("header name %q may contain only printable ASCII without spaces or colons", name)
		}
	}
	canon := canonicalHeader(name)
	if slices.Contains(reservedHeaders, canon) {
		return "", "", fmt.Errorf("header %s is set by the message builder", name)
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		return "", "", fmt.Errorf("header %s: the value must be a single line", name)
	}
	if slices.Contains(addressHeaders, canon) {
		list, err := mail.ParseAddressList(value)
		if err != nil {
			return "", "", fmt.Errorf("header %s: %q is not an address list: %v", name, value, err)
		}
		out := make([]string, len(list))
		for i, a := range list {
			out[i] = a.String()
		}
		return canon, strings.Join(out, ", "), nil
	}
	return canon, encodeWord(value), nil
}

// canonicalHeader is the canonical form used to compare names
// ("message-id" → "Message-Id").
func canonicalHeader(n string) string {
	parts := strings.Split(strings.ToLower(n), "-")
	for i, p := range parts {
		if p != "" {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, "-")
}
