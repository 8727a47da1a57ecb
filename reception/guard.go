package reception

import (
	"runtime"
	"sync"
	"time"
)

// Guard is the reception state that must outlive any one Server: the AUTH
// failure counts per client and per user, the bcrypt slots, and the
// rate-limit buckets per client IP, user and tenant. The engine makes one
// for the process and gives it, through Policy.Guard, to every Server of
// every listener and config snapshot, so a client escapes no limit by
// reconnecting, changing listener or waiting for a reload. Every table in
// it is bounded (entries expire, and each has a cap), so what a flood of
// clients costs in memory is bounded too. A Guard is safe for concurrent
// use.
type Guard struct {
	now      func() time.Time
	rec      Recorder
	bcrypt   chan struct{} // one token per concurrent bcrypt comparison
	authWait time.Duration
	auth     *authThrottle
	rates    map[string]*rateTable // by keyClientIP, keyUser, keyTenant
}

// GuardOptions configure NewGuard; the zero value is the production
// setting.
type GuardOptions struct {
	// Now is the clock of the throttles and rate limits; nil: time.Now.
	Now func() time.Time
	// Recorder counts refusals and AUTH failures (metrics); nil: none.
	Recorder Recorder
	// BcryptSlots bounds concurrent bcrypt comparisons across every
	// listener; 0: max(1, GOMAXPROCS/2), so a flood of AUTH leaves half
	// the CPUs to reception, delivery and the spool.
	BcryptSlots int
	// BcryptWait bounds how long an AUTH waits for a slot before it is
	// answered 454 4.7.0; 0: defaultBcryptWait.
	BcryptWait time.Duration
}

// defaultBcryptWait: a comparison at the default cost takes tens of
// milliseconds, so 5 s of waiting means a queue of ~100 attempts per slot;
// past that the server is being flooded and the client should come back.
const defaultBcryptWait = 5 * time.Second

// Recorder is told of each refusal by a limit and each AUTH outcome that
// is not a success; *metrics.Metrics implements it.
type Recorder interface {
	// ReceptionLimited counts a refusal by limit ("messages",
	// "recipients", "connections") and key ("client_ip", "user",
	// "tenant", "listener").
	ReceptionLimited(limit, key string)
	// AuthFailed counts an AUTH attempt whose credentials were wrong.
	AuthFailed()
	// AuthRefused counts an AUTH attempt refused without a password
	// check, by reason ("client_ip", "user", "connection", "busy").
	AuthRefused(reason string)
}

// NewGuard returns an empty Guard.
func NewGuard(o GuardOptions) *Guard {
	g := &Guard{now: o.Now, rec: o.Recorder, authWait: o.BcryptWait, auth: newAuthThrottle(),
		rates: map[string]*rateTable{keyClientIP: newRateTable(), keyUser: newRateTable(), keyTenant: newRateTable()}}
	if g.now == nil {
		g.now = time.Now
	}
	if g.authWait <= 0 {
		g.authWait = defaultBcryptWait
	}
	slots := o.BcryptSlots
	if slots <= 0 {
		slots = max(1, runtime.GOMAXPROCS(0)/2)
	}
	g.bcrypt = make(chan struct{}, slots)
	return g
}

func (g *Guard) limited(limit, key string) {
	if g.rec != nil {
		g.rec.ReceptionLimited(limit, key)
	}
}

func (g *Guard) authFailed() {
	if g.rec != nil {
		g.rec.AuthFailed()
	}
}

func (g *Guard) authRefused(reason string) {
	if g.rec != nil {
		g.rec.AuthRefused(reason)
	}
}

// ConnCounts counts one listener's open connections, in total and per
// client (limitKey), across every Server a reload makes for it: the
// engine owns one per bound socket and passes it as Policy.Conns, so the
// connections of a draining Server still count against the limits of the
// one that replaced it. The limits themselves come from each Server's
// config. Safe for concurrent use.
type ConnCounts struct {
	mu    sync.Mutex
	total int
	perIP map[string]int
}

// NewConnCounts returns counts of zero.
func NewConnCounts() *ConnCounts { return &ConnCounts{perIP: map[string]int{}} }

// acquire counts a connection from key unless that would pass a limit;
// it returns the counts found either way.
func (c *ConnCounts) acquire(key string, maxTotal, maxPerIP int) (ok bool, total, fromIP int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	total, fromIP = c.total, c.perIP[key]
	if total >= maxTotal || fromIP >= maxPerIP {
		return false, total, fromIP
	}
	c.total++
	c.perIP[key]++
	return true, total, fromIP
}

func (c *ConnCounts) release(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total--
	if c.perIP[key]--; c.perIP[key] <= 0 {
		delete(c.perIP, key)
	}
}

// Open returns the number of connections counted.
func (c *ConnCounts) Open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}
