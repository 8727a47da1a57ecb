package feedback

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"strings"

	"github.com/emersion/go-message"
	// Text parts in ISO-8859-x, Windows-125x and the like (the legacy
	// JMRP notice is ISO-8859-1) are decoded rather than refused.
	_ "github.com/emersion/go-message/charset"
)

// Kinds of report, the kind label of cuemta_feedback_reports_total.
const (
	KindARF     = "arf"     // RFC 5965 feedback report (or the legacy JMRP copy)
	KindDSN     = "dsn"     // RFC 3464 delivery status notification
	KindBounce  = "bounce"  // a non-standard, plain-text bounce
	KindUnknown = "unknown" // nothing recognisable
)

// Bounds on what is read of a report: reports are small, and a hostile one
// must not make the parser hold or walk more than this.
const (
	maxPartBytes = 256 << 10 // one part's decoded body
	maxParts     = 32        // MIME parts walked, nested ones included
	maxDepth     = 4         // multipart nesting
)

// Report is what a feedback message says, as far as it could be parsed.
type Report struct {
	Kind string `json:"kind"`

	// RFC 5965 §3.1 (and §3.2) fields of the message/feedback-report part.
	FeedbackType     string   `json:"feedback_type,omitempty"`      // lower-case: abuse, fraud, virus, other, not-spam, auth-failure
	UserAgent        string   `json:"user_agent,omitempty"`         // the reporter's software, e.g. Yahoo!-Mail-Feedback/2.0
	OriginalMailFrom string   `json:"original_mail_from,omitempty"` // the reported message's MAIL FROM, < > removed
	OriginalRcptTo   []string `json:"original_rcpt_to,omitempty"`   // its RCPT TO (often redacted by the ISP)
	ArrivalDate      string   `json:"arrival_date,omitempty"`
	SourceIP         string   `json:"source_ip,omitempty"`
	ReportedDomain   string   `json:"reported_domain,omitempty"`

	// RFC 3464 §2.2 per-message fields and §2.3 per-recipient blocks; for
	// a plain-text bounce, the recipients found in its text.
	ReportingMTA string      `json:"reporting_mta,omitempty"`
	Recipients   []Recipient `json:"recipients,omitempty"`

	// Original is the returned message's header (message/rfc822 or
	// text/rfc822-headers), or the headers quoted in a plain-text bounce.
	Original Original `json:"original"`
}

// Recipient is one recipient of a delivery report.
type Recipient struct {
	Addr       string `json:"addr"`                 // Final-Recipient, type prefix and < > removed
	Original   string `json:"original,omitempty"`   // Original-Recipient, when given
	Action     string `json:"action"`               // lower-case: failed, delayed, delivered, relayed, expanded
	Status     string `json:"status,omitempty"`     // RFC 3463 code, e.g. 5.1.1
	Diagnostic string `json:"diagnostic,omitempty"` // Diagnostic-Code without its type, e.g. "550 5.1.1 no such user"
}

// Original is what the returned message's header says.
type Original struct {
	MessageID  string `json:"message_id,omitempty"`  // as written, with < >
	ReturnPath string `json:"return_path,omitempty"` // < > removed
	From       string `json:"from,omitempty"`
	To         string `json:"to,omitempty"`
	Subject    string `json:"subject,omitempty"`
	// JMRPRecipient is Microsoft's X-HmXmrOriginalRecipient, the only
	// place the old JMRP format names the complaining recipient.
	JMRPRecipient string `json:"jmrp_recipient,omitempty"`
}

// ErrNotReport is returned by Parse for a message that is none of the
// kinds it knows; the Report returned with it holds what was found.
var ErrNotReport = errors.New("not a feedback report or bounce")

// Parse reads one feedback message. It never fails on a malformed part:
// it keeps what parsed and looks at the rest. The error is ErrNotReport
// (wrapped) when nothing is recognisable, with rep.Kind KindUnknown.
func Parse(msg []byte) (*Report, error) {
	rep := &Report{}
	e, err := message.Read(bytes.NewReader(msg))
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		rep.Kind = KindUnknown
		return rep, fmt.Errorf("%w: %v", ErrNotReport, err)
	}
	w := &walker{rep: rep}
	w.walk(e, 0)
	switch {
	case rep.FeedbackType != "":
		rep.Kind = KindARF
	case w.dsn:
		rep.Kind = KindDSN
	case rep.Original.JMRPRecipient != "" && w.returned:
		// The JMRP format before ARF: the reported message attached
		// whole, with no report part; every such message is a complaint.
		rep.Kind, rep.FeedbackType, rep.UserAgent = KindARF, "abuse", "Microsoft JMRP (legacy)"
		rep.OriginalRcptTo = []string{rep.Original.JMRPRecipient}
	default:
		if parseTextBounce(rep, w.text.Bytes()) {
			rep.Kind = KindBounce
		} else {
			rep.Kind = KindUnknown
			return rep, ErrNotReport
		}
	}
	return rep, nil
}

// walker visits the MIME tree of a report.
type walker struct {
	rep      *Report
	parts    int
	dsn      bool         // a delivery-status part was seen
	returned bool         // a returned message (or its headers) was seen
	text     bytes.Buffer // the text/plain parts, for plain-text bounces
}

