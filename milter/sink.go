package milter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/reception"
)

// Recorder counts what the filters did; *metrics.Metrics is one.
type Recorder interface {
	// MilterOutcome counts a filter's verdict on a message: accept, reject, tempfail, discard, quarantine, or error (it could
	// not be asked; its onError applied).
	MilterOutcome(listener, milter, outcome string)
	// MilterError counts a failure to ask a filter, by kind: unreachable,
	// timeout or protocol.
	MilterError(listener, milter, kind string)
}

// Sink is a reception.Sink that asks a listener's filters about each
// message, in order, and hands the message as they left it to Next, or
// answers the client with their refusal.
type Sink struct {
	Listener string
	Hostname string // the MTA's name, macro j
	Filters  []*Filter
	Next     reception.Sink
	Logger   *slog.Logger
	Recorder Recorder // nil: nothing counted
}

// Wrap returns next behind the listener's filters, or next itself when
// the listener has none.
func Wrap(l *config.Listener, hostname string, next reception.Sink, logger *slog.Logger, rec Recorder) (reception.Sink, error) {
	if len(l.Milters) == 0 {
		return next, nil
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Sink{Listener: l.Name, Hostname: hostname, Next: next, Logger: logger, Recorder: rec}
	for _, c := range l.Milters {
		f, err := NewFilter(c)
		if err != nil {
			return nil, fmt.Errorf("listener %s: %w", l.Name, err)
		}
		s.Filters = append(s.Filters, f)
	}
	return s, nil
}

var _ reception.SpaceReporter = (*Sink)(nil)

// LowSpace passes Next's report on: the filters store nothing.
func (s *Sink) LowSpace() bool {
	sr, ok := s.Next.(reception.SpaceReporter)
	return ok && sr.LowSpace()
}

// Accept implements reception.Sink.
func (s *Sink) Accept(ctx context.Context, sub *reception.Submission) (string, error) {
	m := parseMessage(sub.Body)
	changed := false
	for _, f := range s.Filters {
		log := s.Logger.With("listener", s.Listener, "milter", f.Name, "trace", sub.TraceID)
		start := time.Now()
		// Each filter works on a copy, so one that fails half-way through
		// its changes leaves none of them.
		work := m.clone()
		v, err := f.ask(ctx, s.Hostname, sub, work)
		took := time.Since(start).Round(time.Millisecond)
		if err != nil {
			kind := errorKind(err)
			s.count(f, "error")
			if s.Recorder != nil {
				s.Recorder.MilterError(s.Listener, f.Name, kind)
			}
			switch f.onError {
			case config.MilterAccept:
				log.Error("milter failed: message accepted without it (onError accept)", "kind", kind, "err", err, "took", took)
				continue
			case config.MilterReject:
				log.Error("milter failed: message rejected (onError reject)", "kind", kind, "err", err, "took", took)
				// RFC 5321 §4.2.3 550; RFC 3463 X.7.1.
				return "", &reception.Reply{Code: 550, Enhanced: "5.7.1", Text: "Message refused: content filter unavailable",
					Cause: fmt.Errorf("milter %s: %w", f.Name, err)}
			default:
				log.Error("milter failed: message refused for now (onError tempfail)", "kind", kind, "err", err, "took", took)
				// RFC 5321 §4.2.3 451; RFC 3463 X.7.1 (Sendmail's
				// reply when a milter with F=T fails).
				return "", &reception.Reply{Code: 451, Enhanced: "4.7.1", Text: "Content filter unavailable, try again later",
					Cause: fmt.Errorf("milter %s: %w", f.Name, err)}
			}
		}
		switch v.outcome {
		case "reject", "tempfail":
			s.count(f, v.outcome)
			log.Info("milter refused the message", "outcome", v.outcome, "stage", v.stage,
				"reply", v.reply.String(), "took", took)
			v.reply.Cause = fmt.Errorf("milter %s refused at %s", f.Name, v.stage)
			return "", v.reply
		case "discard":
			s.count(f, "discard")
			log.Warn("milter discarded the message: accepted from the client and dropped", "stage", v.stage,
				"from", sub.From, "rcpts", len(sub.Recipients), "took", took)
			return "", &reception.Discarded{By: "milter " + f.Name, Reason: "discard at " + v.stage}
		}
		if v.quarantine != "" {
			s.count(f, "quarantine")
			log.Warn("milter asked for quarantine: message accepted, not held", "reason", v.quarantine, "took", took)
		} else {
			s.count(f, v.outcome)
		}
		if len(v.changes) > 0 {
			m, changed = work, true
		}
		log.Info("milter passed the message", "outcome", v.outcome, "stage", v.stage,
			"changes", strings.Join(v.changes, ", "), "took", took)
	}
	if changed {
		c := *sub
		c.Body = m.bytes()
		sub = &c
	}
	return s.Next.Accept(ctx, sub)
}

func (s *Sink) count(f *Filter, outcome string) {
	if s.Recorder != nil {
		s.Recorder.MilterOutcome(s.Listener, f.Name, outcome)
	}
}

// errorKind sorts a failure to ask a filter for the metric.
func errorKind(err error) string {
	var se *stageError
	stage := ""
	if errors.As(err, &se) {
		stage = se.stage
	}
	var oe *net.OpError
	switch {
	case timedOut(err):
		return "timeout"
	case stage == "connect" && (errors.As(err, &oe) && oe.Op == "dial" ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, os.ErrNotExist)):
		return "unreachable"
	}
	return "protocol"
}

// clone is a copy of m whose field list can change on its own (fields
// are replaced, never changed in place).
func (m *message) clone() *message {
	c := *m
	c.fields = slices.Clone(m.fields)
	return &c
}
