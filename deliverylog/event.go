package deliverylog

import "time"

// Event types: the value of Event.Type.
const (
	TypeReception  = "reception"  // a message was accepted and stored (SMTP or HTTP injection)
	TypeDelivery   = "delivery"   // one recipient was delivered (2xx at the end of DATA)
	TypeTransient  = "transient"  // one attempt for a recipient failed temporarily; it stays queued
	TypeBounce     = "bounce"     // a recipient failed permanently (5xx, a rule, or an operator)
	TypeExpiry     = "expiry"     // a recipient was given up after retry.maxAge
	TypeSuspension = "suspension" // a site, source, tenant or campaign was suspended or resumed
	TypeAdmin      = "admin"      // an operator acted through the admin API
	// TypeSuppression: a recipient was refused because it is on the
	// suppression list (at RCPT, at intake or at injection), or a bounce
	// added it to the list (Action "add").
	TypeSuppression = "suppression"
	TypeComplaint   = "complaint" // a recipient complained (an ARF abuse or fraud report)
	// TypeReputation: a DNS blocklist started (Action "listed") or
	// stopped (Action "delisted") listing one of our sources or domains.
	TypeReputation = "reputation"
)

// Event is one line of the delivery log. Empty fields are omitted, so each
// type carries only what applies to it; README.md lists which.
type Event struct {
	Time      time.Time `json:"time"` // set by Log when zero; written as RFC 3339 with nanoseconds, UTC
	Type      string    `json:"type"`
	MessageID string    `json:"message_id,omitempty"`
	From      string    `json:"from,omitempty"`
	Rcpt      string    `json:"rcpt,omitempty"`
	Rcpts     []string  `json:"rcpts,omitempty"`
	Site      string    `json:"site,omitempty"`
	MX        string    `json:"mx,omitempty"`
	Source    string    `json:"source,omitempty"`
	Pool      string    `json:"pool,omitempty"`
	Tenant    string    `json:"tenant,omitempty"`
	Campaign  string    `json:"campaign,omitempty"`
	Reply     string    `json:"reply,omitempty"`
	Class     string    `json:"class,omitempty"`
	Rule      string    `json:"rule,omitempty"`
	// Category is why a transient, bounce or expiry happened: one of
	// package category's names (docs/categories.md).
	Category   string `json:"category,omitempty"`
	Attempt    int    `json:"attempt,omitempty"`
	DurationMS int64  `json:"duration_ms,omitempty"`
	QueueMS    int64  `json:"queue_ms,omitempty"`
	Size       int64  `json:"size,omitempty"`
	Listener   string `json:"listener,omitempty"`
	ClientIP   string `json:"client_ip,omitempty"`
	Generation uint64 `json:"generation,omitempty"`
	// The TLS of the delivery's connection: its version ("TLS 1.3"),
	// cipher suite, and what authenticated the server ("none",
	// "system-roots" or "dane"); absent when no connection carried the
	// message.
	TLSVersion  string `json:"tls_version,omitempty"`
	TLSCipher   string `json:"tls_cipher,omitempty"`
	TLSVerified string `json:"tls_verified,omitempty"`
	// The recipient domain's TLS policy that applied ("mta-sts/enforce",
	// "mta-sts/testing"; absent: none) and why the session failed it
	// (delivered all the same under testing, deferred under enforce).
	TLSPolicy  string `json:"tls_policy,omitempty"`
	TLSFailure string `json:"tls_failure,omitempty"`
	// DKIM is the signatures put on the message at reception, in the
	// order applied (reception events, and the delivery, transient,
	// bounce and expiry events of delivery attempts and operator bounces).
	DKIM []DKIMSignature `json:"dkim,omitempty"`
	// Tags are the stage rules' tags of a message received over SMTP
	// (reception events; the X-Cuemta-Tags field of the stored message).
	Tags   []string `json:"tags,omitempty"`
	Action string   `json:"action,omitempty"`
	Actor  string   `json:"actor,omitempty"`
	Reason string   `json:"reason,omitempty"`
	// Addr, Domain and List are a reputation event's source address or
	// sending domain and the list's zone.
	Addr   string `json:"addr,omitempty"`
	Domain string `json:"domain,omitempty"`
	List   string `json:"list,omitempty"`
}

// DKIMSignature is one DKIM signature of a message: the key's name, its
// d=, s= and a= tags, and how d= aligned with the From: header's domain
// when the message was signed (RFC 7489 §3.1.1: "strict" the same
// domain, "relaxed" the same organisational domain, "none"). A message
// stored by a version that recorded only the key name has the rest of
// the fields of the key of that name in the current config, if any, and
// no aligned.
type DKIMSignature struct {
	Key       string `json:"key"`
	Domain    string `json:"domain,omitempty"`
	Selector  string `json:"selector,omitempty"`
	Algorithm string `json:"algorithm,omitempty"`
	Aligned   string `json:"aligned,omitempty"`
}

// Millis converts a duration to the whole milliseconds of duration_ms and
// queue_ms, rounding up so that a non-zero duration is never written as 0
// (which would omit the field).
func Millis(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}
