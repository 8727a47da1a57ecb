package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// ReceptionBudget is the state of reception's budget of message bytes in
// flight (config reception.maxBytesInFlight), read at scrape time.
type ReceptionBudget struct {
	InFlight, Limit int64
	// Transactions refused with 452 4.3.1: at MAIL FROM for a declared
	// SIZE that did not fit, and during the message data.
	RefusedAtMail, RefusedInData uint64
}

// budgetGauges are cuemta_reception_bytes_in_flight,
// cuemta_reception_bytes_in_flight_limit and
// cuemta_reception_budget_refusals_total, asked of a function at scrape
// time: the budget keeps its own counts, so reception needs no metrics
// hooks on its hot path.
type budgetGauges struct {
	inFlight, limit, refusals *prometheus.Desc
	fn                        atomic.Pointer[func() ReceptionBudget]
}

func newBudgetGauges() *budgetGauges {
	return &budgetGauges{
		inFlight: prometheus.NewDesc(ns+"_reception_bytes_in_flight", "Bytes of message data held in memory by SMTP transactions of all listeners.", nil, nil),
		limit:    prometheus.NewDesc(ns+"_reception_bytes_in_flight_limit", "The bound on cuemta_reception_bytes_in_flight (reception.maxBytesInFlight).", nil, nil),
		refusals: prometheus.NewDesc(ns+"_reception_budget_refusals_total", "Transactions answered 452 4.3.1 because message bytes in flight were at the bound, by stage (mail: a declared SIZE; data: during the data).", []string{"stage"}, nil),
	}
}

func (g *budgetGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.inFlight
	ch <- g.limit
	ch <- g.refusals
}

func (g *budgetGauges) Collect(ch chan<- prometheus.Metric) {
	f := g.fn.Load()
	if f == nil {
		return
	}
	b := (*f)()
	ch <- prometheus.MustNewConstMetric(g.inFlight, prometheus.GaugeValue, float64(b.InFlight))
	ch <- prometheus.MustNewConstMetric(g.limit, prometheus.GaugeValue, float64(b.Limit))
	ch <- prometheus.MustNewConstMetric(g.refusals, prometheus.CounterValue, float64(b.RefusedAtMail), "mail")
	ch <- prometheus.MustNewConstMetric(g.refusals, prometheus.CounterValue, float64(b.RefusedInData), "data")
}

// ReceptionBudgetFunc makes every scrape ask f for reception's budget of
// message bytes in flight. f must be cheap and safe for concurrent use;
// while no function is set the metrics are absent.
func (m *Metrics) ReceptionBudgetFunc(f func() ReceptionBudget) {
	switch {
	case m == nil:
	case f == nil:
		m.budget.fn.Store(nil)
	default:
		m.budget.fn.Store(&f)
	}
}
