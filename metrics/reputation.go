package metrics

import "github.com/prometheus/client_golang/prometheus"

// newReputationGauge is cuemta_reputation_listed: 1 while a list lists
// one of our sources (label source, domain empty) or sending domains
// (label domain, source empty), 0 once it no longer does.
func newReputationGauge() *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "reputation_listed",
		Help: "1 while a DNS blocklist lists an egress source (source) or a sending domain (domain), by list zone; 0 after it was delisted."},
		[]string{"source", "domain", "list"})
}

// ReputationListed sets whether list lists the source or the domain (one
// of them is "").
func (m *Metrics) ReputationListed(source, domain, list string, listed bool) {
	if m == nil {
		return
	}
	v := 0.0
	if listed {
		v = 1
	}
	m.reputation.WithLabelValues(source, domain, list).Set(v)
}
