package feedback

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strings"
	"time"

	"github.com/cuemta/cuemta/deliverylog"
	"github.com/cuemta/cuemta/internal/verp"
	"github.com/cuemta/cuemta/reception"
	"github.com/prometheus/client_golang/prometheus"
)

// Suppressor adds an address to the suppression list. tenant "" is the
// global list; reason is "complaint" or "bounce"; source says which
// report (e.g. "arf abuse Yahoo!-Mail-Feedback/2.0", "dsn 5.1.1").
type Suppressor interface {
	Suppress(tenant, addr, reason, source string) error
}

// Options configure a Handler.
type Options struct {
	Listener string // the feedback listener's name, in events
	// VERPDomain is the domain of VERP return paths ("" when VERP is
	// off: only Message-ID matching applies).
	VERPDomain string
	Index      *Index
	// Emit records one event: the server's event path (webhooks, then the
	// delivery log). Required.
	Emit func(deliverylog.Event)
	// Suppressor is nil until the suppression list is wired: then
	// nothing is suppressed, and events are still emitted.
	Suppressor Suppressor
	Unmatched  *Store
	Reports    *prometheus.CounterVec // cuemta_feedback_reports_total{kind, matched} (package metrics); nil counts nothing
	Logger     *slog.Logger
	Now        func() time.Time
}

// Handler is the reception.Sink of a feedback listener: it handles each
// report instead of queueing it.
type Handler struct{ o Options }

// NewHandler returns a Handler; o.Emit is required.
func NewHandler(o Options) *Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Index == nil {
		o.Index = NewIndex(0)
	}
	return &Handler{o: o}
}

var _ reception.Sink = (*Handler)(nil)

// Match is how a report was tied to a message.
type Match struct {
	Meta
	By string // "verp" or "message-id"; "" when unmatched
}

// Match ties a report to the message it is about: the VERP return path
// first (the envelope recipients of the report, its Original-Mail-From,
// the returned message's Return-Path), then the returned Message-ID.
func (h *Handler) Match(rep *Report, envRcpts []string) Match {
	cands := append(append([]string{}, envRcpts...), rep.OriginalMailFrom, rep.Original.ReturnPath)
	for _, a := range cands {
		if id, ok := verp.ID(a, h.o.VERPDomain); ok {
			m, _ := h.o.Index.ByID(id)
			m.ID = id
			return Match{Meta: m, By: "verp"}
		}
	}
	if rep.Original.MessageID != "" {
		if m, ok := h.o.Index.ByMessageID(rep.Original.MessageID); ok {
			return Match{Meta: m, By: "message-id"}
		}
	}
	return Match{}
}

// Accept handles one report. It returns an id naming the report in the
// logs (the "queued as" of the 250 reply) once the events are emitted or
// the unmatched report is kept; an error (451) when it could not be kept.
func (h *Handler) Accept(_ context.Context, sub *reception.Submission) (string, error) {
	now := h.o.Now()
	id := reportID()
	rep, perr := Parse(sub.Body)
	m := Match{}
	if perr == nil {
		m = h.Match(rep, sub.Recipients)
	}
	matched := m.By != ""
	log := h.o.Logger.With("report", id, "kind", rep.Kind, "listener", sub.Listener, "client", sub.ClientIP,
		"from", sub.From, "feedback_type", rep.FeedbackType, "user_agent", rep.UserAgent,
		"original_message_id", rep.Original.MessageID, "original_mail_from", rep.OriginalMailFrom,
		"rcpts", strings.Join(reportRcpts(rep), ","))
	if !matched {
		path, err := h.o.Unmatched.Put(now, id, sub.Body)
		if err != nil {
			log.Error("feedback report not kept", "err", err)
			// RFC 5321 §4.2.3 451, RFC 3463 §3.4 X.3.0: the sender keeps
			// the report and retries; nothing is lost.
			return "", &reception.Reply{Code: 451, Enhanced: "4.3.0", Text: "Requested action aborted: local storage error, try again later", Cause: err}
		}
		h.count(rep.Kind, false)
		why := "matches no message"
		if perr != nil {
			why = "not a report: " + perr.Error()
		}
		log.Info("feedback report unmatched", "why", why, "kept", path)
		return id, nil
	}
	h.count(rep.Kind, true)
	n := h.emit(rep, m, sub, now)
	log.Info("feedback report", "matched_by", m.By, "message_id", m.ID, "tenant", m.Tenant, "campaign", m.Campaign, "events", n)
	return id, nil
}

// emit records the events of a matched report and suppresses the
// recipients it condemns; it returns the number of events.
func (h *Handler) emit(rep *Report, m Match, sub *reception.Submission, now time.Time) int {
	base := deliverylog.Event{Time: now, MessageID: m.ID, From: m.From, Tenant: m.Tenant, Campaign: m.Campaign,
		Listener: sub.Listener, ClientIP: sub.ClientIP}
	if _, ours := verp.ID(rep.OriginalMailFrom, h.o.VERPDomain); base.From == "" && !ours {
		// Unknown to the index: the reported envelope sender, unless it
		// is only our own VERP return path.
		base.From = rep.OriginalMailFrom
	}
	n := 0
	switch rep.Kind {
	case KindARF:
		// RFC 5965 §7.3: abuse and fraud are the recipient's complaint;
		// the other types (not-spam, virus, auth-failure, other) are
		// logged by Accept and change nothing.
		if rep.FeedbackType != "abuse" && rep.FeedbackType != "fraud" {
			return 0
		}
		source := strings.TrimSpace("arf " + rep.FeedbackType + " " + rep.UserAgent)
		rcpts := rep.OriginalRcptTo
		if len(rcpts) == 0 && rep.Original.JMRPRecipient != "" {
			rcpts = []string{rep.Original.JMRPRecipient}
		}
		if len(rcpts) == 0 {
			rcpts = []string{""} // redacted: the message still had a complaint
		}
		for _, r := range rcpts {
			ev := base
			ev.Type, ev.Rcpt, ev.Reason = deliverylog.TypeComplaint, r, source
			h.o.Emit(ev)
			n++
			h.suppress(m.Tenant, r, "complaint", source)
		}
	case KindDSN, KindBounce:
		for _, r := range rep.Recipients {
			if r.Action != "failed" {
				continue // RFC 3464 §2.3.3: delayed, delivered, relayed, expanded end nothing
			}
			ev := base
			ev.Type, ev.Rcpt = deliverylog.TypeBounce, r.Addr
			ev.Reply = r.Diagnostic // the remote reply, as the delivery log's
			if firstStatus(r.Diagnostic) != r.Status {
				ev.Reply = strings.TrimSpace(r.Status + " " + r.Diagnostic)
			}
			ev.Class = "permanent"
			ev.Reason = "async " + rep.Kind
			h.o.Emit(ev)
			n++
			if hardStatus(r.Status) {
				h.suppress(m.Tenant, r.Addr, "bounce", rep.Kind+" "+r.Status)
			}
		}
	}
	return n
}

// hardStatus reports whether a permanent status condemns the address
// itself (RFC 3463 §3.2 X.1.x addressing, X.2.1 mailbox disabled), not
// this one message.
func hardStatus(s string) bool {
	return strings.HasPrefix(s, "5.1.") || s == "5.2.1"
}

func (h *Handler) suppress(tenant, addr, reason, source string) {
	if h.o.Suppressor == nil || addr == "" || !strings.Contains(addr, "@") {
		return
	}
	if err := h.o.Suppressor.Suppress(tenant, addr, reason, source); err != nil {
		h.o.Logger.Error("feedback: suppress", "tenant", tenant, "rcpt", addr, "reason", reason, "err", err)
	}
}

func (h *Handler) count(kind string, matched bool) {
	if h.o.Reports == nil {
		return
	}
	v := "false"
	if matched {
		v = "true"
	}
	h.o.Reports.WithLabelValues(kind, v).Inc()
}

// reportRcpts are the recipients a report names, for the log.
func reportRcpts(rep *Report) []string {
	out := append([]string{}, rep.OriginalRcptTo...)
	for _, r := range rep.Recipients {
		out = append(out, r.Addr)
	}
	return out
}

func reportID() string {
	var b [8]byte
	rand.Read(b[:])
	return "fb" + hex.EncodeToString(b[:])
}
