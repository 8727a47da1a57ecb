package delivery

import (
	"context"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/delivery/smtpclient"
)

// lane is a site seen from one egress source: the unit of shaping. Its
// own limits (maxConnections, messageRate, connectionRate and
// maxMessagesPerConnection of its effective profile) apply beside those of
// its provider, if it has one (provider.go).
type lane struct {
	site   *site
	source string
	pool   string
	key    string // site key + "/" + source: how state and suspensions name it

	mu     sync.Mutex
	hop    *hop
	queue  []*job
	active int // open or opening connections
	idle   int // connections waiting for a job
	signal chan struct{}
	// refresh is closed (and replaced) to wake every idle connection, so
	// that each re-checks the limits after a reload.
	refresh  chan struct{}
	gen      uint64
	eff      *config.Effective
	prov     *provider // nil: the destination matches no provider profile
	susKeys  []string  // the suspension keys that hold this lane
	msgLim   *rate.Limiter
	connLim  *rate.Limiter
	lastHost string
	// Message tokens taken from the cluster's buckets in a batch and not
	// used yet, usable from sharedAt (shared.go).
	sharedTokens int
	sharedAt     time.Time
	// sharedFetch is closed when the batch being fetched from the cluster
	// arrives; nil when none is: one round trip refills the lane's
	// tokens, and its other connections wait for it (shared.go).
	sharedFetch chan struct{}

	thr          throttle // a rule's slow-down of this lane
	backoff      int      // consecutive throttling replies no rule acted on
	connFailures int      // consecutive connection failures
	// plainUntil ends the hour of clear text after an opportunistic
	// handshake failed with plainCause (conn.go; TLS-RPT counts the
	// hour's sessions as that failure, tlsrpt.go).
	plainUntil time.Time
	plainCause error
	// secs is each open connection's certificate check (mtasts.go).
	secs map[*smtpclient.Conn]*connSecurity
	// daneMX: a domain with a secure MX RRset came to the lane, so DANE
	// is looked for at its hosts (dane.go).
	daneMX bool

	// Parked messages (overflow.go).
	overflow   []string // IDs in arrival order
	inTransit  int      // released, not arrived yet
	releasedAt time.Time
}

func newLane(s *site, h *hop, source, pool string) *lane {
	l := &lane{site: s, hop: h, source: source, pool: pool, key: s.key + "/" + source,
		signal: make(chan struct{}, 1), refresh: make(chan struct{})}
	l.susKeys = l.suspensionKeys("")
	return l
}

// suspensionKeys lists the keys of Scheduler.suspended that hold the lane:
// its site, its source anywhere, its source at the site, its provider and
// its source at the provider.
func (l *lane) suspensionKeys(provider string) []string {
	keys := []string{ScopeSite + ":" + l.site.key, ScopeSource + ":" + l.source, ScopeSource + ":" + l.key}
	if provider != "" {
		keys = append(keys, ScopeProvider+":"+provider, ScopeProvider+":"+providerKey(provider, l.source))
	}
	return keys
}

// profile returns the lane's effective profile, re-resolving it when the
// policy generation changed (a reload) and adjusting the token buckets.
func (l *lane) profile() *config.Effective {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.profileLocked()
}

func (l *lane) profileLocked() *config.Effective {
	e := l.site.sched
	pol := e.opts.Policy()
	if l.eff != nil && l.gen == pol.Generation {
		return l.eff
	}
	var eff *config.Effective
	var err error
	if l.hop.static {
		// A static route (smarthost) carries many domains: its profile is
		// the one matching its host (relay defaults when none does), not
		// that of whichever domain came first.
		eff, err = pol.Config.ResolveRoute(l.hop.hosts[0], l.source)
	} else {
		eff, err = pol.Config.Resolve(l.hop.domain, l.hop.hosts, l.source)
	}
	if err != nil {
		e.opts.Logger.Error("resolve profile", "site", l.site.key, "err", err)
		return l.eff
	}
	l.eff, l.gen = eff, pol.Generation
	l.prov = nil
	if eff.Provider != "" {
		l.prov = e.providerFor(eff.Provider, l.source, &eff.ProviderLimits)
	}
	l.susKeys = l.suspensionKeys(eff.Provider)
	l.tuneLocked(e.opts.Now())
	return eff
}

// tuneLocked sets the token buckets from the profile and any throttle.
func (l *lane) tuneLocked(now time.Time) {
	r := l.eff.MessageRate()
	setLimiter(&l.msgLim, *l.thr.rateOr(&r, now), now)
	setLimiter(&l.connLim, l.eff.ConnectionRate(), now)
}

// setLimiter makes lim a token bucket for r. The burst is a tenth of a
// second's worth (at least one), so a rate is kept over any window of a
// second or more. A change takes effect at now, the scheduler's clock
// (SetLimit and SetBurst would read the wall clock).
func setLimiter(lim **rate.Limiter, r config.Rate, now time.Time) {
	limit := rate.Limit(r.PerSecond())
	burst := max(1, int(r.PerSecond()/10))
	if *lim == nil {
		*lim = rate.NewLimiter(limit, burst)
		return
	}
	if (*lim).Limit() != limit || (*lim).Burst() != burst {
		(*lim).SetLimitAt(now, limit)
		(*lim).SetBurstAt(now, burst)
	}
}

