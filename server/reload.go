package server

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/cuemta/cuemta/config"
)

// ReloadResult is the outcome of one reload.
type ReloadResult struct {
	OK         bool          `json:"ok"`
	Generation uint64        `json:"generation"` // in force after the reload
	Errors     []string      `json:"errors,omitempty"`
	Duration   time.Duration `json:"duration_ns"`
	Time       time.Time     `json:"time"`
	Trigger    string        `json:"trigger"`
}

// reloader serialises reloads and remembers the last outcome.
type reloader struct {
	mu          sync.Mutex
	last        *ReloadResult
	lastFailure *ReloadResult
	onResult    func(*ReloadResult)
}

// Reload loads, validates and compiles the configuration again and, only
// if every part of it is sound, swaps it in whole. A config that fails
// anywhere changes nothing: the running snapshot stays.
//
// What changes live: profiles and limits (lanes re-resolve before their
// next message; a lowered cap closes surplus connections after their
// current message, a raised one opens more at once), rules, routes,
// pools, DKIM keys, certificates and listeners (a new listener is bound
// before removed ones stop accepting; removed listeners drain). SMTP
// sessions in progress finish on the snapshot they started with.
func (s *Server) Reload(ctx context.Context, trigger string) *ReloadResult {
	select {
	case <-s.ready: // the spool, delivery and listeners are up
	case <-ctx.Done():
		return &ReloadResult{Time: time.Now(), Trigger: trigger, Generation: s.Snapshot().Generation, Errors: []string{"server is not running"}}
	}
	s.reload.mu.Lock()
	defer s.reload.mu.Unlock()
	start := time.Now()
	res := &ReloadResult{Time: start, Trigger: trigger}
	old := s.Snapshot()
	snap, err := Load(s.path)
	if err == nil {
		snap.Generation = old.Generation + 1
		err = s.apply(old, snap)
	}
	res.Duration = time.Since(start)
	if err != nil {
		res.Generation = old.Generation
		res.Errors = ErrorLines(err)
		s.reload.lastFailure = res
		s.logger.Error("reload refused; the running config stays", "trigger", trigger, "generation", old.Generation, "problems", len(res.Errors))
		for _, l := range res.Errors {
			s.logger.Error("reload: " + l)
		}
	} else {
		res.OK, res.Generation = true, snap.Generation
		s.logger.Info("reloaded", "trigger", trigger, "generation", snap.Generation, "duration", res.Duration)
		s.logConfig(snap)
	}
	s.reload.last = res
	if s.reload.onResult != nil {
		s.reload.onResult(res)
	}
	return res
}

// LastReload returns the last reload outcome and the last failure.
func (s *Server) LastReload() (last, lastFailure *ReloadResult) {
	s.reload.mu.Lock()
	defer s.reload.mu.Unlock()
	return s.reload.last, s.reload.lastFailure
}

// apply swaps the new snapshot in. Listener changes that cannot be made
// (an address that cannot be bound) fail the reload before anything is
// swapped; a spool or admin address change needs a restart and is
// refused rather than silently ignored.
func (s *Server) apply(old, snap *Snapshot) error {
	oc, nc := old.Config, snap.Config
	var errs config.Errors
	if oc.Spool.Dir != nc.Spool.Dir {
		errs = append(errs, config.Error{Pos: nc.PosOf("spool.dir"), Msg: "spool.dir cannot change while running; restart cuemta to move the spool"})
	}
	if oc.Admin != nc.Admin {
		errs = append(errs, config.Error{Pos: nc.PosOf("admin"), Msg: "admin.addr and admin.token cannot change while running; restart cuemta"})
	}
	if oc.User != nc.User || oc.Group != nc.Group || oc.AllowRoot != nc.AllowRoot {
		// The process switched (or stayed root) once, at start; it
		// cannot take root back to switch again.
		errs = append(errs, config.Error{Pos: privilegePos(nc), Msg: "user, group and allowRoot take effect at start only; restart cuemta"})
	}
	if len(errs) > 0 {
		return errs
	}

	// Bind new listeners first, so that a new address is accepting before
	// a removed one stops.
	s.mu.Lock()
	current := s.listeners
	s.mu.Unlock()
	bound := map[string]*listener{}
	for _, name := range slices.Sorted(maps.Keys(nc.Listeners)) {
		l := nc.Listeners[name]
		if cur, ok := current[name]; ok && cur.cfg.Addr == l.Addr {
			continue
		}
		run, err := s.bindListener(l)
		if err != nil {
			for _, b := range bound {
				b.ln.Close()
			}
			return config.Errors{{Pos: nc.PosOf("listeners." + config.Label(name) + ".addr"), Msg: err.Error()}}
		}
		bound[name] = run
	}

	// Webhooks added, changed or removed (a removed one's queue stays on
	// disk); refused as a whole if a new hook's queue cannot be opened.
	if err := s.hooks.Apply(nc.Events); err != nil {
		for _, b := range bound {
			b.ln.Close()
		}
		return config.Errors{{Pos: nc.PosOf("events.hooks"), Msg: err.Error()}}
	}
	s.snap.Store(snap)
	// Before the new servers start, so they begin under the new bound;
	// transactions in progress keep what they hold.
	if old, limit := s.budget.Limit(), nc.Reception.MaxBytesInFlight; old != limit {
		s.budget.SetLimit(limit)
		s.logger.Info("reception budget changed", "max_bytes_in_flight", s.budget.Limit(), "was", old)
	}

	// The replaced servers drain until their sessions end or the server
	// stops, not until the reload's context ends: that may be an admin
	// request's, which ends with the response and would cut every idle
	// session off.
	drainCtx := s.runCtx
	var drains []func()
	next := map[string]*listener{}
	for _, name := range slices.Sorted(maps.Keys(nc.Listeners)) {
		l := nc.Listeners[name]
		run, isNew := bound[name]
		if !isNew {
			run = current[name]
		}
		prev, err := s.serve(run, l, snap)
		if err != nil {
			// Certificates were checked by Load; this is rare (a file
			// removed in between). Keep the old server on this listener.
			s.logger.Error("reload: listener kept on the previous config", "listener", name, "err", err)
		} else if prev != nil {
			drains = append(drains, func() { s.drain(drainCtx, name, prev) })
		}
		next[name] = run
		if isNew {
			s.logger.Info("listening", "listener", name, "addr", run.ln.Addr().String(), "mode", l.Mode, "tls", l.TLS != nil)
		}
	}
	var removed []*listener
	for name, run := range current {
		if next[name] != run {
			removed = append(removed, run)
		}
	}
	s.mu.Lock()
	s.listeners = next
	s.mu.Unlock()
	s.spool.SetReserve(nc.SpoolReserve()) // listener sizes may have changed it
	s.delivery.Refresh()

	// Old servers drain in the background: their sessions finish on the
	// snapshot they started with.
	go func() {
		for _, d := range drains {
			d()
		}
		for _, run := range removed {
			s.logger.Info("listener removed; draining", "listener", run.name, "addr", run.ln.Addr().String())
			s.retireListener(drainCtx, run)
		}
	}()
	return nil
}
