package metrics

import (
	"time"

	"github.com/cuemta/cuemta/category"
)

// Received counts a message accepted on a listener ("http" for injection).
func (m *Metrics) Received(listener string) {
	if m != nil {
		m.received.WithLabelValues(listener).Inc()
	}
}

// Delivered counts a recipient delivered to site.
func (m *Metrics) Delivered(site string) {
	if m != nil {
		m.delivered.WithLabelValues(m.sites.label(site)).Inc()
	}
}

// Transient counts a temporary failure at site, classified as class by the
// response rules ("" when no rule classified it), of bounce category cat
// (package category; anything else counts as "other", so the label's
// values are the enum's).
func (m *Metrics) Transient(site, class, cat string) {
	if m != nil {
		m.transient.WithLabelValues(m.sites.label(site), class, category.Bounded(cat)).Inc()
	}
}

// Bounced counts a permanent failure at site, of bounce category cat (as
// for Transient).
func (m *Metrics) Bounced(site, class, cat string) {
	if m != nil {
		m.bounced.WithLabelValues(m.sites.label(site), class, category.Bounded(cat)).Inc()
	}
}

// Expired counts a recipient given up after retry.maxAge.
func (m *Metrics) Expired(site string) {
	if m != nil {
		m.expired.WithLabelValues(m.sites.label(site)).Inc()
	}
}

// RuleHit counts a match of the rule named rule of kind "message" or
// "response".
func (m *Metrics) RuleHit(kind, rule string) {
	if m != nil {
		m.ruleHits.WithLabelValues(kind, rule).Inc()
	}
}

// RuleError counts a failed evaluation of a rule.
func (m *Metrics) RuleError(kind, rule string) {
	if m != nil {
		m.ruleErrors.WithLabelValues(kind, rule).Inc()
	}
}

// ReloadOutcome records a reload attempt now.
func (m *Metrics) ReloadOutcome(ok bool) { m.reloadOutcome(ok, time.Now()) }

func (m *Metrics) reloadOutcome(ok bool, at time.Time) {
	if m == nil {
		return
	}
	result, v := "error", 0.0
	if ok {
		result, v = "ok", 1
	}
	m.reloads.WithLabelValues(result).Inc()
	m.reloadOK.Set(v)
	m.reloadTime.Set(float64(at.UnixNano()) / 1e9)
}

// SetGeneration sets the configuration generation in force.
func (m *Metrics) SetGeneration(g uint64) {
	if m != nil {
		m.generation.Set(float64(g))
	}
}

// SetQueueSize sets the number of queued messages. It is ignored once
// QueueSizeFunc has set a function.
func (m *Metrics) SetQueueSize(n int) {
	if m != nil {
		m.queue.set(n)
	}
}

// QueueSizeFunc makes every scrape ask f for the number of queued
// messages, instead of the value of SetQueueSize. f must be cheap and safe
// for concurrent use. nil returns to SetQueueSize.
func (m *Metrics) QueueSizeFunc(f func() int) {
	if m != nil {
		m.queue.setFunc(f)
	}
}

// SpoolSpaceFunc makes every scrape ask f for the spool's free space,
// reserve and low-space state (cuemta_spool_free_bytes,
// cuemta_spool_reserve_bytes, cuemta_spool_low_space). f must be cheap and
// safe for concurrent use; while no function is set the metrics are absent.
func (m *Metrics) SpoolSpaceFunc(f func() SpoolSpace) {
	switch {
	case m == nil:
	case f == nil:
		m.space.fn.Store(nil)
	default:
		m.space.fn.Store(&f)
	}
}

// ConnOpened counts an outbound connection to site as open.
func (m *Metrics) ConnOpened(site string) {
	if m != nil {
		m.outConns.WithLabelValues(m.sites.label(site)).Inc()
	}
}

// ConnClosed counts an outbound connection to site as closed.
func (m *Metrics) ConnClosed(site string) {
	if m != nil {
		m.outConns.WithLabelValues(m.sites.label(site)).Dec()
	}
}

// ListenerConnOpened counts an inbound connection on listener as open.
func (m *Metrics) ListenerConnOpened(listener string) {
	if m != nil {
		m.inConns.WithLabelValues(listener).Inc()
	}
}

// ListenerConnClosed counts an inbound connection on listener as closed.
func (m *Metrics) ListenerConnClosed(listener string) {
	if m != nil {
		m.inConns.WithLabelValues(listener).Dec()
	}
}

// SetSuspensions sets the number of suspensions in force for scope
// ("site", "source", "tenant" or "campaign").
func (m *Metrics) SetSuspensions(scope string, n int) {
	if m != nil {
		m.suspensions.WithLabelValues(scope).Set(float64(n))
	}
}

// SpoolFsync observes the latency of one spool fsync.
func (m *Metrics) SpoolFsync(d time.Duration) {
	if m != nil {
		m.fsync.Observe(d.Seconds())
	}
}

// SMTPReplyLatency observes how long a remote server took to answer one
// SMTP command (the greeting, EHLO, MAIL, RCPT or the end of DATA).
func (m *Metrics) SMTPReplyLatency(d time.Duration) {
	if m != nil {
		m.replies.Observe(d.Seconds())
	}
}

// ReceptionLimited counts a reception refusal by limit ("messages",
// "recipients", "connections") and key ("client_ip", "user", "tenant",
// "listener"). Both come from a fixed set in package reception, never
// from a client.
func (m *Metrics) ReceptionLimited(limit, key string) {
	if m != nil {
		m.limited.WithLabelValues(limit, key).Inc()
	}
}

// AuthFailed counts an AUTH attempt with wrong credentials.
func (m *Metrics) AuthFailed() {
	if m != nil {
		m.authFailed.Inc()
	}
}

// AuthRefused counts an AUTH attempt refused without a password check,
// by reason ("client_ip", "user", "connection", "busy").
func (m *Metrics) AuthRefused(reason string) {
	if m != nil {
		m.authRefused.WithLabelValues(reason).Inc()
	}
}

// Verified counts one check of an inbound message's verification: check
// is spf, dkim, dmarc or arc, result the word the rules see (a fixed set
// of RFC 8601 results, so the labels stay few).
func (m *Metrics) Verified(listener, check, result string) {
	if m != nil {
		m.verified.WithLabelValues(listener, check, result).Inc()
	}
}
