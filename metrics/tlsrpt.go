package metrics

import "github.com/prometheus/client_golang/prometheus"

// TLSReportStats is what TLS reporting (package tlsrpt) holds and has
// dropped, as TLSReportStatsFunc reports it.
type TLSReportStats struct {
	Pending                        int   // reports of ended windows not yet sent
	ResultsDropped, ReportsDropped int64 // results beyond the caps; reports given up
	DetailsDropped                 int64 // failed sessions without a failure-details group
}

// newTLSReportGauges are the cuemta_tlsrpt_* metrics.
func newTLSReportGauges() *reportGauges[TLSReportStats] {
	return newReportGauges(
		reportStat[TLSReportStats]{"tlsrpt_reports_pending", "TLS reports of ended windows waiting to be sent.",
			prometheus.GaugeValue, func(s TLSReportStats) float64 { return float64(s.Pending) }},
		reportStat[TLSReportStats]{"tlsrpt_results_dropped_total", "TLS-RPT results not counted: more recipient domains in a day than tlsReporting.maxDomains, or more policies for one.",
			prometheus.CounterValue, func(s TLSReportStats) float64 { return float64(s.ResultsDropped) }},
		reportStat[TLSReportStats]{"tlsrpt_reports_dropped_total", "TLS reports given up unsent: past tlsReporting.maxAge, or beyond the closed windows kept.",
			prometheus.CounterValue, func(s TLSReportStats) float64 { return float64(s.ReportsDropped) }},
		reportStat[TLSReportStats]{"tlsrpt_failure_details_dropped_total", "Failed TLS sessions counted in a report's summary without a failure-details group (tlsReporting.maxFailureDetails).",
			prometheus.CounterValue, func(s TLSReportStats) float64 { return float64(s.DetailsDropped) }},
	)
}

// TLSReportStatsFunc makes the cuemta_tlsrpt_* metrics report f's
// answer at each scrape; nil removes them.
func (m *Metrics) TLSReportStatsFunc(f func() TLSReportStats) {
	if m != nil {
		m.tlsReports.set(f)
	}
}
