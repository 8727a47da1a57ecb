package server

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/cuemta/cuemta/delivery/mx"
	"github.com/cuemta/cuemta/intake"
	"github.com/cuemta/cuemta/metrics"
	"github.com/cuemta/cuemta/reception"
	"github.com/cuemta/cuemta/tlsrpt"
)

// tlsReporting is SMTP TLS Reporting while Run runs (tlsReporting.enabled
// at start): the store delivery records results in, under
// SPOOL/tlsrpt/, and the reporter that sends the reports.
type tlsReporting struct {
	store    *tlsrpt.Store
	reporter *tlsrpt.Reporter
}

// openTLSReporting opens the store and builds the reporter, or returns
// nil when TLS reporting is off. Whether it is on is read at start only:
// the counts and the delivery hook live as long as the process.
func (s *Server) openTLSReporting(resolver *mx.Resolver) (*tlsReporting, error) {
	cfg := s.Snapshot().Config
	tc := cfg.TLSReporting
	if !tc.Enabled {
		return nil, nil
	}
	store, err := tlsrpt.OpenStore(tlsrpt.StoreOptions{
		Path:              filepath.Join(cfg.Spool.Dir, "tlsrpt", "state.json"),
		MaxDomains:        tc.MaxDomains,
		MaxFailureDetails: tc.MaxFailureDetails,
		Logger:            s.logger,
	})
	if err != nil {
		return nil, err
	}
	rep := tlsrpt.NewReporter(tlsrpt.ReporterOptions{
		Store:     store,
		Settings:  s.tlsReportSettings,
		LookupTXT: reportLookupTXT(resolver),
		Enqueue: func(ctx context.Context, from, to string, msg []byte) (string, error) {
			return s.enqueueReport(ctx, tlsrpt.ReportListener, from, to, msg)
		},
		Logger: s.logger,
	})
	s.registerTLSReportMetrics(store)
	s.logger.Info("TLS reporting on", "state", filepath.Join(cfg.Spool.Dir, "tlsrpt", "state.json"), "pending_reports", store.Pending())
	return &tlsReporting{store: store, reporter: rep}, nil
}

// tlsReportSettings are the reporter's settings from the config in force.
func (s *Server) tlsReportSettings() tlsrpt.Settings {
	cfg := s.Snapshot().Config
	tc := cfg.TLSReporting
	return tlsrpt.Settings{
		Submitter: tlsrpt.Submitter{Organization: cfg.TLSReportOrganization(), Contact: cfg.TLSReportContact(), Hostname: cfg.Hostname,
			Node: s.clusterNode()},
		MailFrom: cfg.TLSReportFrom(),
		Delay:    tc.Delay.D(), Jitter: tc.Jitter.D(), HTTPTimeout: tc.HTTPTimeout.D(),
		Retry: tc.Retry.D(), MaxAge: tc.MaxAge.D(),
	}
}

// run runs the reporter every tlsReporting.flushInterval (read at start)
// until ctx ends.
func (t *tlsReporting) run(ctx context.Context, s *Server) {
	iv := s.Snapshot().Config.TLSReporting.FlushInterval.D()
	if iv <= 0 {
		iv = 5 * time.Second
	}
	t.reporter.Run(ctx, iv)
}

// enqueueReport queues a report mail (TLS or DMARC) as the MTA's own
// mail: through the message rules and DKIM signing like an injection,
// under listener, a name no real listener has (tlsrpt.ReportListener,
// dmarcreport.ReportListener): delivery counts no TLS result for a TLS
// report, and rules can tell report mail apart.
func (s *Server) enqueueReport(ctx context.Context, listener, from, to string, msg []byte) (string, error) {
	snap := s.Snapshot()
	env, body, matched, err := intake.Prepare(&snap.Policy, &intake.Message{
		From: from, Recipients: []string{to}, Body: msg, Listener: listener,
	})
	if err != nil {
		var r *reception.Reply
		if errors.As(err, &r) {
			return "", fmt.Errorf("refused by the message rules: %d %s %s", r.Code, r.Enhanced, r.Text)
		}
		return "", err
	}
	id, err := s.spool.Enqueue(ctx, env, body)
	if err != nil {
		return "", fmt.Errorf("spool: %w", err)
	}
	s.stored(id, body)
	s.accepted(&snap.Policy, id, env, len(body), matched, nil)
	s.delivery.Wake()
	return id, nil
}

// registerTLSReportMetrics exposes what the store's caps dropped and the
// reports waiting to be sent.
func (s *Server) registerTLSReportMetrics(store *tlsrpt.Store) {
	s.metrics.TLSReportStatsFunc(func() metrics.TLSReportStats {
		results, reports := store.Dropped()
		return metrics.TLSReportStats{Pending: store.Pending(), ResultsDropped: results, ReportsDropped: reports, DetailsDropped: store.DroppedDetails()}
	})
}

// reportLookupTXT is the TXT lookup of the report senders (TLS and DMARC
// reports) on resolver: a name that does not exist has no records, and
// only a failure is an error (worth a retry).
func reportLookupTXT(resolver *mx.Resolver) func(ctx context.Context, name string) ([]string, error) {
	return func(ctx context.Context, name string) ([]string, error) {
		txts, err := resolver.LookupTXT(ctx, name)
		if mx.IsPermanent(err) {
			return nil, nil // NXDOMAIN: no record, nothing to retry
		}
		return txts, err
	}
}

// clusterNode is this node's name in the cluster, "" for a server alone:
// it keeps the report ids of nodes that share a hostname apart.
func (s *Server) clusterNode() string {
	if s.cluster == nil {
		return ""
	}
	return s.cluster.Node()
}
