package delivery

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/cuemta/cuemta/category"
	"github.com/cuemta/cuemta/queue"
	"github.com/cuemta/cuemta/rules"
	"github.com/cuemta/cuemta/smtpreply"
)

// Suspension scopes.
const (
	ScopeSite     = "site"
	ScopeSource   = "source"
	ScopeProvider = "provider"
	ScopeTenant   = "tenant"
	ScopeCampaign = "campaign"
)

// ErrBusy is returned for an admin action on a message whose delivery
// attempt is in flight: the attempt's outcome would overwrite it.
var ErrBusy = errors.New("message is being delivered right now; try again in a moment")

// SuspensionInfo is one suspension in force.
type SuspensionInfo struct {
	Scope, Key string
	Until      time.Time
	Reason     string
	Origin     string // "admin", the rule that suspended, or "throttle-backoff"
}

// Suspend stops deliveries in a scope until a time: a site (by its key as
// listed by the queue, or by one of its domains), a source (everywhere,
// or "SITE/SOURCE" for one lane), a provider (the name of a profile
// matched by an MX "*.suffix" pattern, for every source, or
// "NAME/SOURCE"), a tenant or a campaign. Messages it holds back are
// deferred with a reply that names the suspension, so Resume can release
// them. The suspension is saved before Suspend returns.
func (e *Scheduler) Suspend(scope, key string, until time.Time, reason, origin string) error {
	switch scope {
	case ScopeSite:
		key = e.siteKey(key)
	case ScopeSource, ScopeProvider, ScopeTenant, ScopeCampaign:
	default:
		return fmt.Errorf("unknown scope %q (want site, source, provider, tenant or campaign)", scope)
	}
	if key == "" {
		return fmt.Errorf("suspend %s: no key", scope)
	}
	e.mu.Lock()
	e.suspended[scope+":"+key] = suspension{Until: until, Reason: suspensionReason(scope, key, reason), Origin: origin, At: e.opts.Now()}
	delete(e.tombstones, scope+":"+key)
	e.mu.Unlock()
	e.saveState()
	e.sharedChanged()
	for _, l := range e.allLanes() {
		l.drainIfSuspended()
	}
	return nil
}

// Resume lifts the suspensions of a scope, by the operator or a rule: for
// a site also those of its lanes, for a source also those of the source
// at each site, for a provider also those of each of its sources. It
// reports whether one was in force.
func (e *Scheduler) Resume(scope, key string) bool {
	if scope == ScopeSite {
		key = e.siteKey(key)
	}
	now := e.opts.Now()
	covers := func(k string) bool {
		sc, rest, _ := strings.Cut(k, ":")
		switch {
		case k == scope+":"+key:
			return true
		case scope == ScopeSite:
			return sc == ScopeSource && strings.HasPrefix(rest, key+"/")
		case scope == ScopeSource:
			return sc == ScopeSource && strings.HasSuffix(rest, "/"+key)
		case scope == ScopeProvider:
			return sc == ScopeProvider && strings.HasPrefix(rest, key+"/")
		}
		return false
	}
	ok := false
	e.mu.Lock()
	for k, s := range e.suspended {
		if covers(k) {
			ok = ok || now.Before(s.Until)
			delete(e.suspended, k)
			if e.opts.Shared != nil && now.Before(s.Until) {
				e.tombstones[k] = suspension{Until: s.Until, At: now}
			}
		}
	}
	e.mu.Unlock()
	e.saveState()
	e.sharedChanged()
	e.Wake()
	return ok
}

// Suspensions lists every suspension in force, admin and rule made.
func (e *Scheduler) Suspensions() []SuspensionInfo {
	now := e.opts.Now()
	var out []SuspensionInfo
	e.mu.Lock()
	for k, s := range e.suspended {
		if now.Before(s.Until) {
			scope, key, _ := strings.Cut(k, ":")
			out = append(out, SuspensionInfo{Scope: scope, Key: key, Until: s.Until, Reason: s.Reason, Origin: s.Origin})
		}
	}
	e.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Scope+out[i].Key < out[j].Scope+out[j].Key })
	return out
}

// SiteOf is the site a recipient domain was last routed to, or "" if no
// message to it has been tried yet.
func (e *Scheduler) SiteOf(domain string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.domainSite[strings.ToLower(domain)]
}

// siteKey accepts a site key or a domain routed to it.
func (e *Scheduler) siteKey(key string) string {
	if s := e.SiteOf(key); s != "" {
		return s
	}
	return key
}

func (e *Scheduler) allLanes() []*lane {
	e.mu.Lock()
	sites := make([]*site, 0, len(e.sites))
	for _, s := range e.sites {
		sites = append(sites, s)
	}
	e.mu.Unlock()
	var out []*lane
	for _, s := range sites {
		out = append(out, s.lanesNow()...)
	}
	return out
}

// suspensionReason is the text deferred recipients carry while a scope is
// suspended; Resume finds them by it.
func suspensionReason(scope, key, reason string) string {
	if reason == "" {
		reason = "suspended by the operator"
	}
	return fmt.Sprintf("suspended (%s %s): %s", scope, key, reason)
}

// Reserve marks a message as busy for an admin action, so no delivery
// attempt starts on it meanwhile; release with Release.
func (e *Scheduler) Reserve(id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, busy := e.inflight[id]; busy {
		return ErrBusy
	}
	e.inflight[id] = nil
	return nil
}

// Release ends a reservation made by Reserve.
func (e *Scheduler) Release(id string) { e.done(id) }

// Bounce fails every pending recipient of a message now, sends the DSN
// and removes the message from the spool. If the DSN cannot be queued
// nothing changes and the error says why.
func (e *Scheduler) Bounce(id, reason string) error {
	if err := e.Reserve(id); err != nil {
		return err
	}
	defer e.Release(id)
	env, ok := e.opts.Store.Get(id) // current now that it is reserved
	if !ok {
		return fmt.Errorf("bounce %s: %w", id, queue.ErrNotFound)
	}
	pol := e.opts.Policy()
	att := &attempt{sched: e, env: env, policy: pol, started: e.opts.Now()}
	var failures []failure
	var results []queue.RecipientResult
	reply := smtpreply.New(550, "5.0.0", "Bounced by the operator")
	if reason != "" {
		reply.Text += ": " + reason
	}
	text := reply.String()
	for _, r := range env.Recipients {
		if r.Status == queue.RcptPending || r.Status == queue.RcptBouncing {
			failures = append(failures, failureOfReply(r.Addr, reply, "", category.Other, false))
			results = append(results, queue.RecipientResult{Addr: r.Addr, Status: queue.RcptFailed, Reply: text})
		}
	}
	if len(failures) > 0 {
		if err := att.bounce(failures); err != nil {
			return err
		}
	}
	for _, r := range results {
		e.opts.Events(Event{Time: e.opts.Now(), Type: EventBounce, MessageID: env.ID, From: env.From, Rcpt: r.Addr,
			Pool: env.Pool, Tenant: env.Tenant, Campaign: env.Campaign, Reply: text, Class: string(rules.Permanent),
			Category: category.Other, Attempt: env.Attempts, InQueue: e.opts.Now().Sub(env.Received), Generation: pol.Generation, DKIM: env.DKIM})
	}
	w := &stateWrite{id: id, results: results, outcome: queue.OutcomeBounced, reason: "bounced by the operator: " + reason}
	return w.apply(e.opts.Store)
}
