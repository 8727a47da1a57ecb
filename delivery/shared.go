package delivery

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"time"
)

// Shared is the accounting several nodes share (package cluster, wired by
// the server), beside this node's own limits: a lane's connection count
// and rates and its provider's hold for the whole cluster, and
// suspensions and throttles set on one node are in force on all. It is
// nil on a node alone, and then no call is made: the single-node path is
// the local limits and nothing else.
//
// The local limits stay in force under it (a node never sends faster
// than the profile allows on its own); what Shared adds is the cluster's
// total.
type Shared interface {
	// AcquireConn takes a connection slot under every lease at once, or
	// none (ok false: one is full now; ask again later).
	AcquireConn(ctx context.Context, leases []SharedLease) (release func(), ok bool)
	// Retain reports whether a connection holding slots under leases may
	// send its next message (false: close it, this node holds more than it
	// may now).
	Retain(leases []SharedLease) bool
	// Reserve takes n tokens from every bucket in one decision and returns
	// how long to wait before using them.
	Reserve(ctx context.Context, rates []SharedRate, n int) time.Duration
	// Count counts one match of a threshold rule in a window shared by
	// the cluster and returns the matches in it (at most limit); ok false
	// when the cluster cannot tell (the local count decides).
	Count(key string, within time.Duration, limit int) (seen int, ok bool)
	// Changed asks for the shared entries to be merged soon (a suspension
	// or throttle changed here).
	Changed()
}

// SharedLease is a connection slot under a key with at most Cap holders
// in the cluster (0: no cap).
type SharedLease struct {
	Key string
	Cap int
}

// SharedRate is a token bucket shared by the cluster.
type SharedRate struct {
	Key       string
	PerSecond float64
	Burst     int
}

// SharedEntry is a suspension or throttle as the cluster shares it (Key
// "suspension:SCOPE:KEY" or "throttle:SCOPE:KEY"); the later At wins, and
// a nil Value is a resumed suspension.
type SharedEntry struct {
	Key        string
	At, Expire time.Time
	Value      []byte
}

// Prefixes of SharedEntry keys.
const (
	sharedSuspension = "suspension:"
	sharedThrottle   = "throttle:"
)

// leaseRetry spaces the asks of a connection waiting for a shared slot.
const leaseRetry = 25 * time.Millisecond

// sharedIdleTimeout bounds how long an idle connection keeps its shared
// slot: a node whose queue ran dry must not hold slots that the other
// nodes' backlogs are waiting for (locally, an idle connection gives its
// slot up as soon as another lane waits; across nodes nobody can tell it).
const sharedIdleTimeout = 200 * time.Millisecond

// idleTimeout is how long an idle connection waits for another message.
func (e *Scheduler) idleTimeout() time.Duration {
	if e.opts.Shared != nil {
		return min(e.opts.IdleTimeout, sharedIdleTimeout)
	}
	return e.opts.IdleTimeout
}

// acquireShared waits for the cluster's connection slots of the lane and
// its provider before a connection is dialled. It returns false when the
// job was handed back instead (the lane was suspended meanwhile) or the
// scheduler is stopping (the spool still has the message due).
func (l *lane) acquireShared(ctx context.Context, p *provider, j *job) (func(), bool) {
	e := l.site.sched
	if e.opts.Shared == nil {
		return func() {}, true
	}
	for {
		now := e.opts.Now()
		if s, held := l.suspension(now); held {
			j.holdAll(s)
			return nil, false
		}
		leases := l.sharedLeases(p, now)
		if release, ok := e.opts.Shared.AcquireConn(ctx, leases); ok {
			return release, true
		}
		// Full elsewhere: ask again soon, at a jittered time so that the
		// nodes waiting do not ask in step.
		select {
		case <-ctx.Done():
			return nil, false
		case <-time.After(leaseRetry + rand.N(leaseRetry)):
		}
	}
}

// sharedLeases are the connection slots a connection of the lane takes:
// the lane's, and its provider's.
func (l *lane) sharedLeases(p *provider, now time.Time) []SharedLease {
	l.mu.Lock()
	leases := []SharedLease{{Key: "lane:" + l.key, Cap: l.capLocked(now)}}
	l.mu.Unlock()
	if p != nil {
		p.mu.Lock()
		leases = append(leases, SharedLease{Key: "provider:" + providerKey(p.name, p.source), Cap: p.capLocked(now)})
		p.mu.Unlock()
	}
	return leases
}

