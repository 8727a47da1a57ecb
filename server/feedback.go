package server

import (
	"path/filepath"
	"sync"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/feedback"
	"github.com/cuemta/cuemta/internal/msgheader"
	"github.com/cuemta/cuemta/reception"
	"github.com/prometheus/client_golang/prometheus"
)

// feedbackState is what the feedback listeners share across reloads: the
// index of recent messages (filled by every listener and the injection
// API) and the reports counter.
type feedbackState struct {
	once    sync.Once
	index   *feedback.Index
	reports *prometheus.CounterVec
	store   *feedback.Store
}

func (s *Server) feedbackState() *feedbackState {
	f := &s.fb
	f.once.Do(func() {
		// The spool's directory, opened once: a reload does not move it.
		dir := filepath.Join(s.Snapshot().Config.Spool.Dir, "feedback")
		idx, skipped, err := feedback.OpenIndex(dir, 0, s.logger)
		switch {
		case err != nil:
			// The index is a cache: without its log, reports still
			// match while the process lives, and by VERP after.
			s.logger.Error("feedback index: log not opened; recent messages are kept in memory only", "err", err)
			idx = feedback.NewIndex(0)
		case skipped > 0:
			s.logger.Warn("feedback index: damaged records skipped", "dir", dir, "skipped", skipped)
		}
		f.index = idx
		f.reports = s.metrics.FeedbackReports()
		f.store = &feedback.Store{Dir: filepath.Join(dir, "unmatched")}
	})
	return f
}

// closeFeedback writes out the feedback index's log, if one was opened.
func (s *Server) closeFeedback() {
	if s.fb.index != nil {
		if err := s.fb.index.Close(); err != nil {
			s.logger.Error("feedback index: close", "err", err)
		}
	}
}

// stored is given every message stored (SMTP or the injection API) before
// it is accepted: the webhooks' header cache and the feedback index. The
// header is parsed once for both, and not at all when neither is on.
func (s *Server) stored(id string, body []byte) {
	hooksOn, feedback := s.hooks.Active(), feedbackOn(s.Snapshot())
	if !hooksOn && !feedback {
		return
	}
	h, _ := msgheader.ParseHeader(body) // a malformed header yields what parsed before the fault
	if hooksOn {
		s.hooks.Remember(id, h)
	}
	if feedback {
		s.feedbackState().index.Stored(id, h.Get("Message-ID"))
	}
}

// remember notes an accepted message's envelope in the feedback index.
func (s *Server) remember(id, from, tenant, campaign string) {
	if feedbackOn(s.Snapshot()) {
		s.feedbackState().index.Accepted(id, from, tenant, campaign)
	}
}

// feedbackOn reports whether reports can arrive, so that a server
// without feedback domains keeps no index.
func feedbackOn(snap *Snapshot) bool { return len(snap.Config.Feedback.Domains) > 0 }

// feedbackListener adapts a listener of mode "feedback": it accepts
// feedback.domains only (no relay network, whoever connects) and its sink
// handles reports rather than queueing them.
func (s *Server) feedbackListener(cfg *config.Listener, snap *Snapshot, pol *reception.Policy) reception.Sink {
	f := s.feedbackState()
	pol.Relay = reception.RelayPolicy{Domains: snap.Config.Feedback.Domains}
	f.store.SetKeep(snap.Config.Feedback.KeepUnmatched)
	return feedback.NewHandler(feedback.Options{
		Listener: cfg.Name, VERPDomain: snap.Config.VERPDomain(), Index: f.index,
		Emit: s.event, Suppressor: feedbackSuppressor{s}, Unmatched: f.store, Reports: f.reports, Logger: s.logger,
	})
}
