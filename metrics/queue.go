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

// SpoolSpace is what SpoolSpaceFunc reports.
type SpoolSpace struct {
	Free    int64 // bytes free on the spool's filesystem; < 0 unknown
	Reserve int64 // bytes reception leaves free; < 0 disabled
	Low     bool  // reception is refused for lack of space
}

// spaceGauges are cuemta_spool_free_bytes, cuemta_spool_reserve_bytes and
// cuemta_spool_low_space, asked of a function at scrape time.
type spaceGauges struct {
	free, reserve, low *prometheus.Desc
	fn                 atomic.Pointer[func() SpoolSpace]
}

func newSpaceGauges() *spaceGauges {
	return &spaceGauges{
		free:    prometheus.NewDesc(ns+"_spool_free_bytes", "Bytes available on the spool's filesystem at the spool's last check.", nil, nil),
		reserve: prometheus.NewDesc(ns+"_spool_reserve_bytes", "Bytes that reception leaves free on the spool's filesystem (spool.reserve).", nil, nil),
		low:     prometheus.NewDesc(ns+"_spool_low_space", "1 while new mail is refused (452 4.3.1) because the spool's free space is down to the reserve.", nil, nil),
	}
}

func (g *spaceGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.free
	ch <- g.reserve
	ch <- g.low
}

func (g *spaceGauges) Collect(ch chan<- prometheus.Metric) {
	f := g.fn.Load()
	if f == nil {
		return
	}
	sp := (*f)()
	if sp.Free >= 0 {
		ch <- prometheus.MustNewConstMetric(g.free, prometheus.GaugeValue, float64(sp.Free))
	}
	if sp.Reserve >= 0 {
		ch <- prometheus.MustNewConstMetric(g.reserve, prometheus.GaugeValue, float64(sp.Reserve))
	}
	low := 0.0
	if sp.Low {
		low = 1
	}
	ch <- prometheus.MustNewConstMetric(g.low, prometheus.GaugeValue, low)
}
