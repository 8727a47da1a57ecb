package delivery

import (
	"fmt"
	"time"

	"github.com/cuemta/cuemta/category"
	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/delivery/smtpclient"
	"github.com/cuemta/cuemta/rules"
)

// evaluate runs the response rules on a reply.
func (l *lane) evaluate(j *job, host string, r smtpclient.Reply) rules.ResponseDecision {
	e := l.site.sched
	pol := e.opts.Policy()
	eff := l.profile()
	in := &rules.ResponseInput{
		Code: r.Code, Enhanced: r.Enhanced, Text: r.Text, Lines: r.Lines, Stage: r.Stage,
		Site: l.site.key, MX: host, Domain: j.domain, Source: l.source, Pool: l.pool,
		Tenant: j.att.env.Tenant, Campaign: j.att.env.Campaign, Attempt: j.att.env.Attempts + 1,
		Recent: l.site.count(e.opts.Now(), r.Code),
	}
	d := e.rulesFor(pol).EvalResponse(in, eff.Chain)
	if d.Rule == "" && r.Code == 0 {
		// A connection failure is transient unless a rule says otherwise;
		// no server answered it.
		d.Classify = rules.Transient
		d.Category = category.NoAnswer
	}
	return d
}

// outcomes applies a decision to the recipients that got the reply, and
// its side effects (suspension, throttling, backoff) to the lane.
func (l *lane) outcomes(j *job, rcpts []string, r smtpclient.Reply, d rules.ResponseDecision) []outcome {
	e := l.site.sched
	now := e.opts.Now()
	eff := l.profile()
	class := d.Classify
	if class == "" {
		class = rules.ClassifyCode(r.Code)
	}
	if d.Bounce {
		class = rules.Permanent
	}
	var retryAt time.Time
	r = recorded(r)
	reason := fmt.Sprintf("%s (rule %s)", r.String(), d.Rule)
	if d.Rule == "" {
		reason = r.String()
	}
	switch class {
	case rules.Throttled:
		if d.Suspend == nil && d.Throttle == nil {
			// No rule said what to do: the profile's pause-and-back-off
			// curve. A rule's throttle slows the lane down instead, and its
			// suspension pauses it for as long as the rule says.
			retryAt = l.throttled(now, eff, reason)
		}
	case rules.Greylisted:
		retryAt = now.Add(eff.Settings.Greylist.Delay.D())
	case rules.Delivered:
		l.resetBackoff()
	}
	if d.RetryAfter != nil {
		retryAt = now.Add(*d.RetryAfter)
	}
	if s := d.Suspend; s != nil {
		until := now.Add(s.For.D())
		if key := l.scopeKey(s.Scope, j); key != "" {
			e.suspend(key, until, reason, d.Rule)
		}
		e.opts.Events(Event{Time: now, Type: EventSuspension, MessageID: j.att.env.ID, Site: l.site.key, Source: l.source,
			Reply: r.String(), Rule: d.Rule, Class: s.Scope, NextRetry: &until, Generation: e.opts.Policy().Generation})
		if retryAt.Before(until) {
			retryAt = until
		}
	}
	if t := d.Throttle; t != nil {
		l.slowDown(t, d.Rule, now)
	}
	final := rules.Transient
	switch class {
	case rules.Delivered:
		final = rules.Delivered
	case rules.Permanent:
		final = rules.Permanent
	}
	outs := make([]outcome, len(rcpts))
	for i, rc := range rcpts {
		outs[i] = outcome{rcpt: rc, class: final, reply: r, retryAt: retryAt, remoteMTA: l.lastMX(), rule: d.Rule, category: d.Category}
	}
	return outs
}

// throttled pauses the lane after a throttling reply that no rule acted
// on, for the profile's initial backoff multiplied by its factor for every
// consecutive throttle, up to its maximum.
func (l *lane) throttled(now time.Time, eff *config.Effective, reason string) time.Time {
	t := eff.Settings.Throttle
	l.mu.Lock()
	d := t.Initial.D()
	for i := 0; i < l.backoff && d < t.Max.D(); i++ {
		d = time.Duration(float64(d) * *t.Factor)
	}
	d = min(d, t.Max.D())
	l.backoff++
	l.mu.Unlock()
	until := now.Add(d)
	e := l.site.sched
	e.suspend(ScopeSource+":"+l.key, until, "throttled: "+reason, originBackoff)
	e.opts.Events(Event{Time: now, Type: EventSuspension, Site: l.site.key, Source: l.source, Class: ScopeSource,
		Reply: "throttled: " + reason, NextRetry: &until, Generation: e.opts.Policy().Generation})
	return until
}

// resetBackoff ends a back-off series after a delivery.
func (l *lane) resetBackoff() {
	l.mu.Lock()
	was := l.backoff
	l.backoff = 0
	l.mu.Unlock()
	if was > 0 {
		l.site.sched.saveState()
	}
}

// slowDown applies a rule's throttle: the lane (scope source) or every
// lane of the source at the provider (scope provider) gets the lower cap
// and rate until the throttle ends. Nothing pauses. A provider scope on a
// destination that matches no provider profile throttles the lane.
func (l *lane) slowDown(t *config.Throttle, rule string, now time.Time) {
	e := l.site.sched
	thr := throttle{Until: now.Add(t.For.D()), MaxConnections: t.MaxConnections, MessageRate: t.MessageRate, Rule: rule, At: now}
	l.mu.Lock()
	p := l.prov
	if t.Scope != ScopeProvider || p == nil {
		l.thr = thr
		l.tuneLocked(now)
		p = nil
	}
	l.mu.Unlock()
	if p != nil {
		p.setThrottle(thr, now)
	}
	e.opts.Logger.Info("throttled by rule", "rule", rule, "scope", t.Scope, "site", l.site.key, "source", l.source,
		"max_connections", t.MaxConnections, "message_rate", t.MessageRate, "until", thr.Until)
	e.saveState()
	e.sharedChanged()
}

// scopeKey is the Scheduler.suspended key a rule's suspension scope names
// for this lane and job ("" when the scope does not apply, such as a
// tenant scope for mail without a tenant). A provider scope on a
// destination that matches no provider profile suspends the lane.
func (l *lane) scopeKey(scope string, j *job) string {
	switch scope {
	case ScopeSite:
		return ScopeSite + ":" + l.site.key
	case ScopeProvider:
		l.mu.Lock()
		p := l.prov
		l.mu.Unlock()
		if p != nil {
			return ScopeProvider + ":" + providerKey(p.name, l.source)
		}
		return ScopeSource + ":" + l.key
	case ScopeSource:
		return ScopeSource + ":" + l.key
	case ScopeTenant:
		if j.att.env.Tenant != "" {
			return ScopeTenant + ":" + j.att.env.Tenant
		}
	case ScopeCampaign:
		if j.att.env.Campaign != "" {
			return ScopeCampaign + ":" + j.att.env.Campaign
		}
	}
	return ""
}
