package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// HookQueue is what HookStatsFunc reports for one hook.
type HookQueue struct {
	Name   string
	Queued int
	Oldest time.Duration
}

// hookGauges are cuemta_hook_queued and cuemta_hook_oldest_seconds, asked
// of a function at scrape time: the age of the oldest event grows by
// itself, so a value set on each change would be stale.
type hookGauges struct {
	queued, oldest *prometheus.Desc
	fn             atomic.Pointer[func() []HookQueue]
}

func newHookGauges() *hookGauges {
	return &hookGauges{
		queued: prometheus.NewDesc(ns+"_hook_queued", "Events queued for a webhook and not yet acknowledged by a 2xx, by hook.", []string{"hook"}, nil),
		oldest: prometheus.NewDesc(ns+"_hook_oldest_seconds", "Age of the oldest event not yet acknowledged by a webhook (0 when none), by hook.", []string{"hook"}, nil),
	}
}

func (g *hookGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.queued
	ch <- g.oldest
}

func (g *hookGauges) Collect(ch chan<- prometheus.Metric) {
	f := g.fn.Load()
	if f == nil {
		return
	}
	for _, h := range (*f)() {
		ch <- prometheus.MustNewConstMetric(g.queued, prometheus.GaugeValue, float64(h.Queued), h.Name)
		ch <- prometheus.MustNewConstMetric(g.oldest, prometheus.GaugeValue, h.Oldest.Seconds(), h.Name)
	}
}

// hookMetrics are the webhook metrics, kept in this file apart from New,
// which registers them (hookSet) so that every metric is listed from the start.
type hookMetrics struct {
	sent, failed *prometheus.CounterVec
	gauges       *hookGauges
}

func (m *Metrics) hookSet() *hookMetrics {
	m.hooksOnce.Do(func() {
		h := &hookMetrics{
			sent: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "hook_sent_total",
				Help: "Events acknowledged by a webhook's 2xx, by hook."}, []string{"hook"}),
			failed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "hook_failed_total",
				Help: "Failed webhook POSTs (non-2xx or network error), by hook."}, []string{"hook"}),
			gauges: newHookGauges(),
		}
		m.reg.MustRegister(h.sent, h.failed, h.gauges)
		m.hooks = h
	})
	return m.hooks
}

// HookSent counts n events acknowledged by hook.
func (m *Metrics) HookSent(hook string, n int) {
	if m != nil {
		m.hookSet().sent.WithLabelValues(hook).Add(float64(n))
	}
}

// HookFailed counts one failed POST to hook.
func (m *Metrics) HookFailed(hook string) {
	if m != nil {
		m.hookSet().failed.WithLabelValues(hook).Inc()
	}
}

// HookStatsFunc sets the function asked for the hook gauges at scrape time.
func (m *Metrics) HookStatsFunc(f func() []HookQueue) {
	if m != nil {
		m.hookSet().gauges.fn.Store(&f)
	}
}
