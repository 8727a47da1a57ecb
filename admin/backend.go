package admin

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/cuemta/cuemta/internal/dsnparams"
	"github.com/cuemta/cuemta/smtpreply"
)

// Backend is what the admin API drives; package server implements it. Methods
// are called concurrently. Arguments have been validated: ids are
// non-empty, scopes are one of Scopes, durations are positive.
type Backend interface {
	// Enqueue stores one message durably (same promise and message rules
	// as SMTP reception) and returns its id. A *RequestError is a refusal
	// of this message (e.g. a rule rejected it with 550); any other error
	// is a storage failure. m.Body must not be modified: recipients of one
	// request may share it.
	Enqueue(ctx context.Context, m *Message) (id string, err error)
	// Queue returns the queued messages grouped by "site", "pool" or
	// "tenant".
	Queue(ctx context.Context, groupBy string) ([]QueueGroup, error)
	// Message describes one queued message, or returns ErrNotFound.
	Message(ctx context.Context, id string) (*MessageInfo, error)
	// Suspend stops deliveries in a scope until s.Until.
	Suspend(ctx context.Context, s Suspension) error
	// Resume lifts a suspension, or returns ErrNotFound.
	Resume(ctx context.Context, scope, key string) error
	// Suspensions lists the suspensions in force.
	Suspensions(ctx context.Context) ([]Suspension, error)
	// Retry makes a queued message due now, or returns ErrNotFound.
	Retry(ctx context.Context, id string) error
	// Bounce fails every pending recipient of a message permanently,
	// sending a bounce to its sender, or returns ErrNotFound.
	Bounce(ctx context.Context, id, reason string) error
	// Delete removes a message without a bounce, or returns ErrNotFound.
	Delete(ctx context.Context, id string) error
	// Messages returns the queued messages the filter selects as of now,
	// ordered by id, at most max of them, and how many it selects in all.
	// It works on a snapshot of the spool and holds no lock while it
	// filters.
	Messages(ctx context.Context, f MessageFilter, max int) (msgs []MessageInfo, total int, err error)
	// Hold defers a queued message until a time (a bulk suspend), or
	// returns ErrNotFound; Retry releases it.
	Hold(ctx context.Context, id string, until time.Time) error
	// Console describes the delivery for the status page and `cuemta top`.
	Console(ctx context.Context) (*Console, error)
	// Reload loads and validates the configuration and applies it when
	// valid. A refused configuration is a result with OK false and the
	// positioned errors, not an error.
	Reload(ctx context.Context) (*ReloadResult, error)
	// Status describes the running server.
	Status(ctx context.Context) (*Status, error)
	// Ready reports whether the server accepts mail (the spool is open,
	// the listeners are up and the spool is not refusing mail for lack of
	// space).
	Ready() bool
}

// NotReadyReasoner may be implemented by a Backend to say why it is not
// ready: /readyz then answers 503 {"error": "not ready: " + reason,
// "detail": detail} instead of the generic reply.
type NotReadyReasoner interface {
	// NotReadyReason returns a short reason (such as "the spool is low on
	// disk space") and a sentence of detail, or "" when none is known.
	NotReadyReason() (reason, detail string)
}

// DegradedReasoner may be implemented by a Backend that can be ready yet
// degraded (a cluster node applying its fallback share of the shared
// limits while Redis is unreachable): /readyz then answers 200
// "ready, degraded: " + reason, with the detail on a second line.
type DegradedReasoner interface {
	Degraded() (reason, detail string)
}

// ErrNotFound is returned by a Backend for an unknown message id or
// suspension; the API answers 404.
var ErrNotFound = errors.New("not found")

// RequestError is a Backend's refusal of a request that is the client's to
// fix or retry, as opposed to a failure of the server. A refused message
// carries the SMTP reply an SMTP client would have got for it: 5xx is a
// permanent refusal (HTTP 422), 4xx a temporary one (HTTP 503, retry
// later). Without a reply it is a plain bad request (HTTP 400) that
// Message explains.
type RequestError struct {
	Reply   *smtpreply.Reply
	Message string
}

// Refusal is the error for a request the reply refuses.
func Refusal(r smtpreply.Reply) *RequestError { return &RequestError{Reply: &r} }

// BadRequest is the error for a request the client must fix.
func BadRequest(msg string) *RequestError { return &RequestError{Message: msg} }

func (e *RequestError) Error() string {
	if e.Reply != nil {
		return e.Reply.String()
	}
	return e.Message
}

// temporary reports a refusal worth retrying as is.
func (e *RequestError) temporary() bool { return e.Reply != nil && e.Reply.Temporary() }

// MarshalJSON is the error's "detail" in a reply of the API: the SMTP
// reply's parts, {"code": 550, "enhanced": "5.7.1", "message": "..."}.
func (e *RequestError) MarshalJSON() ([]byte, error) {
	d := struct {
		Code     int    `json:"code,omitempty"`
		Enhanced string `json:"enhanced,omitempty"`
		Message  string `json:"message"`
	}{Message: e.Message}
	if e.Reply != nil {
		d.Code, d.Enhanced, d.Message = e.Reply.Code, e.Reply.Enhanced, e.Reply.Text
	}
	return json.Marshal(d)
}

