package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// queueGauge is cuemta_queue_messages: either a value set by the engine or
// a function asked at scrape time, whichever the engine finds cheaper.
type queueGauge struct {
	desc *prometheus.Desc
	n    atomic.Int64
	fn   atomic.Pointer[func() int]
}

func newQueueGauge() *queueGauge {
	return &queueGauge{desc: prometheus.NewDesc(ns+"_queue_messages", "Messages in the queue (not yet delivered, bounced or expired).", nil, nil)}
}

func (q *queueGauge) set(n int) { q.n.Store(int64(n)) }

func (q *queueGauge) setFunc(f func() int) {
	if f == nil {
		q.fn.Store(nil)
		return
	}
	q.fn.Store(&f)
}

func (q *queueGauge) Describe(ch chan<- *prometheus.Desc) { ch <- q.desc }

func (q *queueGauge) Collect(ch chan<- prometheus.Metric) {
	v := q.n.Load()
	if f := q.fn.Load(); f != nil {
		v = int64((*f)())
	}
	ch <- prometheus.MustNewConstMetric(q.desc, prometheus.GaugeValue, float64(v))
}
