package engine

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/delivery"
	"github.com/cuemta/cuemta/delivery/mx"
	"github.com/cuemta/cuemta/queue"
	"github.com/cuemta/cuemta/reception"
)

// Server runs cuemta on the current snapshot: the spool, one SMTP server
// per listener, and the delivery engine.
type Server struct {
	path   string // config path, "" for the embedded default
	logger *slog.Logger
	snap   atomic.Pointer[Snapshot]

	spool    *queue.Spool
	delivery *delivery.Engine

	mu        sync.Mutex
	listeners map[string]*listener
	ready     chan struct{}

	reload reloader
}

// NewServer prepares a server for the loaded snapshot; Run starts it.
func NewServer(path string, snap *Snapshot, logger *slog.Logger) (*Server, error) {
	s := &Server{path: path, logger: logger, listeners: map[string]*listener{}, ready: make(chan struct{})}
	snap.Generation = 1
	s.snap.Store(snap)
	return s, nil
}

// Snapshot returns the configuration in force.
func (s *Server) Snapshot() *Snapshot { return s.snap.Load() }

// Ready is closed once every listener accepts connections.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Run serves until ctx is cancelled, then shuts down: listeners stop
// accepting and drain their sessions, deliveries in flight finish their
// current message, and the spool is closed.
func (s *Server) Run(ctx context.Context) error {
	snap := s.Snapshot()
	cfg := snap.Config
	s.logConfig(snap)

	spool, err := queue.Open(cfg.Spool.Dir, queue.Options{
		SegmentSize:       cfg.Spool.SegmentSize,
		GroupCommitWindow: cfg.Spool.GroupCommitWindow.D(),
		Logger:            s.logger,
	})
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	s.spool = spool
	defer spool.Close()
	st, err := spool.Stats()
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	s.logger.Info("spool open", "dir", cfg.Spool.Dir, "messages", st.Live)

	resolver, err := mx.New(mx.Options{Servers: cfg.DNS.Servers, Timeout: cfg.DNS.Timeout.D()})
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	s.delivery = delivery.New(delivery.Options{
		Store:    spool,
		Resolver: resolver,
		Policy:   s.policy,
		Logger:   s.logger,
		Events:   s.logEvent,
	})

	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	deliveryDone := make(chan struct{})
	go func() {
		defer close(deliveryDone)
		s.delivery.Run(runCtx)
	}()

	if err := s.startListeners(snap); err != nil {
		cancel()
		<-deliveryDone
		return err
	}
	s.watch(ctx)
	close(s.ready)

	<-ctx.Done()
	s.logger.Info("shutting down")
	shutCtx, stop := context.WithTimeout(context.Background(), 30*time.Second)
	defer stop()
	s.stopListeners(shutCtx)
	cancel()
	<-deliveryDone
	s.logger.Info("stopped")
	return nil
}

// policy is the delivery policy of the snapshot in force.
func (s *Server) policy() *delivery.Policy {
	snap := s.Snapshot()
	return snap.policy()
}

func (snap *Snapshot) policy() *delivery.Policy {
	snap.policyOnce.Do(func() {
		snap.deliveryPolicy = &delivery.Policy{Config: snap.Config, Rules: snap.Rules, Generation: snap.Generation}
	})
	return snap.deliveryPolicy
}

// startListeners binds every listener of the snapshot. A listener that
// cannot bind stops the start: an MTA that silently lacks a listener is
// worse than one that refuses to start.
func (s *Server) startListeners(snap *Snapshot) error {
	for _, n := range sortedNames(snap.Config.Listeners) {
		l := snap.Config.Listeners[n]
		run, err := s.bindListener(l)
		if err == nil {
			_, err = s.serve(run, l, snap)
			if err != nil {
				run.ln.Close()
			}
		}
		if err != nil {
			s.stopListeners(context.Background())
			return err
		}
		s.mu.Lock()
		s.listeners[n] = run
		s.mu.Unlock()
		s.logger.Info("listening", "listener", n, "addr", run.ln.Addr().String(), "mode", l.Mode, "tls", l.TLS != nil)
	}
	return nil
}

func (s *Server) stopListeners(ctx context.Context) {
	s.mu.Lock()
	ls := s.listeners
	s.listeners = map[string]*listener{}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.closeListener(ctx, l)
		}()
	}
	wg.Wait()
}

// ListenerAddr returns the bound address of a listener (tests bind :0).
func (s *Server) ListenerAddr(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.listeners[name]; ok {
		return l.ln.Addr().String()
	}
	return ""
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func receptionPolicy(cfg *config.Config) (reception.Policy, error) {
	relay, err := reception.NewRelayPolicy(cfg.Relay)
	if err != nil {
		return reception.Policy{}, err
	}
	// Domains with a static route are ours to accept too.
	for d := range cfg.Routes {
		if d != "*" {
			relay.Domains = append(relay.Domains, d)
		}
	}
	return reception.Policy{Hostname: cfg.Hostname, Relay: relay}, nil
}

// logEvent writes a delivery outcome to the process log.
func (s *Server) logEvent(ev delivery.Event) {
	s.logger.Info("delivery", "type", ev.Type, "id", ev.MessageID, "rcpt", ev.Rcpt, "site", ev.Site,
		"mx", ev.MX, "source", ev.Source, "reply", ev.Reply, "rule", ev.Rule, "attempt", ev.Attempt,
		"generation", ev.Generation)
}

// logConfig logs what was loaded: one line for the config and one per
// profile, so an operator can see the effective policy at a glance.
func (s *Server) logConfig(snap *Snapshot) {
	cfg := snap.Config
	source := s.path
	if source == "" {
		source = "embedded default"
	}
	s.logger.Info("config loaded", "source", source, "generation", snap.Generation,
		"hostname", cfg.Hostname, "listeners", len(cfg.Listeners), "profiles", len(cfg.Profiles),
		"message_rules", len(cfg.Rules.Message), "response_rules", len(cfg.Rules.Response))
	names := make([]string, 0, len(cfg.Profiles))
	for n := range cfg.Profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := cfg.Profiles[n]
		s.logger.Info("profile", "name", n, "domains", strings.Join(p.Match.Domains, ","),
			"mx", strings.Join(p.Match.MX, ","), "rules", len(p.Rules), "at", p.Pos.String())
	}
}
