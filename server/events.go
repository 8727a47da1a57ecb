package server

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/deliverylog"
	"github.com/cuemta/cuemta/hooks"
	"github.com/cuemta/cuemta/metrics"
	"github.com/cuemta/cuemta/reception"
)

// event is the one place every delivery-log event passes: first into the
// queue of each webhook that wants it, fsynced before Publish returns,
// then into the delivery log. Its callers run before the action is
// acknowledged (the 250 of a reception, the spool's record of a delivery
// attempt), so a crash never loses the event of an acknowledged action.
func (s *Server) event(ev deliverylog.Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	if s.hooks != nil && s.hooks.Wants(ev.Type) {
		if err := s.hooks.Publish(ev); err != nil {
			// Counted in the queue's state: Full refuses new mail until
			// the queue takes writes again.
			s.logger.Error("hooks: event not queued", "type", ev.Type, "id", ev.MessageID, "err", err)
		}
	}
	s.dlog.Log(ev)
}

// startHooks opens the webhook queues under spool.dir/hooks.
func (s *Server) startHooks(cfg *config.Config) error {
	spool := s.spool
	m, err := hooks.New(cfg.Events, hooks.Options{
		Dir: filepath.Join(cfg.Spool.Dir, "hooks"), Logger: s.logger, Recorder: s.metrics,
		Message: func(id string) []byte {
			b, err := spool.Body(id)
			if err != nil {
				return nil
			}
			return b
		},
	})
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	s.hooks = m
	s.metrics.HookStatsFunc(func() []metrics.HookQueue {
		st := m.Stats()
		out := make([]metrics.HookQueue, len(st))
		for i, h := range st {
			out[i] = metrics.HookQueue{Name: h.Name, Queued: h.Queued, Oldest: h.Oldest}
		}
		return out
	})
	return nil
}

// admitHooks refuses new mail while a webhook queue is full: the events of
// mail already accepted still have room to be queued, and none is dropped.
func (s *Server) admitHooks() error {
	if s.hooks == nil {
		return nil
	}
	if err := s.hooks.Full(); err != nil {
		// RFC 5321 §4.2.3: 451 local error in processing; RFC 3463 §3.4:
		// X.3.0 other or undefined mail system status. The client keeps
		// the message and retries.
		return &reception.Reply{Code: 451, Enhanced: "4.3.0", Text: "Requested action aborted: event queue full, try again later", Cause: err}
	}
	return nil
}
