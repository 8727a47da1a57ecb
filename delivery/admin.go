package delivery

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/cuemta/cuemta/queue"
)

// Suspension scopes.
const (
	ScopeSite     = "site"
	ScopeSource   = "source"
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
	Origin     string // "admin" or the rule that suspended
}

// Suspend stops deliveries in a scope until a time: a site (by its key as
// listed by the queue, or by one of its domains), a source (everywhere),
// a tenant or a campaign. Messages it holds back are deferred with a
// reply that names the suspension, so Resume can release them.
func (e *Engine) Suspend(scope, key string, until time.Time, reason, origin string) error {
	switch scope {
	case ScopeSite:
		key = e.siteKey(key)
	case ScopeSource, ScopeTenant, ScopeCampaign:
	default:
		return fmt.Errorf("unknown scope %q (want site, source, tenant or campaign)", scope)
	}
	e.mu.Lock()
	e.suspended[scope+":"+key] = suspension{until: until, reason: suspendedReply(scope, key, reason), origin: origin}
	e.mu.Unlock()
	if scope == ScopeSite || scope == ScopeSource {
		for _, l := range e.allLanes() {
			l.drainIfSuspended()
		}
	}
	return nil
}

// Resume lifts an admin or rule suspension. It reports whether there was
// one.
func (e *Engine) Resume(scope, key string) bool {
	if scope == ScopeSite {
		key = e.siteKey(key)
	}
	e.mu.Lock()
	_, ok := e.suspended[scope+":"+key]
	delete(e.suspended, scope+":"+key)
	var sites []*site
	if scope == ScopeSite {
		if s, found := e.sites[key]; found {
			sites = append(sites, s)
		}
	}
	e.mu.Unlock()
	for _, s := range sites {
		s.mu.Lock()
		if time.Now().Before(s.suspendedUntil) {
			ok = true
		}
		s.suspendedUntil = time.Time{}
		s.mu.Unlock()
	}
	if scope == ScopeSource {
		for _, l := range e.allLanes() {
			if l.source == key {
				l.mu.Lock()
				if time.Now().Before(l.suspendedUntil) {
					ok = true
				}
				l.suspendedUntil = time.Time{}
				l.mu.Unlock()
			}
		}
	}
	e.Wake()
	return ok
}

// Suspensions lists every suspension in force, admin and rule made.
func (e *Engine) Suspensions() []SuspensionInfo {
	now := e.opts.Now()
	var out []SuspensionInfo
	e.mu.Lock()
	for k, s := range e.suspended {
		if now.Before(s.until) {
			scope, key, _ := strings.Cut(k, ":")
			out = append(out, SuspensionInfo{Scope: scope, Key: key, Until: s.until, Reason: s.reason, Origin: s.origin})
		}
	}
	sites := make([]*site, 0, len(e.sites))
	for _, s := range e.sites {
		sites = append(sites, s)
	}
	e.mu.Unlock()
	for _, s := range sites {
		if until, reason, ok := s.suspended(now); ok {
			out = append(out, SuspensionInfo{Scope: ScopeSite, Key: s.key, Until: until, Reason: reason, Origin: "rule"})
		}
		s.mu.Lock()
		lanes := make([]*lane, 0, len(s.lanes))
		for _, l := range s.lanes {
			lanes = append(lanes, l)
		}
		s.mu.Unlock()
		for _, l := range lanes {
			l.mu.Lock()
			if now.Before(l.suspendedUntil) {
				out = append(out, SuspensionInfo{Scope: ScopeSource, Key: s.key + "/" + l.source, Until: l.suspendedUntil, Reason: l.suspendReason, Origin: "rule"})
			}
			l.mu.Unlock()
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Scope+out[i].Key < out[j].Scope+out[j].Key })
	return out
}

// SiteOf is the site a recipient domain was last routed to, or "" if no
// message to it has been tried yet.
func (e *Engine) SiteOf(domain string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.domainSite[strings.ToLower(domain)]
}

// siteKey accepts a site key or a domain routed to it.
func (e *Engine) siteKey(key string) string {
	if s := e.SiteOf(key); s != "" {
		return s
	}
	return key
}

func (e *Engine) allLanes() []*lane {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []*lane
	for _, s := range e.sites {
		s.mu.Lock()
		for _, l := range s.lanes {
			out = append(out, l)
		}
		s.mu.Unlock()
	}
	return out
}

// adminSuspension is the admin suspension covering a lane, if any.
func (e *Engine) adminSuspension(siteKey, source string, now time.Time) (suspension, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, k := range []string{ScopeSite + ":" + siteKey, ScopeSource + ":" + source} {
		if s, ok := e.suspended[k]; ok && now.Before(s.until) {
			return s, true
		}
	}
	return suspension{}, false
}

// suspendedReply is the text deferred recipients carry while a scope is
// suspended; Resume finds them by it.
func suspendedReply(scope, key, reason string) string {
	if reason == "" {
		reason = "suspended by the operator"
	}
	return fmt.Sprintf("suspended (%s %s): %s", scope, key, reason)
}

// Reserve marks a message as busy for an admin action, so no delivery
// attempt starts on it meanwhile; release with Release.
func (e *Engine) Reserve(id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, busy := e.inflight[id]; busy {
		return ErrBusy
	}
	e.inflight[id] = nil
	return nil
}

// Release ends a reservation made by Reserve.
func (e *Engine) Release(id string) { e.done(id) }

// Bounce fails every pending recipient of a message now, sends the DSN
// and removes the message from the spool.
func (e *Engine) Bounce(env queue.Envelope, reason string) error {
	if err := e.Reserve(env.ID); err != nil {
		return err
	}
	defer e.Release(env.ID)
	pol := e.opts.Policy()
	att := &attempt{engine: e, env: env, policy: pol, started: e.opts.Now()}
	var failures []failure
	var results []queue.RecipientResult
	text := "550 5.0.0 Bounced by the operator"
	if reason != "" {
		text += ": " + reason
	}
	for _, r := range env.Recipients {
		if r.Status == queue.RcptPending {
			failures = append(failures, failure{rcpt: r.Addr, status: "5.0.0", diagnostic: text})
			results = append(results, queue.RecipientResult{Addr: r.Addr, Status: queue.RcptFailed, Reply: text})
			e.opts.Events(Event{Time: e.opts.Now(), Type: EventBounce, MessageID: env.ID, From: env.From, Rcpt: r.Addr,
				Pool: env.Pool, Tenant: env.Tenant, Campaign: env.Campaign, Reply: text, Class: "permanent",
				Attempt: env.Attempts, InQueue: e.opts.Now().Sub(env.Received), Generation: pol.Generation})
		}
	}
	if len(failures) > 0 {
		att.bounce(failures)
	}
	if err := e.opts.Store.RecordAttempt(env.ID, results, time.Time{}); err != nil {
		return err
	}
	return e.opts.Store.Complete(env.ID, queue.OutcomeBounced, "bounced by the operator: "+reason)
}
