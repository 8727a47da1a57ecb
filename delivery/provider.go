package delivery

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/cuemta/cuemta/config"
)

// A provider is the profile a destination matches by an MX "*.suffix"
// pattern (config.LevelProvider): every MX set under its patterns is one
// of its sites. Receiving providers enforce their limits per sending IP
// across all their sites (every Microsoft 365 tenant is a site of its
// own, yet they share one edge), so one egress source shares one provider
// entry between all its lanes to that provider's sites:
//
//   - a connection cap (provider.maxConnections): a lane takes a slot for
//     each connection it opens and gives it back when the connection
//     closes; a lane refused a slot waits in the provider's queue and is
//     woken, in order, when one frees;
//   - message and connection rates (provider.messageRate and
//     connectionRate), token buckets that every connection of every lane
//     draws from beside its own lane's buckets;
//   - a throttle (a rule's `throttle: {scope: "provider"}`) that lowers
//     the cap and the message rate for a while.
//
// Provider-scope suspensions are kept with the others (Scheduler.suspended,
// keyed "provider:NAME/SOURCE"). A destination that matches no provider
// profile has no provider entry, and its lanes are limited by their own
// settings alone.
type provider struct {
	sched        *Scheduler // its clock times the rate waits
	name, source string

	mu      sync.Mutex
	limits  config.ProviderLimits
	conns   int // connections open or opening, all sites together
	waiting []*lane
	// wanted is closed (and replaced) when a lane starts waiting, so that
	// idle connections of other lanes give their slots up at once.
	wanted  chan struct{}
	msgLim  *rate.Limiter // nil: no provider message rate
	connLim *rate.Limiter // nil: no provider connection rate
	thr     throttle
}

// providerKey names a provider entry: the provider and the source.
func providerKey(name, source string) string { return name + "/" + source }

// providerFor returns the scheduler's entry for a provider and source,
// creating it, and brings its limits up to date with the profile's.
func (e *Scheduler) providerFor(name, source string, limits *config.ProviderLimits) *provider {
	key := providerKey(name, source)
	e.mu.Lock()
	p, ok := e.providers[key]
	if !ok {
		p = &provider{sched: e, name: name, source: source, wanted: make(chan struct{})}
		e.providers[key] = p
	}
	restored, hasThrottle := e.restoredThrottles[ScopeProvider+":"+key]
	delete(e.restoredThrottles, ScopeProvider+":"+key)
	e.mu.Unlock()
	p.mu.Lock()
	if hasThrottle {
		p.thr = restored
	}
	p.limits = config.ProviderLimits{}
	if limits != nil {
		p.limits = *limits
	}
	p.tuneLocked(e.opts.Now())
	p.mu.Unlock()
	return p
}

// tuneLocked sets the provider's token buckets from its limits and any
// throttle in force.
func (p *provider) tuneLocked(now time.Time) {
	if r := p.thr.rateOr(p.limits.MessageRate, now); r != nil {
		setLimiter(&p.msgLim, *r, now)
	} else {
		p.msgLim = nil
	}
	if r := p.limits.ConnectionRate; r != nil {
		setLimiter(&p.connLim, *r, now)
	} else {
		p.connLim = nil
	}
}

// capLocked is the provider's connection cap for this source, 0 for none.
func (p *provider) capLocked(now time.Time) int {
	c := 0
	if p.limits.MaxConnections != nil {
		c = *p.limits.MaxConnections
	}
	return p.thr.capOr(c, now)
}

// acquire takes a connection slot for l, or queues l to be woken when a
// slot frees. It is called with l.mu held (lane before provider is the
// lock order).
func (p *provider) acquire(l *lane, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.capLocked(now); c > 0 && p.conns >= c {
		for _, w := range p.waiting {
			if w == l {
				return false
			}
		}
		p.waiting = append(p.waiting, l)
		close(p.wanted)
		p.wanted = make(chan struct{})
		return false
	}
	p.conns++
	return true
}

// release gives back a slot and lets the waiting lanes, oldest first,
// try again. It must be called without any lane's lock held.
func (p *provider) release(now time.Time) {
	p.mu.Lock()
	p.conns--
	waiting := p.waiting
	p.waiting = nil
	p.mu.Unlock()
	for _, w := range waiting {
		w.mu.Lock()
		if w.eff != nil {
			w.spawnLocked(now)
		}
		w.mu.Unlock()
	}
}

// contended returns whether a lane waits for a slot, and a channel that
// is closed when one starts to: an idle connection then closes rather
// than keep a slot another site needs.
func (p *provider) contended() (bool, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.waiting) > 0, p.wanted
}

// over reports whether the provider has more connections open than its
// cap allows (a throttle lowered it): the connection asking should close.
func (p *provider) over(now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.capLocked(now)
	return c > 0 && p.conns > c
}

// waitMessage waits for the provider's message rate, if it has one, on
// the scheduler's clock.
func (p *provider) waitMessage(ctx context.Context) error {
	now := p.sched.opts.Now()
	p.mu.Lock()
	if p.thr.expired(now) {
		p.thr = throttle{}
		p.tuneLocked(now)
	}
	lim := p.msgLim
	p.mu.Unlock()
	return p.sched.waitToken(ctx, lim)
}

// waitConnect waits for the provider's connection rate, if it has one, on
// the scheduler's clock.
func (p *provider) waitConnect(ctx context.Context) error {
	p.mu.Lock()
	lim := p.connLim
	p.mu.Unlock()
	return p.sched.waitToken(ctx, lim)
}

// setThrottle applies a rule's provider-scope throttle.
func (p *provider) setThrottle(t throttle, now time.Time) {
	p.mu.Lock()
	p.thr = t
	p.tuneLocked(now)
	p.mu.Unlock()
}

// throttle is a rule's temporary slow-down of a lane or a provider: a
// lower connection cap and/or message rate until a time. It never pauses.
type throttle struct {
	Until          time.Time    `json:"until"`
	MaxConnections int          `json:"maxConnections,omitempty"`
	MessageRate    *config.Rate `json:"messageRate,omitempty"`
	Rule           string       `json:"rule,omitempty"`
	// At is when it was set: of two nodes' throttles the later wins.
	At time.Time `json:"at,omitzero"`
}

func (t throttle) active(now time.Time) bool { return now.Before(t.Until) }

// expired reports a throttle that was set and has run out.
func (t throttle) expired(now time.Time) bool { return !t.Until.IsZero() && !now.Before(t.Until) }

// capOr is the connection cap under the throttle: the lower of c and the
// throttle's, where 0 means no cap.
func (t throttle) capOr(c int, now time.Time) int {
	if t.active(now) && t.MaxConnections > 0 && (c == 0 || t.MaxConnections < c) {
		return t.MaxConnections
	}
	return c
}

// rateOr is the message rate under the throttle: the throttle's while it
// lasts, else r (nil: none).
func (t throttle) rateOr(r *config.Rate, now time.Time) *config.Rate {
	if t.active(now) && t.MessageRate != nil {
		return t.MessageRate
	}
	return r
}
