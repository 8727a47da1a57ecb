package delivery

import (
	"sort"
	"time"
)

// LaneInfo is one lane as the operator's console shows it: a read-only
// copy taken under the lane's lock, never a reference into the scheduler.
type LaneInfo struct {
	Site     string
	Source   string
	Provider string // "" when the destination matches no provider profile
	// Connections are open or opening; Waiting are jobs queued on the lane
	// for a connection.
	Connections, Waiting int
}

// ThrottleInfo is one throttle in force: a rule's slow-down of a lane
// (scope source, key SITE/SOURCE) or of a provider (scope provider, key
// NAME/SOURCE).
type ThrottleInfo struct {
	Scope, Key     string
	Until          time.Time
	Rule           string
	MaxConnections int    // 0: the cap is not lowered
	MessageRate    string // "" when the rate is not lowered, else "N/DURATION"
}

// Lanes lists every lane the scheduler has made, sorted by site and
// source. It takes each lane's lock briefly, one at a time.
func (e *Scheduler) Lanes() []LaneInfo {
	var out []LaneInfo
	for _, l := range e.allLanes() {
		l.mu.Lock()
		li := LaneInfo{Site: l.site.key, Source: l.source, Connections: l.active, Waiting: len(l.queue)}
		if l.prov != nil {
			li.Provider = l.prov.name
		}
		l.mu.Unlock()
		out = append(out, li)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Site != out[j].Site {
			return out[i].Site < out[j].Site
		}
		return out[i].Source < out[j].Source
	})
	return out
}

// Throttles lists the throttles in force, sorted by scope and key.
func (e *Scheduler) Throttles() []ThrottleInfo {
	now := e.opts.Now()
	var out []ThrottleInfo
	add := func(scope, key string, t throttle) {
		if !t.active(now) {
			return
		}
		ti := ThrottleInfo{Scope: scope, Key: key, Until: t.Until, Rule: t.Rule, MaxConnections: t.MaxConnections}
		if t.MessageRate != nil {
			ti.MessageRate = t.MessageRate.String()
		}
		out = append(out, ti)
	}
	e.mu.Lock()
	providers := make([]*provider, 0, len(e.providers))
	for _, p := range e.providers {
		providers = append(providers, p)
	}
	e.mu.Unlock()
	for _, p := range providers {
		p.mu.Lock()
		add(ScopeProvider, providerKey(p.name, p.source), p.thr)
		p.mu.Unlock()
	}
	for _, l := range e.allLanes() {
		l.mu.Lock()
		add(ScopeSource, l.key, l.thr)
		l.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Scope+":"+out[i].Key < out[j].Scope+":"+out[j].Key })
	return out
}
