package server

import (
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"sync"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/delivery/mx"
	"github.com/cuemta/cuemta/dnsbl"
	"github.com/cuemta/cuemta/greylist"
	"github.com/cuemta/cuemta/metrics"
	"github.com/cuemta/cuemta/reception"
)

// gatewayState is the stage rules' state that outlives a reload: the
// DNSBL cache (kept while the DNS settings stay the same) and the
// greylist store (SPOOL/greylist/), opened when a config first has a
// greylist rule and closed when Run ends.
type gatewayState struct {
	mu       sync.Mutex
	checker  *dnsbl.Checker
	settings string // what checker was made for
	grey     *greylist.Store
}

// stagePolicy gives pol the snapshot's stage rules and what they need.
func (s *Server) stagePolicy(pol *reception.Policy, cfg *config.Config, snap *Snapshot) error {
	if !hasStageRules(cfg) {
		return nil
	}
	pol.Stages = snap.Rules
	checker, err := s.gw.dnsblChecker(cfg, s)
	if err != nil {
		return err
	}
	pol.DNSBL = checker
	s.metrics.GatewayStatsFunc(s.gw.stats)
	if greylists(cfg) {
		st, err := s.gw.greylistStore(cfg)
		if err != nil {
			return err
		}
		pol.Greylist = greylister{st: st, s: s, p: greylist.Policy{
			Delay: cfg.Greylist.Delay.D(), RetryWindow: cfg.Greylist.RetryWindow.D(), Expiry: cfg.Greylist.Expiry.D(),
			AutoWhitelist: cfg.Greylist.AutoWhitelist, IPv4Prefix: cfg.Greylist.IPv4Prefix, IPv6Prefix: cfg.Greylist.IPv6Prefix}}
	}
	return nil
}

func hasStageRules(cfg *config.Config) bool {
	for _, st := range config.Stages {
		if len(cfg.Rules.StageRules(st)) > 0 {
			return true
		}
	}
	return false
}

func greylists(cfg *config.Config) bool {
	return slices.ContainsFunc(cfg.Rules.Rcpt, func(r *config.StageRule) bool { return r.Greylist })
}

func (g *gatewayState) dnsblChecker(cfg *config.Config, s *Server) (*dnsbl.Checker, error) {
	d := cfg.DNSBL
	key := slices.Concat(cfg.DNS.Servers, []string{d.Timeout.String(), itoa(d.Budget), itoa(d.CacheSize)})
	settings := joinKey(key)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.checker != nil && g.settings == settings {
		return g.checker, nil
	}
	// The checker keeps its own cache, by TTL: the resolver's is off so
	// that every answer comes with its TTL.
	res, err := mx.New(mx.Options{Servers: cfg.DNS.Servers, Timeout: d.Timeout.D(), CacheSize: -1})
	if err != nil {
		return nil, err
	}
	size := d.CacheSize
	if size == 0 {
		size = -1
	}
	g.checker = dnsbl.New(res, dnsbl.Options{Timeout: d.Timeout.D(), Budget: d.Budget, CacheSize: size, Logger: s.logger})
	g.settings = settings
	return g.checker, nil
}

func (g *gatewayState) greylistStore(cfg *config.Config) (*greylist.Store, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.grey != nil {
		return g.grey, nil
	}
	st, err := greylist.Open(filepath.Join(cfg.Spool.Dir, "greylist"), cfg.Greylist.MaxEntries, nil)
	if err != nil {
		return nil, err
	}
	g.grey = st
	return st, nil
}

// stats is the metrics' view of the gateway state.
func (g *gatewayState) stats() metrics.GatewayStats {
	g.mu.Lock()
	checker, grey := g.checker, g.grey
	g.mu.Unlock()
	var out metrics.GatewayStats
	if checker != nil {
		st := checker.Stats()
		out.Lookups, out.CacheHits, out.Listed, out.Errors = st.Lookups, st.CacheHits, st.Listed, st.Errors
	}
	if grey != nil {
		st := grey.Stats()
		out.Greylisting, out.GreylistEntries = true, st.Entries
		out.Greylisted, out.GreylistPassed = st.Greylisted, st.Passed+st.Whitelisted
	}
	return out
}

func (g *gatewayState) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.grey != nil {
		g.grey.Close()
		g.grey = nil
	}
}

// greylister is reception.Greylister over the store and a config's policy.
type greylister struct {
	st *greylist.Store
	s  *Server
	p  greylist.Policy
}

func (g greylister) Check(client netip.Addr, sender, recipient string) bool {
	ok, err := g.st.Check(g.p, client, sender, recipient)
	if err != nil {
		g.s.logger.Error("greylist store failed; recipient accepted", "err", err)
	}
	return ok
}

func joinKey(parts []string) string {
	out := ""
	for _, p := range parts {
		out += p + "\x00"
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }
