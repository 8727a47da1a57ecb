// Package metrics holds cuemta's Prometheus metrics and the small API the
// engine calls to update them. Every metric is named cuemta_* and listed in
// README.md. Label values come from the configuration (listener, pool, rule,
// class and scope names) or from delivery sites, which New caps (see
// MaxSites) so that a sender reaching many small domains cannot blow up the
// number of series.
//
// Every method is safe for concurrent use and a no-op on a nil *Metrics,
// so code under test can run without metrics.
package metrics
