package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// DMARCReportStats is what DMARC aggregate reporting (package
// dmarcreport) holds and has dropped, as DMARCReportStatsFunc reports it.
type DMARCReportStats struct {
	Pending                        int   // reports of ended windows not yet sent
	ResultsDropped, ReportsDropped int64 // results beyond the caps; reports given up
}

// dmarcReportGauges are the cuemta_dmarc_* metrics, asked of a function
// at scrape time; without one (DMARC reporting off) they are absent.
type dmarcReportGauges struct {
	pending, results, reports *prometheus.Desc
	fn                        atomic.Pointer[func() DMARCReportStats]
}

func newDMARCReportGauges() *dmarcReportGauges {
	return &dmarcReportGauges{
		pending: prometheus.NewDesc(ns+"_dmarc_reports_pending", "DMARC aggregate reports of ended windows waiting to be sent.", nil, nil),
		results: prometheus.NewDesc(ns+"_dmarc_results_dropped_total", "Verified messages not counted in a DMARC report: more policy domains in a day than dmarcReporting.maxDomains, more rows for one than maxRecords, or more rows in all than maxRows.", nil, nil),
		reports: prometheus.NewDesc(ns+"_dmarc_reports_dropped_total", "DMARC aggregate reports given up unsent: past dmarcReporting.maxAge, or beyond the closed windows kept.", nil, nil),
	}
}

func (g *dmarcReportGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.pending
	ch <- g.results
	ch <- g.reports
}

func (g *dmarcReportGauges) Collect(ch chan<- prometheus.Metric) {
	f := g.fn.Load()
	if f == nil {
		return
	}
	s := (*f)()
	ch <- prometheus.MustNewConstMetric(g.pending, prometheus.GaugeValue, float64(s.Pending))
	ch <- prometheus.MustNewConstMetric(g.results, prometheus.CounterValue, float64(s.ResultsDropped))
	ch <- prometheus.MustNewConstMetric(g.reports, prometheus.CounterValue, float64(s.ReportsDropped))
}

// DMARCReportStatsFunc makes the cuemta_dmarc_* metrics report f's
// answer at each scrape; nil removes them.
func (m *Metrics) DMARCReportStatsFunc(f func() DMARCReportStats) {
	switch {
	case m == nil:
	case f == nil:
		m.dmarcReports.fn.Store(nil)
	default:
		m.dmarcReports.fn.Store(&f)
	}
}
