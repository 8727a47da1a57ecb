package server

import (
	"context"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/cuemta/cuemta/delivery/mx"
	"github.com/cuemta/cuemta/dmarcreport"
	"github.com/cuemta/cuemta/inauth"
	"github.com/cuemta/cuemta/metrics"
	"github.com/cuemta/cuemta/reception"
)

// dmarcReporting is DMARC aggregate reporting while Run runs
// (dmarcReporting.enabled at start): the store the verification of
// inbound mail records in, under SPOOL/dmarc/, and the reporter that
// sends the reports.
type dmarcReporting struct {
	store    *dmarcreport.Store
	reporter *dmarcreport.Reporter
}

// openDMARCReporting opens the store and builds the reporter, or returns
// nil when DMARC reporting is off. Whether it is on is read at start
// only, like TLS reporting.
func (s *Server) openDMARCReporting(resolver *mx.Resolver) (*dmarcReporting, error) {
	cfg := s.Snapshot().Config
	dc := cfg.DMARCReporting
	if !dc.Enabled {
		return nil, nil
	}
	path := filepath.Join(cfg.Spool.Dir, "dmarc", "state.json")
	store, err := dmarcreport.OpenStore(dmarcreport.StoreOptions{
		Path:       path,
		MaxDomains: dc.MaxDomains,
		MaxRecords: dc.MaxRecords,
		MaxRows:    dc.MaxRows,
		Logger:     s.logger,
	})
	if err != nil {
		return nil, err
	}
	rep := dmarcreport.NewReporter(dmarcreport.ReporterOptions{
		Store:     store,
		Settings:  s.dmarcReportSettings,
		LookupTXT: reportLookupTXT(resolver),
		Enqueue: func(ctx context.Context, from, to string, msg []byte) (string, error) {
			return s.enqueueReport(ctx, dmarcreport.ReportListener, from, to, msg)
		},
		Logger: s.logger,
	})
	s.metrics.DMARCReportStatsFunc(func() metrics.DMARCReportStats {
		results, reports := store.Dropped()
		return metrics.DMARCReportStats{Pending: store.Pending(), ResultsDropped: results, ReportsDropped: reports}
	})
	s.logger.Info("DMARC reporting on", "state", path, "pending_reports", store.Pending())
	return &dmarcReporting{store: store, reporter: rep}, nil
}

// dmarcReportSettings are the reporter's settings from the config in
// force.
func (s *Server) dmarcReportSettings() dmarcreport.Settings {
	cfg := s.Snapshot().Config
	dc := cfg.DMARCReporting
	return dmarcreport.Settings{
		Submitter: dmarcreport.Submitter{Organization: cfg.DMARCReportOrganization(), Email: cfg.DMARCReportFrom(),
			ContactInfo: dc.ContactInfo, Hostname: cfg.Hostname, Node: s.clusterNode()},
		MailFrom: cfg.DMARCReportFrom(),
		Delay:    dc.Delay.D(), Jitter: dc.Jitter.D(), Retry: dc.Retry.D(), MaxAge: dc.MaxAge.D(),
	}
}

// run runs the reporter every dmarcReporting.flushInterval (read at
// start) until ctx ends.
func (d *dmarcReporting) run(ctx context.Context, s *Server) {
	iv := s.Snapshot().Config.DMARCReporting.FlushInterval.D()
	if iv <= 0 {
		iv = 5 * time.Second
	}
	d.reporter.Run(ctx, iv)
}

// dmarcResult is what an aggregate report counts of one verified
// message; ok is false for a message no report covers: DMARC not
// checked, no record, no rua, or no pass or fail to report (RFC 7489
// §7.2 reports evaluations of a policy; a temperror evaluated none).
func dmarcResult(sub *reception.Submission, r *inauth.Results) (dmarcreport.Result, bool) {
	d := r.DMARC
	if !r.Checks.DMARC || d.Published == nil || len(d.Published.Rua) == 0 ||
		(d.Result != inauth.ResultPass && d.Result != inauth.ResultFail) {
		return dmarcreport.Result{}, false
	}
	ip, err := netip.ParseAddr(sub.ClientIP)
	if err != nil {
		return dmarcreport.Result{}, false
	}
	p := d.Published
	res := dmarcreport.Result{
		SourceIP:   ip.Unmap(),
		HeaderFrom: d.Domain,
		Published: dmarcreport.Policy{Domain: p.Domain, ADKIM: p.ADKIM, ASPF: p.ASPF, P: p.P, SP: p.SP, Pct: p.Pct,
			Rua: p.Rua},
		Disposition: d.Disposition,
		SampledOut:  d.SampledOut,
		DKIMAligned: d.DKIMAligned,
		SPFAligned:  d.SPFAligned,
	}
	if at := strings.LastIndexByte(sub.From, '@'); at >= 0 {
		res.EnvelopeFrom = strings.ToLower(sub.From[at+1:])
	}
	for _, k := range r.DKIM {
		res.DKIM = append(res.DKIM, dmarcreport.DKIMAuth{Domain: k.Domain, Selector: k.Selector, Result: k.Result})
	}
	// RFC 7489 Appendix C: SPF's scope is "mfrom" or "helo"; inauth names
	// the MAIL FROM identity "mailfrom" (RFC 7208).
	scope := "mfrom"
	if r.SPF.Scope == "helo" {
		scope = "helo"
	}
	spf := r.SPF.Result
	if !r.Checks.SPF || spf == "" {
		spf = "none"
	}
	res.SPF = dmarcreport.SPFAuth{Domain: r.SPF.Domain, Scope: scope, Result: spf}
	return res, true
}