func (w *walker) walk(e *message.Entity, depth int) {
	if w.parts++; w.parts > maxParts {
		return
	}
	ct, _, _ := e.Header.ContentType()
	if mr := e.MultipartReader(); mr != nil {
		if depth >= maxDepth {
			return
		}
		for {
			p, err := mr.NextPart()
			if err != nil && (p == nil || !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err)) {
				// io.EOF, or a broken boundary: keep what was read.
				return
			}
			w.walk(p, depth+1)
		}
	}
	body, _ := io.ReadAll(io.LimitReader(e.Body, maxPartBytes))
	switch ct {
	case "message/feedback-report":
		w.feedbackReport(body)
	case "message/delivery-status", "message/global-delivery-status": // RFC 6533 §6.2
		w.dsn = true
		w.deliveryStatus(body)
	case "message/rfc822", "message/global", "text/rfc822-headers", "message/rfc822-headers":
		if !w.returned {
			w.returned = true
			w.original(body)
		}
	case "text/plain", "":
		if w.text.Len() < maxPartBytes {
			w.text.Write(body)
			w.text.WriteString("\n")
		}
	}
}

// fields reads one block of "Name: value" lines (RFC 5322 syntax, as both
// RFC 5965 §3.1 and RFC 3464 §2.1 use), tolerating leading blank lines and
// bare LF; a malformed line ends the block with what parsed before it.
func fields(block []byte) textproto.MIMEHeader {
	block = bytes.TrimLeft(block, "\r\n")
	r := textproto.NewReader(bufio.NewReader(io.MultiReader(bytes.NewReader(block), strings.NewReader("\r\n\r\n"))))
	h, _ := r.ReadMIMEHeader()
	return h
}

// RFC 5965 §3.1: the machine-readable part of a feedback report.
func (w *walker) feedbackReport(body []byte) {
	h := fields(body)
	r := w.rep
	r.FeedbackType = strings.ToLower(strings.TrimSpace(h.Get("Feedback-Type")))
	if r.FeedbackType == "" && len(h) > 0 {
		// A report part that names no type is still a report; RFC 5965
		// §7.3 registers "other" for what fits no type.
		r.FeedbackType = "other"
	}
	r.UserAgent = strings.TrimSpace(h.Get("User-Agent"))
	r.OriginalMailFrom = bareAddr(h.Get("Original-Mail-From"))
	for _, v := range h.Values("Original-Rcpt-To") {
		if a := bareAddr(v); a != "" {
			r.OriginalRcptTo = append(r.OriginalRcptTo, a)
		}
	}
	r.ArrivalDate = strings.TrimSpace(h.Get("Arrival-Date"))
	if r.ArrivalDate == "" {
		r.ArrivalDate = strings.TrimSpace(h.Get("Received-Date")) // RFC 5965 §3.2: the deprecated name
	}
	r.SourceIP = strings.TrimSpace(h.Get("Source-IP"))
	r.ReportedDomain = strings.TrimSpace(h.Get("Reported-Domain"))
}

// RFC 3464 §2.1: a per-message block, then one block per recipient,
// separated by blank lines.
func (w *walker) deliveryStatus(body []byte) {
	body = bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n"))
	blocks := bytes.Split(bytes.Trim(body, "\n"), []byte("\n\n"))
	for i, b := range blocks {
		h := fields(b)
		if i == 0 && h.Get("Final-Recipient") == "" {
			w.rep.ReportingMTA = typed(h.Get("Reporting-MTA"))
			continue
		}
		if h.Get("Final-Recipient") == "" && h.Get("Original-Recipient") == "" {
			continue
		}
		rc := Recipient{
			Addr:       bareAddr(typed(h.Get("Final-Recipient"))),
			Original:   bareAddr(typed(h.Get("Original-Recipient"))),
			Action:     strings.ToLower(strings.TrimSpace(h.Get("Action"))),
			Status:     firstStatus(h.Get("Status")),
			Diagnostic: oneLine(typed(h.Get("Diagnostic-Code"))),
		}
		if rc.Addr == "" {
			rc.Addr = rc.Original
		}
		w.rep.Recipients = append(w.rep.Recipients, rc)
	}
}

// original reads the returned message's header.
func (w *walker) original(body []byte) {
	h := fields(body)
	o := &w.rep.Original
	o.MessageID = strings.TrimSpace(h.Get("Message-Id"))
	o.ReturnPath = bareAddr(h.Get("Return-Path"))
	o.From = oneLine(h.Get("From"))
	o.To = oneLine(h.Get("To"))
	o.Subject = oneLine(h.Get("Subject"))
	o.JMRPRecipient = bareAddr(h.Get("X-HmXmrOriginalRecipient"))
}

// typed removes the address or diagnostic type of RFC 3464 §2.1.2
// ("rfc822; a@b", "smtp; 550 ...", "dns; mx.example").
func typed(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, ';'); i > 0 && !strings.ContainsAny(v[:i], " <@") {
		return strings.TrimSpace(v[i+1:])
	}
	return v
}

// bareAddr is an address without its < > and surrounding space.
func bareAddr(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			v = v[i+1 : i+j]
		}
	}
	return strings.TrimSpace(v)
}

func oneLine(v string) string { return strings.Join(strings.Fields(v), " ") }
