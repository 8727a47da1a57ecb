package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// TLSReportStats is what TLS reporting (package tlsrpt) holds and has
// dropped, as TLSReportStatsFunc reports it.
type TLSReportStats struct {
	Pending                        int   // reports of ended windows not yet sent
	ResultsDropped, ReportsDropped int64 // results beyond the caps; reports given up
	DetailsDropped                 int64 // failed sessions without a failure-details group
}

// tlsReportGauges are the cuemta_tlsrpt_* metrics, asked of a function at
// scrape time; without one (TLS reporting off) they are absent.
type tlsReportGauges struct {
	pending, results, reports, details *prometheus.Desc
	fn                                 atomic.Pointer[func() TLSReportStats]
}

func newTLSReportGauges() *tlsReportGauges {
	return &tlsReportGauges{
		pending: prometheus.NewDesc(ns+"_tlsrpt_reports_pending", "TLS reports of ended windows waiting to be sent.", nil, nil),
		results: prometheus.NewDesc(ns+"_tlsrpt_results_dropped_total", "TLS-RPT results not counted: more recipient domains in a day than tlsReporting.maxDomains, or more policies for one.", nil, nil),
		reports: prometheus.NewDesc(ns+"_tlsrpt_reports_dropped_total", "TLS reports given up unsent: past tlsReporting.maxAge, or beyond the closed windows kept.", nil, nil),
		details: prometheus.NewDesc(ns+"_tlsrpt_failure_details_dropped_total", "Failed TLS sessions counted in a report's summary without a failure-details group (tlsReporting.maxFailureDetails).", nil, nil),
	}
}

func (g *tlsReportGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.pending
	ch <- g.results
	ch <- g.reports
	ch <- g.details
}

func (g *tlsReportGauges) Collect(ch chan<- prometheus.Metric) {
	f := g.fn.Load()
	if f == nil {
		return
	}
	s := (*f)()
	ch <- prometheus.MustNewConstMetric(g.pending, prometheus.GaugeValue, float64(s.Pending))
	ch <- prometheus.MustNewConstMetric(g.results, prometheus.CounterValue, float64(s.ResultsDropped))
	ch <- prometheus.MustNewConstMetric(g.reports, prometheus.CounterValue, float64(s.ReportsDropped))
	ch <- prometheus.MustNewConstMetric(g.details, prometheus.CounterValue, float64(s.DetailsDropped))
}

// TLSReportStatsFunc makes the cuemta_tlsrpt_* metrics report f's
// answer at each scrape; nil removes them.
func (m *Metrics) TLSReportStatsFunc(f func() TLSReportStats) {
	switch {
	case m == nil:
	case f == nil:
		m.tlsReports.fn.Store(nil)
	default:
		m.tlsReports.fn.Store(&f)
	}
}
