package metrics

import "github.com/prometheus/client_golang/prometheus"

// milterMetrics are the content filters' counters (milter/), kept in this
// file apart from New, which registers them so every metric is listed from
// the start. The labels are bounded: listener and milter names come from
// the config, outcome and kind from fixed lists.
type milterMetrics struct {
	outcomes, errors *prometheus.CounterVec
}

func newMilterMetrics() *milterMetrics {
	return &milterMetrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "milter_outcomes_total",
			Help: "Content filter verdicts on messages, by listener, milter and outcome (accept, reject, tempfail, discard, quarantine, error)."},
			[]string{"listener", "milter", "outcome"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "milter_errors_total",
			Help: "Failures to ask a content filter, by listener, milter and kind (unreachable, timeout, protocol); its onError applied."},
			[]string{"listener", "milter", "kind"}),
	}
}

// MilterOutcome counts a filter's verdict on one message.
func (m *Metrics) MilterOutcome(listener, milter, outcome string) {
	if m != nil {
		m.milters.outcomes.WithLabelValues(listener, milter, outcome).Inc()
	}
}

// MilterError counts a failure to ask a filter.
func (m *Metrics) MilterError(listener, milter, kind string) {
	if m != nil {
		m.milters.errors.WithLabelValues(listener, milter, kind).Inc()
	}
}
