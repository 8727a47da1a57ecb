package admin

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"mime"
	"slices"
	"sort"
	"strings"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"

	"github.com/cuemta/cuemta/internal/msgheader"
)

// The builder of messages from a content object (KumoMTA's builder
// form). go-message writes the MIME entity (multipart nesting, transfer
// encodings) once per request; each recipient's message is that entity
// under the fields that name the recipient (To, Date, Message-ID).
// Policy kept here: which parts nest how, and which transfer encoding a
// text part gets.

// built is a message assembled from a content object, less the fields
// that differ per recipient.
type built struct {
	// fields holds From, Reply-To and Subject and every field of the
	// headers map, values formatted by go-message (addresses, RFC 2047
	// encoded words).
	fields mail.Header
	// custom are the headers map's names that are not builderHeaders, as
	// the client spelt them, sorted.
	custom []string
	// entity is go-message's output: Content-Type and
	// Content-Transfer-Encoding fields, then the encoded body (ending in
	// CRLF).
	entity *msgheader.Message
}

// Fields the builder writes, in this order; the headers map may replace
// them. The MIME structure ones it may not set.
var (
	builderHeaders  = []string{"From", "Reply-To", "To", "Subject", "Date", "Message-ID"}
	reservedHeaders = []string{"MIME-Version", "Content-Type", "Content-Transfer-Encoding"}
	addressHeaders  = []string{"From", "Reply-To", "To", "Cc", "Bcc", "Sender", "Resent-From", "Resent-To", "Resent-Cc", "Resent-Sender"}
)

// build validates a content object and assembles everything that is the
// same for every recipient. envelopeSender is the From when none is
// given; boundary makes the multipart boundaries (nil: random ones).
func build(c *builderContent, envelopeSender string, boundary func() string) (*built, []string) {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	b := &built{}

	from := namedAddress{Email: envelopeSender}
	if c.From != nil {
		from = *c.From
	}
	if a, err := checkAddress("content.from", from); err != nil {
		add("%v", err)
	} else {
		b.fields.SetAddressList("From", []*mail.Address{a})
	}
	if c.ReplyTo != nil {
		if a, err := checkAddress("content.reply_to", *c.ReplyTo); err != nil {
			add("%v", err)
		} else {
			b.fields.SetAddressList("Reply-To", []*mail.Address{a})
		}
	}
	if strings.ContainsAny(c.Subject, "\r\n") {
		add("content.subject must be a single line")
	} else if c.Subject != "" {
		b.fields.SetSubject(c.Subject)
	}

	names := make([]string, 0, len(c.Headers))
	for n := range c.Headers {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		if i > 0 && strings.EqualFold(names[i-1], n) {
			add("content.headers: %s and %s are the same field: give it once", names[i-1], n)
			continue
		}
		if err := b.setHeader(n, c.Headers[n]); err != nil {
			add("content.headers: %v", err)
		}
	}

	entity, err := c.entity(boundary)
	if err != nil {
		add("%v", err)
	}
	b.entity = entity
	if len(problems) > 0 {
		return nil, problems
	}
	return b, nil
}

// setHeader validates a field of the headers map and sets it: address
// lists are re-formatted (RFC 2047 names), other values become RFC 2047
// encoded words where they are not ASCII.
func (b *built) setHeader(name, value string) error {
	if name == "" || len(name) > 76 {
		return fmt.Errorf("header name %q must be 1 to 76 characters", name)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c > '~' || c == ':' {
			return fmt.Errorf("header name %q may contain only printable ASCII without spaces or colons", name)
		}
	}
	if containsFold(reservedHeaders, name) {
		return fmt.Errorf("header %s is set by the message builder", name)
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		return fmt.Errorf("header %s: the value must be a single line", name)
	}
	if containsFold(addressHeaders, name) {
		list, err := mail.ParseAddressList(value)
		if err != nil {
			return fmt.Errorf("header %s: %q is not an address list: %v", name, value, err)
		}
		b.fields.SetAddressList(name, list)
	} else {
		b.fields.SetText(name, value)
	}
	if !containsFold(builderHeaders, name) {
		b.custom = append(b.custom, name)
	}
	return nil
}

func containsFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(e string) bool { return strings.EqualFold(e, s) })
}

// checkAddress validates a {email, name} pair for an address field.
func checkAddress(field string, a namedAddress) (*mail.Address, error) {
	if err := checkMailbox(a.Email); err != nil {
		return nil, fmt.Errorf("%s.email: %w", field, err)
	}
	if err := checkDisplayName(a.Name); err != nil {
		return nil, fmt.Errorf("%s.name: %w", field, err)
	}
	return &mail.Address{Name: a.Name, Address: a.Email}, nil
}

