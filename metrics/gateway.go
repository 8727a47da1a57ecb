package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// GatewayStats are the stage rules' DNS lookups (package dnsbl) and the
// greylist (package greylist), as GatewayStatsFunc reports them.
type GatewayStats struct {
	Lookups, CacheHits, Listed, Errors uint64
	Greylisting                        bool // a greylist store is open
	GreylistEntries                    int
	Greylisted, GreylistPassed         uint64
}

// gatewayGauges are the cuemta_dnsbl_* and cuemta_greylist_* metrics,
// asked of a function at scrape time; without one (no stage rules) they
// are absent.
type gatewayGauges struct {
	lookups, hits, listed, errors, entries, greylisted, passed *prometheus.Desc
	fn                                                         atomic.Pointer[func() GatewayStats]
}

func newGatewayGauges() *gatewayGauges {
	return &gatewayGauges{
		lookups:    prometheus.NewDesc(ns+"_dnsbl_lookups_total", "DNS lookups made for dnsbl(), rhsbl() and client_name in stage rules (cache misses).", nil, nil),
		hits:       prometheus.NewDesc(ns+"_dnsbl_cache_hits_total", "dnsbl() and rhsbl() answers taken from the cache.", nil, nil),
		listed:     prometheus.NewDesc(ns+"_dnsbl_listed_total", "dnsbl() and rhsbl() answers that listed the client or domain.", nil, nil),
		errors:     prometheus.NewDesc(ns+"_dnsbl_errors_total", "Lookups that failed, timed out, answered outside 127.0.0.0/8 or were over the transaction's budget: counted as not listed.", nil, nil),
		entries:    prometheus.NewDesc(ns+"_greylist_entries", "Triplets and networks held by the greylist (at most greylist.maxEntries).", nil, nil),
		greylisted: prometheus.NewDesc(ns+"_greylist_greylisted_total", "Recipients answered 451 4.7.1 by greylisting.", nil, nil),
		passed:     prometheus.NewDesc(ns+"_greylist_passed_total", "Greylisted recipients accepted: retried after the delay, known or whitelisted.", nil, nil),
	}
}

func (g *gatewayGauges) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{g.lookups, g.hits, g.listed, g.errors, g.entries, g.greylisted, g.passed} {
		ch <- d
	}
}

func (g *gatewayGauges) Collect(ch chan<- prometheus.Metric) {
	f := g.fn.Load()
	if f == nil {
		return
	}
	s := (*f)()
	ch <- prometheus.MustNewConstMetric(g.lookups, prometheus.CounterValue, float64(s.Lookups))
	ch <- prometheus.MustNewConstMetric(g.hits, prometheus.CounterValue, float64(s.CacheHits))
	ch <- prometheus.MustNewConstMetric(g.listed, prometheus.CounterValue, float64(s.Listed))
	ch <- prometheus.MustNewConstMetric(g.errors, prometheus.CounterValue, float64(s.Errors))
	if s.Greylisting {
		ch <- prometheus.MustNewConstMetric(g.entries, prometheus.GaugeValue, float64(s.GreylistEntries))
		ch <- prometheus.MustNewConstMetric(g.greylisted, prometheus.CounterValue, float64(s.Greylisted))
		ch <- prometheus.MustNewConstMetric(g.passed, prometheus.CounterValue, float64(s.GreylistPassed))
	}
}

// GatewayStatsFunc makes the cuemta_dnsbl_* and cuemta_greylist_*
// metrics report f's answer at each scrape; nil removes them.
func (m *Metrics) GatewayStatsFunc(f func() GatewayStats) {
	switch {
	case m == nil:
	case f == nil:
		m.gateway.fn.Store(nil)
	default:
		m.gateway.fn.Store(&f)
	}
}
