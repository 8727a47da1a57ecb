package server

import (
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/cuemta/cuemta/delivery"
	"github.com/cuemta/cuemta/deliverylog"
	"github.com/cuemta/cuemta/queue"
	"github.com/cuemta/cuemta/reception"
	"github.com/cuemta/cuemta/smtpreply"
	"github.com/cuemta/cuemta/suppress"
)

// suppressedReply is the reply every refusal by the suppression list
// records. RFC 3463 §3.8: X.7.1 delivery not authorized, message refused.
const suppressedReply = "550 5.7.1 Recipient suppressed"

// openSuppressions opens the suppression list beside the spool it keeps
// mail out of: SPOOL/suppress/.
func (s *Server) openSuppressions(spoolDir string) error {
	list, err := suppress.Open(filepath.Join(spoolDir, "suppress"), suppress.Options{})
	if err != nil {
		return err
	}
	s.suppressions = list
	s.logger.Info("suppression list open", "entries", list.Len())
	return nil
}

// rcptSuppressor is reception's view of the list: the global entries,
// at RCPT.
type rcptSuppressor struct{ s *Server }

func (r rcptSuppressor) SuppressedAtRcpt(rcpt string, t reception.RcptContext) bool {
	e, ok := r.s.suppressions.Lookup("", rcpt)
	if !ok {
		return false
	}
	r.s.event(deliverylog.Event{Type: deliverylog.TypeSuppression, Action: "refuse", From: t.From, Rcpt: rcpt,
		Listener: t.Listener, ClientIP: t.ClientIP, Reply: suppressedReply, Reason: entryReason(e),
		Generation: r.s.Snapshot().Generation})
	return true
}

// intakeSuppressor is intake's view: the tenant's entries and the global
// ones.
type intakeSuppressor struct{ s *Server }

func (i intakeSuppressor) Suppressed(tenant, addr string) bool {
	return i.s.suppressions.Suppressed(tenant, addr)
}

// suppressedAtIntake records the recipients intake dropped (refused: the
// whole message was refused, none being left).
func (s *Server) suppressedAtIntake(env *queue.Envelope, rcpts []string, _ bool) {
	for _, r := range rcpts {
		e, _ := s.suppressions.Lookup(env.Tenant, r)
		s.event(deliverylog.Event{Type: deliverylog.TypeSuppression, Action: "refuse", From: env.From, Rcpt: r,
			Tenant: env.Tenant, Campaign: env.Campaign, Listener: env.Listener, ClientIP: env.ClientIP,
			Reply: suppressedReply, Reason: entryReason(e), Generation: env.Generation})
	}
}

func entryReason(e suppress.Entry) string {
	why := e.Source
	if e.Tenant != "" {
		why += " (tenant " + e.Tenant + ")"
	}
	if e.Reason != "" {
		why += ": " + e.Reason
	}
	return why
}

// autoSuppress adds the recipient of a hard bounce whose category
// suppression.categories names, under the message's tenant.
func (s *Server) autoSuppress(ev delivery.Event) {
	if ev.Type != delivery.EventBounce || ev.Rcpt == "" {
		return
	}
	reply, err := smtpreply.Parse(ev.Reply)
	if err != nil || !reply.Permanent() {
		return
	}
	cfg := s.Snapshot().Config.Suppression
	category := ev.Category // the deciding rule's, or derived from the reply (package category)
	if !slices.Contains(cfg.Categories, category) {
		return
	}
	e := suppress.Entry{Tenant: ev.Tenant, Address: ev.Rcpt, Source: suppress.SourceBounce,
		Reason: category + ": " + strconv.Itoa(reply.Code) + " " + reply.Enhanced}
	if d := cfg.ExpireAfter.D(); d > 0 {
		e.Expires = time.Now().Add(d)
	}
	if err := s.addSuppression(e, ev.MessageID, ev.Reply); err != nil {
		s.logger.Error("suppression list: cannot add a bounced recipient", "rcpt", ev.Rcpt, "tenant", ev.Tenant, "err", err)
	}
}

// addSuppression adds an entry the server decided on (a bounce, a
// complaint) unless the address is suppressed for that tenant already,
// and records the addition as a suppression event.
func (s *Server) addSuppression(e suppress.Entry, messageID, reply string) error {
	if _, ok := s.suppressions.Lookup(e.Tenant, e.Address); ok {
		return nil
	}
	if err := s.suppressions.Add(e); err != nil {
		return err
	}
	s.event(deliverylog.Event{Type: deliverylog.TypeSuppression, Action: "add", MessageID: messageID, Rcpt: e.Address,
		Tenant: e.Tenant, Reply: reply, Reason: e.Source + ": " + e.Reason, Generation: s.Snapshot().Generation})
	return nil
}

// feedbackSuppressor is the suppression list as feedback intake adds to
// it: a complaint or an asynchronous hard bounce, under the tenant of the
// message the report matched ("" when the report could not say).
type feedbackSuppressor struct{ s *Server }

// Suppress implements feedback.Suppressor: its reason ("complaint" or
// "bounce") is the entry's source, its source (what reported it) the
// entry's reason.
func (f feedbackSuppressor) Suppress(tenant, addr, reason, source string) error {
	return f.s.addSuppression(suppress.Entry{Tenant: tenant, Address: suppress.Normalize(addr), Reason: source, Source: reason}, "", "")
}