// message is the complete message for one recipient: the fields in
// builderHeaders order, MIME-Version, the headers map's other fields, then
// the entity. The entity's body is copied once, into the message.
func (b *built) message(to namedAddress, date, messageID string) []byte {
	f := b.fields.Copy()
	if !f.Has("To") {
		f.SetAddressList("To", []*mail.Address{{Name: to.Name, Address: to.Email}}) // validated with the request
	}
	if !f.Has("Date") {
		f.Set("Date", date)
	}
	if !f.Has("Message-ID") {
		f.Set("Message-ID", messageID)
	}
	var order [][2]string
	for _, n := range builderHeaders {
		if v := f.Get(n); v != "" {
			order = append(order, [2]string{n, v})
		}
	}
	order = append(order, [2]string{"MIME-Version", "1.0"})
	for _, n := range b.custom {
		order = append(order, [2]string{n, f.Get(n)})
	}
	m := msgheader.Message{Header: b.entity.Header.Clone(), Body: b.entity.Body, Sep: true}
	for i := len(order) - 1; i >= 0; i-- {
		// Adding at the top, last first: each is one line of text,
		// validated or made by go-message, so Add cannot refuse it.
		m.Header.Add(order[i][0], order[i][1])
	}
	return m.Bytes()
}

// node is one MIME entity to write: a leaf's content before transfer
// encoding, or a multipart's children.
type node struct {
	header message.Header
	data   []byte
	kids   []*node
}

// entity builds the MIME tree with go-message: alternatives (text, AMP,
// HTML, in that order of preference), inline attachments under
// multipart/related, the others under multipart/mixed.
func (c *builderContent) entity(boundary func() string) (*msgheader.Message, error) {
	var alts []*node
	for _, t := range [][2]string{{"text/plain", c.TextBody}, {"text/x-amp-html", c.AMPHTMLBody}, {"text/html", c.HTMLBody}} {
		if t[1] == "" {
			continue
		}
		n, err := textNode(t[0], t[1])
		if err != nil {
			return nil, err
		}
		alts = append(alts, n)
	}
	if len(alts) == 0 && len(c.Attachments) == 0 {
		return nil, fmt.Errorf("content has no text_body, html_body, amp_html_body or attachments: nothing to send")
	}
	var inline, attached []*node
	for i, a := range c.Attachments {
		n, err := attachmentNode(a)
		if err != nil {
			return nil, fmt.Errorf("content.attachments[%d]: %w", i, err)
		}
		if a.ContentID != "" {
			inline = append(inline, n)
		} else {
			attached = append(attached, n)
		}
	}
	if boundary == nil {
		boundary = randomBoundary
	}
	top, err := nest(alts, inline, attached, boundary)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	w, err := message.CreateWriter(&buf, top.header)
	if err == nil {
		err = writeNode(w, top)
	}
	if err != nil {
		return nil, fmt.Errorf("build the MIME message: %w", err)
	}
	if !bytes.HasSuffix(buf.Bytes(), []byte("\r\n")) {
		buf.WriteString("\r\n") // SMTP needs the message to end with a line break
	}
	m, err := msgheader.Parse(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("read back the MIME message: %w", err)
	}
	m.Header.Del("MIME-Version") // message writes it, in builderHeaders order
	return m, nil
}

// nest puts the parts in their multiparts: one alternative alone, or
// multipart/alternative; under multipart/related with the inline
// attachments; under multipart/mixed with the others.
func nest(alts, inline, attached []*node, boundary func() string) (*node, error) {
	var top *node
	var err error
	if len(alts) == 1 {
		top = alts[0]
	} else if len(alts) > 1 {
		top, err = multipartNode("alternative", boundary(), alts)
	}
	if err == nil && len(inline) > 0 {
		top, err = multipartNode("related", boundary(), prepend(top, inline))
	}
	if err == nil && len(attached) > 0 {
		top, err = multipartNode("mixed", boundary(), prepend(top, attached))
	}
	return top, err
}

// writeNode writes n's body to w (made for n's header) and closes it.
func writeNode(w *message.Writer, n *node) error {
	if n.kids == nil {
		if _, err := w.Write(n.data); err != nil {
			return err
		}
		return w.Close()
	}
	for _, k := range n.kids {
		pw, err := w.CreatePart(k.header)
		if err != nil {
			return err
		}
		if err := writeNode(pw, k); err != nil {
			return err
		}
	}
	return w.Close()
}