// retainShared reports whether a connection may send another message
// under its shared slots (always on a node alone).
func (l *lane) retainShared(p *provider) bool {
	e := l.site.sched
	return e.opts.Shared == nil || e.opts.Shared.Retain(l.sharedLeases(p, e.opts.Now()))
}

// waitShared waits for the cluster's buckets of a lane and its provider
// ("msg" or "conn"), taken in one decision, on the scheduler's clock.
func (l *lane) waitShared(ctx context.Context, p *provider, kind string) error {
	e := l.site.sched
	if e.opts.Shared == nil {
		return nil
	}
	var rates []SharedRate
	l.mu.Lock()
	lim := l.msgLim
	if kind == "conn" {
		lim = l.connLim
	}
	if lim != nil {
		rates = append(rates, SharedRate{Key: kind + ":lane:" + l.key, PerSecond: float64(lim.Limit()), Burst: lim.Burst()})
	}
	l.mu.Unlock()
	if p != nil {
		p.mu.Lock()
		lim := p.msgLim
		if kind == "conn" {
			lim = p.connLim
		}
		if lim != nil {
			rates = append(rates, SharedRate{Key: kind + ":provider:" + providerKey(p.name, p.source), PerSecond: float64(lim.Limit()), Burst: lim.Burst()})
		}
		p.mu.Unlock()
	}
	if len(rates) == 0 {
		return nil
	}
	if kind != "msg" {
		return e.waitUntil(ctx, e.opts.Now().Add(e.opts.Shared.Reserve(ctx, rates, 1)))
	}
	for {
		l.mu.Lock()
		if l.sharedTokens > 0 {
			// Taken in an earlier batch: usable from the batch's time.
			l.sharedTokens--
			at := l.sharedAt
			l.mu.Unlock()
			return e.waitUntil(ctx, at)
		}
		if wait := l.sharedFetch; wait != nil {
			// Another connection of the lane is fetching a batch: one
			// round trip for all of them, not one each (which would also
			// leave each batch's surplus unused).
			l.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		done := make(chan struct{})
		l.sharedFetch = done
		l.mu.Unlock()
		n := sharedBatch(rates)
		at := e.opts.Now().Add(e.opts.Shared.Reserve(ctx, rates, n))
		l.mu.Lock()
		l.sharedTokens += n - 1
		if at.After(l.sharedAt) {
			l.sharedAt = at
		}
		l.sharedFetch = nil
		l.mu.Unlock()
		close(done)
		return e.waitUntil(ctx, at)
	}
}

// sharedBatchSpan is how much of a rate one shared decision may take at
// once: a lane sending faster than 100 messages a second takes 10 ms of
// tokens (at most sharedBatchMax) per round trip and hands them to its
// connections, all usable from the last one's time. That is well within
// a bucket's burst (a tenth of a second), and at worst 10 ms of tokens go
// unused when the lane falls idle.
const (
	sharedBatchSpan = 10 * time.Millisecond
	sharedBatchMax  = 32
)

func sharedBatch(rates []SharedRate) int {
	n := sharedBatchMax
	for _, r := range rates {
		n = min(n, max(1, int(r.PerSecond*sharedBatchSpan.Seconds())))
	}
	return n
}

// waitUntil waits until at on the scheduler's clock.
func (e *Scheduler) waitUntil(ctx context.Context, at time.Time) error {
	d := at.Sub(e.opts.Now())
	if d <= 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-e.opts.After(d):
		return nil
	}
}

// sharedChanged tells the cluster a suspension or throttle changed here.
func (e *Scheduler) sharedChanged() {
	if e.opts.Shared != nil {
		e.opts.Shared.Changed()
	}
}

// SharedEntries lists this node's suspensions and throttles in force, and
// the resumes it knows of, for the cluster's merge.
func (e *Scheduler) SharedEntries() []SharedEntry {
	now := e.opts.Now()
	var out []SharedEntry
	e.mu.Lock()
	for k, s := range e.suspended {
		if now.Before(s.Until) {
			b, _ := json.Marshal(s)
			out = append(out, SharedEntry{Key: sharedSuspension + k, At: s.At, Expire: s.Until, Value: b})
		}
	}
	for k, s := range e.tombstones {
		if !now.Before(s.Until) {
			delete(e.tombstones, k)
			continue
		}
		out = append(out, SharedEntry{Key: sharedSuspension + k, At: s.At, Expire: s.Until})
	}
	for k, t := range e.restoredThrottles {
		if t.active(now) {
			b, _ := json.Marshal(t)
			out = append(out, SharedEntry{Key: sharedThrottle + k, At: t.At, Expire: t.Until, Value: b})
		}
	}
	providers := make([]*provider, 0, len(e.providers))
	for _, p := range e.providers {
		providers = append(providers, p)
	}
	e.mu.Unlock()
	for _, p := range providers {
		p.mu.Lock()
		if p.thr.active(now) {
			b, _ := json.Marshal(p.thr)
			out = append(out, SharedEntry{Key: sharedThrottle + ScopeProvider + ":" + providerKey(p.name, p.source), At: p.thr.At, Expire: p.thr.Until, Value: b})
		}
		p.mu.Unlock()
	}
	for _, l := range e.allLanes() {
		l.mu.Lock()
		if l.thr.active(now) {
			b, _ := json.Marshal(l.thr)
			out = append(out, SharedEntry{Key: sharedThrottle + ScopeSource + ":" + l.key, At: l.thr.At, Expire: l.thr.Until, Value: b})
		}
		l.mu.Unlock()
	}
	return out
}