// Message is one message to enqueue: one per recipient of an injection.
type Message struct {
	From       string   // envelope sender
	Recipients []string // envelope recipients
	Body       []byte   // the RFC 5322 message, CRLF line endings; read-only
	Tenant     string   // "" lets the message rules and tenant header decide
	Campaign   string   // "" lets the message rules and campaign header decide
	ClientIP   string   // the HTTP client, for rules and the delivery log
	// DSN and RcptDSN are the RFC 3461 parameters, as MAIL FROM and each
	// RCPT TO would carry them; RcptDSN is beside Recipients, or empty.
	DSN     dsnparams.Mail
	RcptDSN []dsnparams.Rcpt
	// Refused is set by Enqueue: the recipients (by index in Recipients)
	// it did not store while it stored the others, each with its refusal
	// (550 5.7.1 for a recipient on the suppression list).
	Refused map[int]error
}

// QueueGroup is one group of queued messages.
type QueueGroup struct {
	Key            string    `json:"key"`   // the site, pool or tenant
	Count          int       `json:"count"` // queued messages (one with recipients at two sites counts at both)
	Oldest         time.Time `json:"oldest,omitzero"`
	SuspendedUntil time.Time `json:"suspended_until,omitzero"`
	SuspendReason  string    `json:"suspend_reason,omitempty"`
}

// Recipient statuses in RecipientInfo.Status.
const (
	RecipientQueued    = "queued"    // not yet tried
	RecipientDeferred  = "deferred"  // tried, failed temporarily, will be retried
	RecipientDelivered = "delivered" // done
	RecipientBounced   = "bounced"   // failed permanently
	RecipientExpired   = "expired"   // given up after retry.maxAge
)

// MessageInfo describes one queued message.
type MessageInfo struct {
	ID          string          `json:"id"`
	From        string          `json:"from"`
	Recipients  []RecipientInfo `json:"recipients"`
	Received    time.Time       `json:"received"`
	Attempts    int             `json:"attempts"`
	NextAttempt time.Time       `json:"next_attempt,omitzero"`
	Size        int64           `json:"size"`
	Tenant      string          `json:"tenant,omitempty"`
	Campaign    string          `json:"campaign,omitempty"`
	Pool        string          `json:"pool,omitempty"`
}

// RecipientInfo is the state of one recipient of a message.
type RecipientInfo struct {
	Address string `json:"address"`
	Status  string `json:"status"` // one of the Recipient* constants
	Site    string `json:"site,omitempty"`
	// Provider is the provider profile of the site ("" when it matches
	// none or has not been tried yet); Source the egress source of the
	// recipient's last attempt, when the running process saw it.
	Provider  string `json:"provider,omitempty"`
	Source    string `json:"source,omitempty"`
	LastReply string `json:"last_reply,omitempty"`
	// Category is the bounce category of the last reply (docs/categories.md),
	// for a recipient deferred or failed.
	Category string `json:"category,omitempty"`
}

// Scopes a suspension applies to.
var Scopes = []string{"site", "source", "provider", "tenant", "campaign"}

// Suspension stops deliveries in a scope ("site", "source", "provider",
// "tenant" or "campaign") for the key (a site name, a source name or
// "SITE/SOURCE", a provider profile's name or "PROVIDER/SOURCE", a tenant,
// a campaign) until Until.
type Suspension struct {
	Scope  string    `json:"scope"`
	Key    string    `json:"key"`
	Until  time.Time `json:"until"`
	Reason string    `json:"reason,omitempty"`
	// Origin says who suspended: "admin" for the API, else the name of the
	// response rule.
	Origin string `json:"origin,omitempty"`
}

// ReloadResult is the outcome of a reload.
type ReloadResult struct {
	Generation uint64   `json:"generation"` // in force after the reload
	OK         bool     `json:"ok"`
	Errors     []string `json:"errors,omitempty"` // "file:line:col: message" when refused
}

// Status describes the running server.
type Status struct {
	Version       string           `json:"version,omitempty"`
	Hostname      string           `json:"hostname,omitempty"`
	Generation    uint64           `json:"generation"`
	Started       time.Time        `json:"started"`
	UptimeSeconds float64          `json:"uptime_seconds"`
	Ready         bool             `json:"ready"` // set by the API from Backend.Ready
	QueueSize     int              `json:"queue_size"`
	Suspensions   int              `json:"suspensions"`
	Listeners     []ListenerStatus `json:"listeners"`
	ConfigFiles   []string         `json:"config_files,omitempty"`
	LastReload    time.Time        `json:"last_reload,omitzero"`
	// LastReloadErrors are the errors of the last reload when it was
	// refused (the previous configuration stays in force).
	LastReloadErrors []string `json:"last_reload_errors,omitempty"`
}

// ListenerStatus is one SMTP listener.
type ListenerStatus struct {
	Name        string `json:"name"`
	Addr        string `json:"addr"`
	Mode        string `json:"mode"`
	Connections int    `json:"connections"`
}
