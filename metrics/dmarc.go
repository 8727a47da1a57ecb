package metrics

import "github.com/prometheus/client_golang/prometheus"

// DMARCReportStats is what DMARC aggregate reporting (package
// dmarcreport) holds and has dropped, as DMARCReportStatsFunc reports it.
type DMARCReportStats struct {
	Pending                        int   // reports of ended windows not yet sent
	ResultsDropped, ReportsDropped int64 // results beyond the caps; reports given up
}

// newDMARCReportGauges are the cuemta_dmarc_* metrics.
func newDMARCReportGauges() *reportGauges[DMARCReportStats] {
	return newReportGauges(
		reportStat[DMARCReportStats]{"dmarc_reports_pending", "DMARC aggregate reports of ended windows waiting to be sent.",
			prometheus.GaugeValue, func(s DMARCReportStats) float64 { return float64(s.Pending) }},
		reportStat[DMARCReportStats]{"dmarc_results_dropped_total", "Verified messages not counted in a DMARC report: more policy domains in a day than dmarcReporting.maxDomains, more rows for one than maxRecords, or more rows in all than maxRows.",
			prometheus.CounterValue, func(s DMARCReportStats) float64 { return float64(s.ResultsDropped) }},
		reportStat[DMARCReportStats]{"dmarc_reports_dropped_total", "DMARC aggregate reports given up unsent: past dmarcReporting.maxAge, or beyond the closed windows kept.",
			prometheus.CounterValue, func(s DMARCReportStats) float64 { return float64(s.ReportsDropped) }},
	)
}

// DMARCReportStatsFunc makes the cuemta_dmarc_* metrics report f's
// answer at each scrape; nil removes them.
func (m *Metrics) DMARCReportStatsFunc(f func() DMARCReportStats) {
	if m != nil {
		m.dmarcReports.set(f)
	}
}
