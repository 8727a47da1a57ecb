package server

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/delivery"
	"github.com/cuemta/cuemta/deliverylog"
	"github.com/cuemta/cuemta/inauth"
	"github.com/cuemta/cuemta/reputation"
)

// verifyResolver is the DNS of inbound verification: nil (no
// verification) before Run has made the resolver, never a typed nil.
func (s *Server) verifyResolver() inauth.Resolver {
	if s.resolver == nil {
		return nil
	}
	return s.resolver
}

// originReputation marks the suspensions the reputation watch makes, so
// that a delisting lifts only those, never an operator's or a rule's.
const originReputation = delivery.OriginReputation

// watchReputation runs the reputation watch (config reputation) until
// ctx ends: a round at start, then one every interval, each under the
// config in force when it starts, so a reload applies from the next one.
func (s *Server) watchReputation(ctx context.Context) {
	state := reputation.NewState()
	for {
		rc := s.Snapshot().Config.Reputation
		interval := max(rc.Interval.D(), time.Second)
		s.reputationRound(ctx, state, s.Snapshot().Config, interval)
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// reputationTargets are the sources with an address, by name, and the
// sending domains: dkim.keys' and reputation.domains, each once.
func reputationTargets(cfg *config.Config) []reputation.Target {
	var out []reputation.Target
	seen := map[string]bool{}
	for _, pn := range slices.Sorted(maps.Keys(cfg.Pools)) {
		p := cfg.Pools[pn]
		if p == nil {
			continue
		}
		for _, sn := range slices.Sorted(maps.Keys(p.Sources)) {
			src := p.Sources[sn]
			if src == nil || seen["source "+sn] {
				continue
			}
			a, err := netip.ParseAddr(src.Addr)
			if err != nil {
				continue // no bind address: the system picks one, unknown here
			}
			seen["source "+sn] = true
			out = append(out, reputation.Target{Source: sn, Addr: a})
		}
	}
	var domains []string
	for _, k := range cfg.DKIM.Keys {
		if k != nil {
			domains = append(domains, k.Domain)
		}
	}
	domains = append(domains, cfg.Reputation.Domains...)
	slices.Sort(domains)
	for _, d := range domains {
		d = strings.ToLower(d)
		if d != "" && !seen["domain "+d] {
			seen["domain "+d] = true
			out = append(out, reputation.Target{Domain: d})
		}
	}
	return out
}

// reputationRound looks every target up, sets the metric, and reports
// each change: a reputation event, and with reputation.suspend the
// source's suspension or its lifting.
func (s *Server) reputationRound(ctx context.Context, state *reputation.State, cfg *config.Config, interval time.Duration) {
	rc := cfg.Reputation
	var results []reputation.Result
	if rc.Enabled() {
		rctx, cancel := context.WithTimeout(ctx, interval)
		results = reputation.Round(rctx, s.resolver, reputationTargets(cfg), rc.DNSBLs, rc.DomainLists)
		cancel()
	}
	if ctx.Err() != nil {
		return // shutting down: a cut-short round says nothing
	}
	for _, r := range results {
		if r.Err != nil {
			s.logger.Warn("reputation: lookup failed; state kept", "target", r.Target.String(), "list", r.List, "err", r.Err)
			continue
		}
		s.metrics.ReputationListed(r.Source, r.Domain, r.List, r.Listed)
	}
	for _, c := range state.Update(results) {
		action := "delisted"
		if c.Listed {
			action = "listed"
		}
		reason := strings.Join(c.Codes, ",")
		if c.Reason != "" {
			reason = strings.TrimPrefix(reason+" "+c.Reason, " ")
		}
		s.logger.Warn("reputation: "+action, "target", c.Target.String(), "list", c.List, "codes", strings.Join(c.Codes, ","), "reason", c.Reason)
		if !c.Listed {
			s.metrics.ReputationListed(c.Source, c.Domain, c.List, false)
		}
		ev := deliverylog.Event{Type: deliverylog.TypeReputation, Action: action, Source: c.Source, Domain: c.Domain, List: c.List, Reason: reason}
		if c.Domain == "" {
			ev.Addr = c.Addr.String()
		}
		s.event(ev)
	}
	s.reputationSuspensions(cfg, state, interval)
}

// reputationSuspensions suspends each listed source (renewing the
// suspension each round, so it lapses by itself if the watch stops) and
// lifts the watch's own suspension of a source no longer listed.
func (s *Server) reputationSuspensions(cfg *config.Config, state *reputation.State, interval time.Duration) {
	ours := map[string]bool{}
	for _, si := range s.delivery.Suspensions() {
		if si.Scope == delivery.ScopeSource && si.Origin == originReputation {
			ours[si.Key] = true
		}
	}
	for _, t := range reputationTargets(cfg) {
		if t.Domain != "" {
			continue
		}
		listed := cfg.Reputation.Suspend && state.Listed(t.Source)
		switch {
		case listed:
			until := time.Now().Add(2*interval + time.Minute)
			if err := s.delivery.Suspend(delivery.ScopeSource, t.Source, until, "listed in a DNS blocklist", originReputation); err != nil {
				s.logger.Error("reputation: suspend failed", "source", t.Source, "err", err)
				continue
			}
			if !ours[t.Source] {
				s.event(deliverylog.Event{Type: deliverylog.TypeSuspension, Action: "suspend", Source: t.Source,
					Class: delivery.ScopeSource, Actor: originReputation, Reason: "listed in a DNS blocklist"})
			}
		case ours[t.Source]:
			s.delivery.Resume(delivery.ScopeSource, t.Source)
			s.event(deliverylog.Event{Type: deliverylog.TypeSuspension, Action: "resume", Source: t.Source,
				Class: delivery.ScopeSource, Actor: originReputation, Reason: "no longer listed"})
		}
	}
}
