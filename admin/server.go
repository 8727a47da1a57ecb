package admin

import (
	"github.com/cuemta/cuemta/suppress"

	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/internal/msgheader"
)

// Size limits of request bodies.
const (
	DefaultMaxInjectBytes = 32 << 20 // an injection carries whole messages
	DefaultMaxBodyBytes   = 64 << 10 // every other request is a small JSON object
)

// Server timeouts. ReadTimeout and WriteTimeout are generous because one
// injection may upload 32 MiB and enqueue thousands of messages.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 5 * time.Minute
	writeTimeout      = 5 * time.Minute
	idleTimeout       = 2 * time.Minute
)

// Server is the admin HTTP server.
type Server struct {
	cfg     config.Admin
	backend Backend
	log     *slog.Logger
	opts    options
	token   []byte // sha256 of the configured token; nil when none
	handler http.Handler
	http    *http.Server
	// loopback: the listener is reachable from this host only (GET
	// /metrics is then open without the token).
	loopback atomic.Bool
	// bulkMu is held by the bulk action running (bulk.go): one at a time.
	bulkMu sync.Mutex

	mu sync.Mutex
	ln net.Listener
}

// Option adjusts New.
type Option func(*options)

type options struct {
	onAction       func(ActionEvent)
	now            func() time.Time
	messageID      func() string
	boundary       func() string // MIME boundaries of built content; nil: random
	hostname       string
	maxInjectBytes int64
	maxBodyBytes   int64
	suppressions   *suppress.Store // WithSuppressions
	tlsReports     TLSReports      // WithTLSReports
	dmarcReports   DMARCReports    // WithDMARCReports
}

// OnAction sets the hook told of every operator action (inject, suspend,
// resume, retry, bounce, delete, reload), typically to write it to the
// delivery log: OnAction(func(e ActionEvent) { dlog.Log(e.LogEvent()) }).
// It is called synchronously from request handlers.
func OnAction(fn func(ActionEvent)) Option { return func(o *options) { o.onAction = fn } }

// WithClock sets the clock used for Date headers, suspension deadlines and
// action times.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithMessageIDs sets the generator of Message-ID header values (with the
// angle brackets) for injected messages (default: msgheader.MessageID of
// the hostname).
func WithMessageIDs(next func() string) Option { return func(o *options) { o.messageID = next } }

// withBoundaries sets the generator of the MIME boundaries of built
// content, for tests that compare whole messages.
func withBoundaries(next func() string) Option { return func(o *options) { o.boundary = next } }

// WithHostname sets the domain of generated Message-IDs (default: the
// host's name). Pass the config's hostname.
func WithHostname(h string) Option { return func(o *options) { o.hostname = h } }

// WithLimits sets the body size limits of injections and of other requests.
func WithLimits(injectBytes, otherBytes int64) Option {
	return func(o *options) { o.maxInjectBytes, o.maxBodyBytes = injectBytes, otherBytes }
}

// New builds the server. It refuses an address reachable from other hosts
// without a token: config vet refuses it too, but the API must never be
// opened by mistake. registry may be nil (no /metrics); logger may be nil.
func New(cfg config.Admin, backend Backend, registry *prometheus.Registry, logger *slog.Logger, opts ...Option) (*Server, error) {
	if backend == nil {
		return nil, errors.New("admin: no backend")
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("admin: bad admin.addr %q: %w", cfg.Addr, err)
	}
	if cfg.Token == "" && !isLoopback(host) {
		return nil, fmt.Errorf("admin: admin.addr %s is reachable from other hosts; set admin.token or listen on 127.0.0.1", cfg.Addr)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	o := options{now: time.Now, maxInjectBytes: DefaultMaxInjectBytes, maxBodyBytes: DefaultMaxBodyBytes}
	for _, opt := range opts {
		opt(&o)
	}
	if o.hostname == "" {
		o.hostname, _ = os.Hostname()
		if o.hostname == "" {
			o.hostname = "localhost"
		}
	}
	if o.messageID == nil {
		host := o.hostname
		o.messageID = func() string { return msgheader.MessageID(host) }
	}
	s := &Server{cfg: cfg, backend: backend, log: logger.With("component", "admin"), opts: o}
	if cfg.Token != "" {
		s.token = hashToken(cfg.Token)
	}
	s.loopback.Store(isLoopback(host))
	s.handler = s.routes(registry)
	s.http = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Handler is the API's handler, authentication included.
func (s *Server) Handler() http.Handler { return s.handler }

// ListenAndServe listens on admin.addr and serves until Shutdown.
func (s *Server) ListenAndServe() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("admin: listen on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ln)
}

// Serve serves on ln until Shutdown, then returns nil. Like New it refuses
// a listener reachable from other hosts without a token.
func (s *Server) Serve(ln net.Listener) error {
	if s.token == nil {
		if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
			ln.Close()
			return fmt.Errorf("admin: %s is reachable from other hosts; set admin.token or listen on 127.0.0.1", ln.Addr())
		}
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok {
		s.loopback.Store(tcp.IP.IsLoopback())
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	s.log.Info("admin API listening", "addr", ln.Addr().String(), "token", s.token != nil)
	if err := s.http.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin: serve: %w", err)
	}
	return nil
}

// Shutdown stops accepting connections and waits for requests in flight
// until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.http.Shutdown(ctx); err != nil {
		return fmt.Errorf("admin: shutdown: %w", err)
	}
	return nil
}

// Addr is the address served on once Serve has started, else admin.addr.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return s.ln.Addr().String()
	}
	return s.cfg.Addr
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
