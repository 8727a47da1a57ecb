package engine

import (
	"context"
	"log/slog"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/cuemta/cuemta/config"
)

// Server runs cuemta on the current snapshot.
type Server struct {
	path   string // config path, "" for the embedded default
	logger *slog.Logger
	snap   atomic.Pointer[Snapshot]
}

// NewServer prepares a server for the loaded snapshot; Run starts it.
func NewServer(path string, snap *Snapshot, logger *slog.Logger) (*Server, error) {
	s := &Server{path: path, logger: logger}
	snap.Generation = 1
	s.snap.Store(snap)
	return s, nil
}

// Snapshot returns the configuration in force.
func (s *Server) Snapshot() *Snapshot { return s.snap.Load() }

// Run serves until ctx is cancelled, then shuts down.
func (s *Server) Run(ctx context.Context) error {
	snap := s.Snapshot()
	s.logConfig(snap)
	<-ctx.Done()
	s.logger.Info("shutting down")
	return nil
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
		s.logger.Info("profile", "name", n, "level", profileLevel(p),
			"domains", strings.Join(p.Match.Domains, ","), "mx", strings.Join(p.Match.MX, ","),
			"rules", len(p.Rules), "at", p.Pos.String())
	}
}

func profileLevel(p *config.Profile) string {
	switch {
	case p.Name == "default":
		return config.LevelDefault
	case len(p.Match.Domains) > 0 && len(p.Match.MX) > 0:
		return config.LevelDomain + "+" + config.LevelProvider
	case len(p.Match.Domains) > 0:
		return config.LevelDomain
	}
	return config.LevelProvider
}
