package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// reportStat is one metric of a report sender (TLS reports, DMARC
// reports): its name after the namespace, help, type, and how to read it
// from the sender's stats S.
type reportStat[S any] struct {
	name, help string
	kind       prometheus.ValueType
	value      func(S) float64
}

// reportGauges are a report sender's metrics, asked of a function at
// scrape time; without one (reporting off) they are absent.
type reportGauges[S any] struct {
	stats []reportStat[S]
	descs []*prometheus.Desc
	fn    atomic.Pointer[func() S]
}

func newReportGauges[S any](stats ...reportStat[S]) *reportGauges[S] {
	g := &reportGauges[S]{stats: stats}
	for _, s := range stats {
		g.descs = append(g.descs, prometheus.NewDesc(ns+"_"+s.name, s.help, nil, nil))
	}
	return g
}

func (g *reportGauges[S]) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range g.descs {
		ch <- d
	}
}

func (g *reportGauges[S]) Collect(ch chan<- prometheus.Metric) {
	f := g.fn.Load()
	if f == nil {
		return
	}
	s := (*f)()
	for i, st := range g.stats {
		ch <- prometheus.MustNewConstMetric(g.descs[i], st.kind, st.value(s))
	}
}

// set makes the metrics report f's answer at each scrape; nil removes
// them.
func (g *reportGauges[S]) set(f func() S) {
	if f == nil {
		g.fn.Store(nil)
		return
	}
	g.fn.Store(&f)
}
