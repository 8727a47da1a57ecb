package reception

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/cuemta/cuemta/config"
	smtp "github.com/cuemta/cuemta/reception/internal/smtpd"
)

// Rates are the reception rate limits in force (config reception.limits):
// messages per minute and recipients per message, per client IP, per
// authenticated user and per tenant. A zero field is no limit. The
// numbers come from the Server's config snapshot; the counts live in the
// Guard, so a reload changes the numbers and keeps the counts.
type Rates struct {
	ClientIP, User, Tenant config.ReceptionRate
	// ClientIPExceptions are the networks the ClientIP limits skip.
	ClientIPExceptions []netip.Prefix
}

// NewRates converts the config's reception.limits.
func NewRates(c config.ReceptionLimits) (Rates, error) {
	r := Rates{ClientIP: c.ClientIP, User: c.User, Tenant: c.Tenant}
	for _, s := range c.ClientIPExceptions {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return Rates{}, fmt.Errorf("reception.limits.clientIPExceptions: %w", err)
		}
		r.ClientIPExceptions = append(r.ClientIPExceptions, config.UnmapPrefix(p))
	}
	return r, nil
}

// clientIPApplies reports whether the ClientIP limits count ip.
func (r *Rates) clientIPApplies(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	for _, p := range r.ClientIPExceptions {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// Kinds of limit and key, as the reception_limited metric labels them.
const (
	limitMessages    = "messages"
	limitRecipients  = "recipients"
	limitConnections = "connections"
	keyClientIP      = "client_ip"
	keyUser          = "user"
	keyTenant        = "tenant"
	keyListener      = "listener"
)

// Replies of the rate limits. Postfix answers its message rate limit with
// "450 4.7.1 Error: too much mail from ADDR" at MAIL FROM: RFC 5321
// §4.2.2 450 (action not taken, try again) with RFC 3463 X.7.1 (delivery
// not authorized), which a client retries later with the mail kept.
var (
	errRateClientIP  = newReply(450, "4.7.1", "Too much mail from this client, try again later")
	errRateUser      = newReply(450, "4.7.1", "Too much mail from this user, try again later")
	errRcptsClientIP = newReply(452, "4.5.3", "Too many recipients for this client") // RFC 5321 §4.5.3.1.10
	errRcptsUser     = newReply(452, "4.5.3", "Too many recipients for this user")   // RFC 5321 §4.5.3.1.10
)

// The tenant is known only once the message rules have run, at the end
// of DATA, where a temporary refusal keeps the message with the client.
var (
	replyRateTenant  = Reply{Code: 450, Enhanced: "4.7.1", Text: "Too much mail for this tenant, try again later"} // RFC 5321 §4.3.2 450 after DATA
	replyRcptsTenant = Reply{Code: 452, Enhanced: "4.5.3", Text: "Too many recipients for this tenant"}            // RFC 3463 X.5.3
)

// rateTable holds one token bucket per key of one kind. A bucket of
// messagesPerMinute holds that many tokens and refills in a minute, so a
// bucket idle for a minute is full, no different from a new one, and is
// dropped; the table also has a cap (the least recently used bucket
// makes room), so memory stays bounded.
type rateTable struct {
	mu        sync.Mutex
	max       int
	m         map[string]*bucket
	nextSweep time.Time
}

type bucket struct {
	lim       *rate.Limiter
	perMinute int // the limit lim was last set to
	last      time.Time
}

// rateIdle is how long an unused bucket takes to fill again.
const rateIdle = time.Minute

func newRateTable() *rateTable {
	return &rateTable{max: maxThrottleEntries, m: map[string]*bucket{}}
}

// reserve takes one token from key's bucket at perMinute (> 0), or
// returns nil when the bucket is empty. The caller cancels the
// reservation if another limit refuses the same message.
func (t *rateTable) reserve(key string, perMinute int, now time.Time) *rate.Reservation {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !now.Before(t.nextSweep) {
		t.sweep(now)
		t.nextSweep = now.Add(rateIdle)
	}
	b := t.m[key]
	limit := rate.Limit(float64(perMinute) / time.Minute.Seconds())
	switch {
	case b == nil:
		if len(t.m) >= t.max {
			t.evictOldest()
		}
		b = &bucket{lim: rate.NewLimiter(limit, perMinute), perMinute: perMinute}
		t.m[key] = b
	case b.perMinute != perMinute:
		// A reload changed the limit: the tokens left are kept.
		b.lim.SetLimitAt(now, limit)
		b.lim.SetBurstAt(now, perMinute)
		b.perMinute = perMinute
	}
	b.last = now
	if b.lim.TokensAt(now) < 1 {
		return nil
	}
	return b.lim.ReserveN(now, 1) // immediate: a token is there
}

func (t *rateTable) sweep(now time.Time) {
	for k, b := range t.m {
		if now.Sub(b.last) >= rateIdle {
			delete(t.m, k)
		}
	}
}

func (t *rateTable) evictOldest() {
	var oldest string
	var at time.Time
	for k, b := range t.m {
		if oldest == "" || b.last.Before(at) {
			oldest, at = k, b.last
		}
	}
	delete(t.m, oldest)
}

func (t *rateTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// admitMessage applies the ClientIP and User message rates at MAIL FROM:
// one message counts against both, or against neither when either refuses.
func (g *Guard) admitMessage(r *Rates, ip netip.Addr, user string) *smtp.SMTPError {
	now := g.now()
	var taken []*rate.Reservation
	refuse := func(kind string, reply *smtp.SMTPError) *smtp.SMTPError {
		for _, res := range taken {
			res.CancelAt(now)
		}
		g.limited(limitMessages, kind)
		return reply
	}
	if n := r.ClientIP.MessagesPerMinute; n > 0 && r.clientIPApplies(ip) {
		res := g.rates[keyClientIP].reserve(limitKey(ip), n, now)
		if res == nil {
			return refuse(keyClientIP, errRateClientIP)
		}
		taken = append(taken, res)
	}
	if n := r.User.MessagesPerMinute; n > 0 && user != "" {
		res := g.rates[keyUser].reserve(boundedKey(user), n, now)
		if res == nil {
			return refuse(keyUser, errRateUser)
		}
	}
	return nil
}

// recipientLimit is the lowest recipients-per-message limit that applies
// to the session beside the listener's max, and the reply for it; a nil
// reply means the listener's limit is the lowest.
func (r *Rates) recipientLimit(max int, ip netip.Addr, user string) (int, *smtp.SMTPError, string) {
	var reply *smtp.SMTPError
	var kind string
	if n := r.ClientIP.RecipientsPerMessage; n > 0 && n < max && r.clientIPApplies(ip) {
		max, reply, kind = n, errRcptsClientIP, keyClientIP
	}
	if n := r.User.RecipientsPerMessage; n > 0 && n < max && user != "" {
		max, reply, kind = n, errRcptsUser, keyUser
	}
	return max, reply, kind
}

// AdmitTenant applies the tenant limits to a message of rcpts recipients,
// once the message rules have named its tenant (at the end of DATA). It
// returns nil, or the *Reply refusing the message: 452 4.5.3 past
// recipientsPerMessage, 450 4.7.1 past messagesPerMinute. A message without
// a tenant is not limited.
func (g *Guard) AdmitTenant(limit config.ReceptionRate, tenant string, rcpts int) error {
	if tenant == "" {
		return nil
	}
	if n := limit.RecipientsPerMessage; n > 0 && rcpts > n {
		g.limited(limitRecipients, keyTenant)
		r := replyRcptsTenant
		r.Cause = fmt.Errorf("tenant %q: %d recipients, limit %d", tenant, rcpts, n)
		return &r
	}
	if n := limit.MessagesPerMinute; n > 0 {
		if g.rates[keyTenant].reserve(boundedKey(tenant), n, g.now()) == nil {
			g.limited(limitMessages, keyTenant)
			r := replyRateTenant
			r.Cause = fmt.Errorf("tenant %q: over %d messages a minute", tenant, n)
			return &r
		}
	}
	return nil
}
