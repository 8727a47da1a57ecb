package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"sync"
)

// Metrics is the set of cuemta metrics with its own registry.
type Metrics struct {
	reg   *prometheus.Registry
	sites *limiter

	hooksOnce sync.Once
	// tlsReports are the TLS reporting gauges (tlsrpt.go).
	tlsReports *reportGauges[TLSReportStats]
	// dmarcReports are the DMARC reporting gauges (dmarc.go).
	dmarcReports *reportGauges[DMARCReportStats]
	hooks        *hookMetrics // webhooks (hooks.go)
	cluster      *clusterGauges

	// gateway are the stage rules' DNSBL and greylist gauges (gateway.go).
	gateway *gatewayGauges

	received    *prometheus.CounterVec
	delivered   *prometheus.CounterVec
	transient   *prometheus.CounterVec
	bounced     *prometheus.CounterVec
	expired     *prometheus.CounterVec
	ruleHits    *prometheus.CounterVec
	ruleErrors  *prometheus.CounterVec
	reloads     *prometheus.CounterVec
	reloadTime  prometheus.Gauge
	reloadOK    prometheus.Gauge
	generation  prometheus.Gauge
	queue       *queueGauge
	space       *spaceGauges
	budget      *budgetGauges
	outConns    *prometheus.GaugeVec
	inConns     *prometheus.GaugeVec
	suspensions *prometheus.GaugeVec
	fsync       prometheus.Histogram
	replies     prometheus.Histogram
	limited     *prometheus.CounterVec
	authFailed  prometheus.Counter
	authRefused *prometheus.CounterVec
	feedback    *prometheus.CounterVec
	verified    *prometheus.CounterVec
	tls         *prometheus.CounterVec
	milters     *milterMetrics       // content filters (milter.go)
	reputation  *prometheus.GaugeVec // reputation.go
}

// Option adjusts New.
type Option func(*Metrics)

// MaxSites caps the distinct values of the site label (DefaultMaxSites by
// default); sites seen after the cap are counted under OtherSite.
func MaxSites(n int) Option { return func(m *Metrics) { m.sites = newLimiter(n) } }

// New returns the metrics registered, with the Go runtime and process
// collectors, on a new registry (see Registry).
func New(opts ...Option) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), sites: newLimiter(DefaultMaxSites)}
	for _, o := range opts {
		o(m)
	}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help}, labels)
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: name, Help: help})
	}
	gaugeVec := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: name, Help: help}, labels)
	}
	m.received = counter("messages_received_total", "Messages accepted and stored, by listener (http for the injection API).", "listener")
	m.delivered = counter("recipients_delivered_total", "Recipients delivered, by site.", "site")
	m.transient = counter("recipients_transient_failures_total", "Delivery attempts that failed temporarily, by site, reply class and bounce category.", "site", "class", "category")
	m.bounced = counter("recipients_bounced_total", "Recipients that failed permanently, by site, reply class and bounce category.", "site", "class", "category")
	m.expired = counter("recipients_expired_total", "Recipients given up after retry.maxAge, by site.", "site")
	m.ruleHits = counter("rule_hits_total", "Times a rule matched, by kind (message or response) and rule name.", "kind", "rule")
	m.ruleErrors = counter("rule_errors_total", "Times a rule failed to evaluate, by kind and rule name.", "kind", "rule")
	m.reloads = counter("config_reloads_total", "Configuration reloads, by result (ok or error).", "result")
	m.reloadTime = gauge("config_last_reload_timestamp_seconds", "Unix time of the last reload attempt.")
	m.reloadOK = gauge("config_last_reload_successful", "1 if the last reload attempt was applied, 0 if it was refused.")
	m.generation = gauge("config_generation", "Generation of the configuration in force (1 at startup, +1 per applied reload).")
	m.queue = newQueueGauge()
	m.space = newSpaceGauges()
	m.budget = newBudgetGauges()
	m.outConns = gaugeVec("delivery_connections_open", "Open outbound SMTP connections, by site.", "site")
	m.inConns = gaugeVec("smtp_connections_open", "Open inbound SMTP connections, by listener.", "listener")
	m.suspensions = gaugeVec("suspensions_active", "Suspensions in force, by scope (site, source, tenant, campaign).", "scope")
	m.fsync = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: ns, Name: "spool_fsync_seconds",
		Help:    "Latency of spool fsyncs (one per group commit).",
		Buckets: fsyncBuckets,
	})
	m.replies = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: ns, Name: "smtp_reply_seconds",
		Help:    "Time remote servers took to answer an SMTP command during delivery.",
		Buckets: replyBuckets,
	})
	m.limited = counter("reception_limited_total", "Reception refusals by a limit, by limit (messages, recipients, connections) and key (client_ip, user, tenant, listener).", "limit", "key")
	m.authFailed = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "auth_failures_total", Help: "AUTH attempts with wrong credentials."})
	m.authRefused = counter("auth_refused_total", "AUTH attempts refused without a password check, by reason (client_ip, user, connection, busy).", "reason")
	m.tls = counter("recipients_delivered_tls_total", "Recipients delivered, by the TLS version of the connection (none without TLS) and what authenticated the server (none, system-roots, mta-sts).", "version", "verified")
	m.feedback = counter("feedback_reports_total", "Reports received by feedback listeners, by kind (arf, dsn, bounce, unknown) and whether they matched a message.", "kind", "matched")
	m.verified = counter("inbound_verifications_total", "Verifications of inbound mail, by listener, check (spf, dkim, dmarc, arc) and result; dkim is one word for all of a message's signatures.", "listener", "check", "result")
	m.reloadOK.Set(1) // the startup config was valid, or we would not run
	m.hookSet()       // webhooks (hooks.go)
	m.tlsReports = newTLSReportGauges()
	m.dmarcReports = newDMARCReportGauges()
	m.milters = newMilterMetrics()
	m.cluster = newClusterGauges()
	m.reputation = newReputationGauge()
	m.gateway = newGatewayGauges()
	m.reg.MustRegister(m.cluster,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.received, m.delivered, m.transient, m.bounced, m.expired,
		m.ruleHits, m.ruleErrors, m.reloads, m.reloadTime, m.reloadOK, m.generation,
		m.queue, m.space, m.budget, m.outConns, m.inConns, m.suspensions, m.fsync, m.replies,
		m.limited, m.authFailed, m.authRefused, m.feedback, m.verified, m.tls, m.tlsReports, m.dmarcReports,
		m.milters.outcomes, m.milters.errors,
		m.reputation,
		m.gateway,
	)
	return m
}

const ns = "cuemta"

var (
	// 50µs to 1s: an SSD fsync is ~100µs-2ms; seconds mean a sick disk.
	fsyncBuckets = []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1}
	// 5ms to 2min: replies to DATA can take tens of seconds (content scanning).
	replyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}
)

// Registry is the registry holding every metric, for promhttp and for
// extra collectors.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// FeedbackReports is cuemta_feedback_reports_total{kind, matched}, which
// the feedback listeners count into; nil for a nil Metrics.
func (m *Metrics) FeedbackReports() *prometheus.CounterVec {
	if m == nil {
		return nil
	}
	return m.feedback
}

// DeliveredTLS counts a delivered recipient by its connection's TLS
// version ("" for none) and verification (see delivery.TLSVerified*).
func (m *Metrics) DeliveredTLS(version, verified string) {
	if m == nil {
		return
	}
	if version == "" {
		version = "none"
	}
	m.tls.WithLabelValues(version, verified).Inc()
}