// capLocked is the connection cap in force: the profile's, or a lower one
// set by a throttle rule.
func (l *lane) capLocked(now time.Time) int {
	return l.thr.capOr(l.eff.MaxConnections(), now)
}

// wakeIdleLocked makes every idle connection re-check the limits.
func (l *lane) wakeIdleLocked() {
	close(l.refresh)
	l.refresh = make(chan struct{})
}

// push queues a job and opens a connection for it if the limits allow.
func (l *lane) push(j *job) {
	j.lane = l
	e := l.site.sched
	now := e.opts.Now()
	l.mu.Lock()
	l.hop = j.hop // the latest resolution of the site's MX hosts
	l.daneMX = l.daneMX || j.hop.secure
	l.profileLocked()
	keys := l.susKeys
	l.mu.Unlock()
	if s, ok := e.suspendedAny(keys, now); ok {
		j.holdAll(s)
		return
	}
	l.mu.Lock()
	l.arrivedLocked()
	if len(l.queue) >= maxLaneQueue {
		// The backlog waits in the spool (overflow.go), so one busy site
		// cannot fill memory or starve the others.
		l.parkLocked(j, now)
		l.mu.Unlock()
		j.park()
		return
	}
	l.enqueueLocked(j)
	l.spawnLocked(now)
	l.mu.Unlock()
	l.notify()
}

// enqueueLocked queues a job behind every job of the same or higher
// priority (message rules set it, 0-9), so urgent mail overtakes a bulk
// backlog at a busy site; equal priorities stay first in, first out.
func (l *lane) enqueueLocked(j *job) {
	p := j.att.env.Priority
	i := len(l.queue)
	for i > 0 && l.queue[i-1].att.env.Priority < p {
		i--
	}
	l.queue = slices.Insert(l.queue, i, j)
}

func (l *lane) notify() {
	select {
	case l.signal <- struct{}{}:
	default:
	}
}

// spawnLocked opens connections while there are more queued jobs than
// idle connections and both the lane's cap and its provider's allow.
func (l *lane) spawnLocked(now time.Time) {
	e := l.site.sched
	for l.active < l.capLocked(now) && len(l.queue) > l.idle {
		if l.prov != nil && !l.prov.acquire(l, now) {
			return // the provider wakes the lane when a slot frees
		}
		l.active++
		e.wg.Add(1)
		go func(p *provider) {
			defer e.wg.Done()
			l.work(p)
		}(l.prov)
	}
}

// suspension reports the suspension holding the lane, if any: its site's,
// its source's, its own, its provider's (rule or operator made).
func (l *lane) suspension(now time.Time) (suspension, bool) {
	l.mu.Lock()
	keys := l.susKeys
	l.mu.Unlock()
	return l.site.sched.suspendedAny(keys, now)
}

// drainIfSuspended hands every queued job back to the spool, due when the
// suspension ends: a suspended lane holds nothing in memory.
func (l *lane) drainIfSuspended() {
	now := l.site.sched.opts.Now()
	s, ok := l.suspension(now)
	if !ok {
		return
	}
	l.mu.Lock()
	jobs := l.queue
	l.queue = nil
	// Parked messages are due when their lease ends and are deferred then.
	l.overflow, l.inTransit = nil, 0
	l.mu.Unlock()
	for _, j := range jobs {
		j.holdAll(s)
	}
}

// next waits for a job for this connection. It returns nil when the
// connection should close: idle too long, the lane is suspended, or the
// lane's or the provider's cap was lowered below the connections open.
func (l *lane) next(ctx context.Context, idle time.Duration) *job {
	timer := time.NewTimer(idle)
	defer timer.Stop()
	for {
		now := l.site.sched.opts.Now()
		if _, ok := l.suspension(now); ok {
			return nil
		}
		l.mu.Lock()
		l.profileLocked()
		if l.thr.expired(now) {
			// A rule's slow-down has run out: back to the profile's limits.
			l.thr = throttle{}
			l.tuneLocked(now)
		}
		if l.active > l.capLocked(now) || (l.prov != nil && l.prov.over(now)) {
			l.mu.Unlock()
			return nil
		}
		if len(l.queue) > 0 {
			j := l.queue[0]
			l.queue[0] = nil
			l.queue = l.queue[1:]
			more := len(l.queue) > 0
			parked := l.releaseLocked(now)
			l.mu.Unlock()
			l.release(parked, now)
			if more {
				l.notify()
			}
			return j
		}
		parked := l.releaseLocked(now)
		var wanted <-chan struct{}
		if l.prov != nil {
			var busy bool
			if busy, wanted = l.prov.contended(); busy {
				// Another site of the provider waits for a slot: an idle
				// connection gives its slot up instead of holding it.
				l.mu.Unlock()
				l.release(parked, now)
				return nil
			}
		}
		l.idle++
		refresh := l.refresh
		l.mu.Unlock()
		l.release(parked, now)
		var stop bool
		select {
		case <-l.signal:
		case <-refresh:
		case <-wanted: // nil without a provider: never ready
		case <-timer.C:
			stop = true
		case <-ctx.Done():
			stop = true
		}
		l.mu.Lock()
		l.idle--
		l.mu.Unlock()
		if stop {
			return nil
		}
	}
}