func prepend(n *node, ns []*node) []*node {
	if n == nil {
		return ns
	}
	return append([]*node{n}, ns...)
}

// newHeader is a part header with fields in the order given (they are
// added at the top, last first), names spelt as given ("Content-ID").
func newHeader(fields ...[2]string) (message.Header, error) {
	var h message.Header
	for i := len(fields) - 1; i >= 0; i-- {
		raw, err := msgheader.Format(fields[i][0], fields[i][1])
		if err != nil {
			return h, err
		}
		h.AddRaw(raw)
	}
	return h, nil
}

func multipartNode(subtype, boundary string, kids []*node) (*node, error) {
	ct := mime.FormatMediaType("multipart/"+subtype, map[string]string{"boundary": boundary})
	h, err := newHeader([2]string{"Content-Type", ct})
	return &node{header: h, kids: kids}, err
}

// textNode is a text part: every line break a CRLF, or an LF for
// quoted-printable, whose writer makes each LF a CRLF and would encode a
// CR (RFC 2045 §6.7 rule 4).
func textNode(contentType, text string) (*node, error) {
	cte := textEncoding(text)
	data := msgheader.CRLF([]byte(text))
	if cte == "quoted-printable" {
		data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	}
	h, err := newHeader(
		[2]string{"Content-Type", contentType + "; charset=utf-8"},
		[2]string{"Content-Transfer-Encoding", cte},
	)
	return &node{header: h, data: data}, err
}

func attachmentNode(a injectAttachment) (*node, error) {
	data := []byte(a.Data)
	if a.Base64 {
		d, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(a.Data), ""))
		if err != nil {
			return nil, fmt.Errorf("data is not valid base64: %w", err)
		}
		data = d
	}
	ct := a.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	mediaType, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return nil, fmt.Errorf("content_type %q: %w", ct, err)
	}
	disposition := "attachment"
	if a.ContentID != "" {
		disposition = "inline"
	}
	dparams := map[string]string{}
	if a.FileName != "" {
		if strings.ContainsAny(a.FileName, "\r\n/\\") {
			return nil, fmt.Errorf("file_name %q must be a plain file name", a.FileName)
		}
		params["name"] = a.FileName
		dparams["filename"] = a.FileName
	}
	// mime.FormatMediaType writes a non-ASCII file name as RFC 2231
	// asks (name*=utf-8''...); go-message's SetContentType would write
	// an RFC 2047 word inside quotes, which RFC 2047 §5 forbids.
	contentType := mime.FormatMediaType(mediaType, params)
	if contentType == "" {
		return nil, fmt.Errorf("content_type %q cannot be written", ct)
	}
	fields := [][2]string{
		{"Content-Type", contentType},
		{"Content-Transfer-Encoding", "base64"},
		{"Content-Disposition", mime.FormatMediaType(disposition, dparams)},
	}
	if a.ContentID != "" {
		cid := strings.Trim(a.ContentID, "<>")
		if strings.ContainsAny(cid, " \t\r\n<>") {
			return nil, fmt.Errorf("content_id %q is not a valid id", a.ContentID)
		}
		fields = append(fields, [2]string{"Content-ID", "<" + cid + ">"})
	}
	h, err := newHeader(fields...)
	if err != nil {
		return nil, err
	}
	return &node{header: h, data: data}, nil
}

// randomBoundary is a multipart boundary no content can know beforehand
// (RFC 2046 §5.1.1: it must not occur in the parts).
func randomBoundary() string {
	var b [18]byte
	rand.Read(b[:])
	return "=_" + hex.EncodeToString(b[:])
}

// maxLine is the line length above which text is transfer-encoded: RFC
// 5322 recommends 78; 998 is the hard limit that relays enforce.
const maxLine = 78

// textEncoding picks the transfer encoding of a text part: 7bit for short
// ASCII lines, else the shorter of quoted-printable (readable, best for
// Latin scripts) and base64 (best for mostly non-ASCII text, where
// quoted-printable triples the size).
func textEncoding(s string) string {
	nonASCII, longLine, lineLen := 0, false, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\n':
			lineLen = 0
			continue
		case c == '\r':
			continue
		case c >= 0x80:
			nonASCII++
		case c == 0:
			nonASCII++ // NUL is not allowed in 7bit text
		}
		lineLen++
		if lineLen > maxLine {
			longLine = true
		}
	}
	switch {
	case nonASCII == 0 && !longLine:
		return "7bit"
	case len(s)+2*nonASCII > len(s)*4/3:
		return "base64"
	default:
		return "quoted-printable"
	}
}