// ApplyShared takes the cluster's entries after a merge: each one set
// later than this node's own under the same key replaces it (a
// suspension, a resume, a throttle), is saved in the shaping state like a
// local change, and takes effect at once (a suspended lane hands its
// queue back; a resume makes what it held due through OnSharedResume).
func (e *Scheduler) ApplyShared(entries []SharedEntry) {
	now := e.opts.Now()
	var changed, suspended bool
	var resumed []string
	type thrChange struct {
		key string
		t   throttle
	}
	var throttles []thrChange
	e.mu.Lock()
	for _, en := range entries {
		switch {
		case strings.HasPrefix(en.Key, sharedSuspension):
			k := strings.TrimPrefix(en.Key, sharedSuspension)
			cur, has := e.suspended[k]
			tomb, hasTomb := e.tombstones[k]
			if (has && !en.At.After(cur.At)) || (hasTomb && !en.At.After(tomb.At)) {
				continue
			}
			if en.Value == nil {
				e.tombstones[k] = suspension{Until: en.Expire, At: en.At}
				if has {
					delete(e.suspended, k)
					changed = true
					resumed = append(resumed, k)
				}
				continue
			}
			var s suspension
			if json.Unmarshal(en.Value, &s) != nil || !now.Before(s.Until) {
				continue
			}
			s.At = en.At
			e.suspended[k] = s
			delete(e.tombstones, k)
			changed, suspended = true, true
		case strings.HasPrefix(en.Key, sharedThrottle):
			var t throttle
			if json.Unmarshal(en.Value, &t) != nil || !t.active(now) {
				continue
			}
			t.At = en.At
			throttles = append(throttles, thrChange{strings.TrimPrefix(en.Key, sharedThrottle), t})
		}
	}
	e.mu.Unlock()
	for _, tc := range throttles {
		if e.applySharedThrottle(tc.key, tc.t, now) {
			changed = true
		}
	}
	if !changed {
		return
	}
	e.saveState()
	if suspended {
		for _, l := range e.allLanes() {
			l.drainIfSuspended()
		}
	}
	for _, k := range resumed {
		scope, key, _ := strings.Cut(k, ":")
		if e.opts.OnSharedResume != nil {
			e.opts.OnSharedResume(scope, key)
		}
	}
	if len(resumed) > 0 {
		e.Wake()
	}
}

// applySharedThrottle applies a throttle another node set, if it is
// newer than this node's: to the lane or provider entry it names, or kept
// for the lane or provider when it is first used.
func (e *Scheduler) applySharedThrottle(key string, t throttle, now time.Time) bool {
	scope, k, _ := strings.Cut(key, ":")
	if scope == ScopeProvider {
		e.mu.Lock()
		p := e.providers[k]
		if p == nil {
			cur, ok := e.restoredThrottles[key]
			if ok && !t.At.After(cur.At) {
				e.mu.Unlock()
				return false
			}
			e.restoredThrottles[key] = t
			e.mu.Unlock()
			return true
		}
		e.mu.Unlock()
		p.mu.Lock()
		defer p.mu.Unlock()
		if !t.At.After(p.thr.At) {
			return false
		}
		p.thr = t
		p.tuneLocked(now)
		return true
	}
	found, applied := false, false
	for _, l := range e.allLanes() {
		if l.key != k {
			continue
		}
		found = true
		l.mu.Lock()
		if t.At.After(l.thr.At) && l.eff != nil {
			l.thr = t
			l.tuneLocked(now)
			applied = true
		}
		l.mu.Unlock()
	}
	if found {
		return applied
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if cur, ok := e.restoredThrottles[key]; ok && !t.At.After(cur.At) {
		return false
	}
	e.restoredThrottles[key] = t
	return true
}
