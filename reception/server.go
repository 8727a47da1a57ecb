package reception

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/cuemta/cuemta/config"
	smtp "github.com/cuemta/cuemta/reception/internal/smtpd"
)

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown,
// and by a second Shutdown. It wraps net.ErrClosed: the listener was
// closed on purpose.
var ErrServerClosed = fmt.Errorf("reception: server closed: %w", net.ErrClosed)

// Defaults for zero config.ListenerLimits fields; they match the schema's
// defaults, so a listener built in Go without limits is still bounded.
const (
	defaultMaxMessageSize      = 50 << 20
	defaultMaxRecipients       = 1000
	defaultMaxConnections      = 2000
	defaultMaxConnectionsPerIP = 100
	defaultCommandTimeout      = 5 * time.Minute  // RFC 5321 §4.5.3.2.7
	defaultDataTimeout         = 10 * time.Minute // RFC 5321 §4.5.3.2.6
	// A 50 MB message at 1024 B/s would take 14 hours: maxDataTime is the
	// bound for large messages (50 MB in an hour is 14.6 KB/s, 117 kbit/s),
	// minDataRate the bound for a trickle, applied after dataTimeout.
	defaultMinDataRate = 1024 // bytes per second
	defaultMaxDataTime = time.Hour
)

// limits is config.ListenerLimits with the defaults applied.
type limits struct {
	maxMessageSize      int64
	maxRecipients       int
	maxConnections      int
	maxConnectionsPerIP int
	commandTimeout      time.Duration
	dataTimeout         time.Duration
	minDataRate         int64
	maxDataTime         time.Duration
}

// Server receives mail on one listener.
type Server struct {
	name           string
	addr           string
	submission     bool // mode "submission": adds Message-ID and Date
	submissionAuth bool // submission with auth: only AUTH allows relaying
	limits         limits
	policy         Policy
	relay          *relayRules
	auth           *authenticator // nil when auth is disabled
	sink           Sink
	log            *slog.Logger
	smtp           *smtp.Server
	conns          *connTracker
	guard          *Guard
	budget         *Budget // message bytes in flight, shared with other servers

	// ctx is the parent of Sink.Accept contexts; cancel runs when
	// Shutdown gives up waiting, so stores in progress stop too.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	listeners []net.Listener
	closed    bool
}

// New prepares a server for listener l: it loads the TLS certificate,
// checks the bcrypt hashes and prepares the relay policy. It does not
// listen; call Serve or ListenAndServe.
func New(l *config.Listener, p Policy, sink Sink, logger *slog.Logger) (*Server, error) {
	if l == nil {
		return nil, errors.New("reception: nil listener")
	}
	if sink == nil {
		return nil, fmt.Errorf("listener %q: nil sink", l.Name)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if _, err := normalizeDomain(p.Hostname); err != nil || p.Hostname[0] == '[' {
		return nil, fmt.Errorf("listener %q: hostname %q is not a domain name", l.Name, p.Hostname)
	}
	s := &Server{
		name:   l.Name,
		addr:   l.Addr,
		limits: limitsOf(l.Limits),
		policy: p,
		sink:   sink,
		log:    logger.With("listener", l.Name),
		guard:  p.Guard,
		budget: p.Budget,
	}
	if s.guard == nil {
		s.guard = NewGuard(GuardOptions{})
	}
	if s.budget == nil {
		s.budget = NewBudget(DefaultMaxBytesInFlight)
	}
	counts := p.Conns
	if counts == nil {
		counts = NewConnCounts()
	}
	switch l.Mode {
	case "", "mx":
	case "feedback":
		// As mx: the caller's Policy.Relay lists the feedback domains and
		// no network, so nothing is relayed, and its Sink handles the
		// reports instead of queueing them.
	case "submission":
		s.submission = true
		s.submissionAuth = l.Auth.Enabled
	default:
		return nil, fmt.Errorf("listener %q: unknown mode %q", l.Name, l.Mode)
	}
	var err error
	if s.relay, err = newRelayRules(p.Relay); err != nil {
		return nil, fmt.Errorf("listener %q: %w", l.Name, err)
	}
	var tlsConfig *tls.Config
	if l.TLS != nil {
		cert, err := tls.LoadX509KeyPair(l.TLS.Cert, l.TLS.Key)
		if err != nil {
			return nil, fmt.Errorf("listener %q: load TLS certificate: %w", l.Name, err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if l.Auth.Enabled {
		if s.auth, err = newAuthenticator(l.Auth, s.guard); err != nil {
			return nil, fmt.Errorf("listener %q: %w", l.Name, err)
		}
		if tlsConfig == nil {
			s.log.Warn("auth is enabled but the listener has no tls: AUTH is never offered")
		}
	}
	s.conns = &connTracker{
		maxTotal:    s.limits.maxConnections,
		maxPerIP:    s.limits.maxConnectionsPerIP,
		dataTimeout: s.limits.dataTimeout,
		log:         s.log,
		counts:      counts,
		guard:       s.guard,
		minDataRate: s.limits.minDataRate,
		maxDataTime: s.limits.maxDataTime,
		conns:       make(map[*trackedConn]struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = p.Hostname
	srv.TLSConfig = tlsConfig
	srv.MaxMessageBytes = s.limits.maxMessageSize // SIZE (RFC 1870), DATA and BDAT
	srv.EnableSMTPUTF8 = true
	// RFC 3461 §4: RET, ENVID, NOTIFY and ORCPT, kept in the envelope
	// (dsn.go) and honoured by delivery.
	srv.EnableDSN = true
	// Our Session.Auth refuses AUTH without TLS with the RFC 4954 reply.
	srv.AllowInsecureAuth = true
	// go-smtp sets ReadTimeout as the deadline of each command line, and
	// of the whole message once DATA starts; trackedConn replaces it with
	// a per-read dataTimeout while message data is read.
	srv.ReadTimeout = s.limits.commandTimeout
	srv.WriteTimeout = s.limits.commandTimeout
	srv.ErrorLog = slog.NewLogLogger(s.log.Handler(), slog.LevelWarn) // connection errors, panics
	// MaxRecipients stays 0: Session.Rcpt applies the limit. MaxLineLength
	// limits command lines only (our fork of go-smtp); message lines are
	// checked by readMessage against the same maxLineLength.
	srv.MaxLineLength = maxLineLength
	srv.CommandHook = commandHook
	srv.ConnectHook = s.connectHook
	srv.HelloHook = s.helloHook
	s.smtp = srv
	return s, nil
}

func limitsOf(c config.ListenerLimits) limits {
	l := limits{
		maxMessageSize:      c.MaxMessageSize,
		maxRecipients:       c.MaxRecipients,
		maxConnections:      c.MaxConnections,
		maxConnectionsPerIP: c.MaxConnectionsPerIP,
		commandTimeout:      c.CommandTimeout.D(),
		dataTimeout:         c.DataTimeout.D(),
		minDataRate:         c.MinDataRate,
		maxDataTime:         c.MaxDataTime.D(),
	}
	if l.maxMessageSize <= 0 {
		l.maxMessageSize = defaultMaxMessageSize
	}
	if l.maxRecipients <= 0 {
		l.maxRecipients = defaultMaxRecipients
	}
	if l.maxConnections <= 0 {
		l.maxConnections = defaultMaxConnections
	}
	if l.maxConnectionsPerIP <= 0 {
		l.maxConnectionsPerIP = defaultMaxConnectionsPerIP
	}
	if l.commandTimeout <= 0 {
		l.commandTimeout = defaultCommandTimeout
	}
	if l.dataTimeout <= 0 {
		l.dataTimeout = defaultDataTimeout
	}
	if l.minDataRate <= 0 {
		l.minDataRate = defaultMinDataRate
	}
	if l.maxDataTime <= 0 {
		l.maxDataTime = defaultMaxDataTime
	}
	return l
}

// Serve accepts connections on ln until Shutdown, counting them against
// the connection limits. It returns ErrServerClosed after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	ll := &limitListener{Listener: ln, t: s.conns}
	s.listeners = append(s.listeners, ll)
	s.mu.Unlock()

	s.log.Debug("serving", "addr", ln.Addr().String())
	err := s.smtp.Serve(ll)
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrServerClosed
	}
	if err == nil {
		err = errors.New("listener stopped")
	}
	return fmt.Errorf("listener %q: %w", s.name, err)
}

// ListenAndServe listens on the configured address and calls Serve.
func (s *Server) ListenAndServe() error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listener %q: %w", s.name, err)
	}
	return s.Serve(ln)
}

// Addr returns the address of the first listener being served, or nil
// before Serve.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.listeners) == 0 {
		return nil
	}
	return s.listeners[0].Addr()
}

// Drain stops accepting connections and lets every session end on its
// own terms (QUIT, or its command timeout), as a config reload needs:
// clients are never cut off because the config changed. If ctx ends
// first, the remaining sessions are shut down as by Shutdown.
func (s *Server) Drain(ctx context.Context) error {
	done, err := s.stopAccepting()
	if err != nil {
		return err
	}
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
	}
	// Out of patience: idle sessions get 421 now, busy ones finish their
	// transaction, within a last grace period.
	s.conns.drain()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-time.After(drainGrace):
		s.cancel()
		s.conns.closeAll()
		return fmt.Errorf("listener %q: drain: %w", s.name, ctx.Err())
	}
}

// stopAccepting closes the server's listeners and returns a channel that
// is closed once every session has ended; a second call (Drain after
// Shutdown, say) gets ErrServerClosed.
func (s *Server) stopAccepting() (<-chan struct{}, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrServerClosed
	}
	s.closed = true
	lns := s.listeners
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		// go-smtp closes its listeners, then waits for its connection
		// goroutines, with no timeout of its own.
		s.smtp.Shutdown(context.Background())
		close(done)
	}()
	for _, ln := range lns {
		ln.Close()
	}
	return done, nil
}

// drainGrace bounds how long Drain waits after its context ends.
const drainGrace = 30 * time.Second

// Shutdown stops accepting connections and closes idle ones at once (with
// 421). A connection in a mail transaction may finish it, Sink.Accept
// included, and is closed when it would wait for the next command. When
// ctx ends first, every remaining connection is closed, Sink.Accept calls
// in progress are cancelled, and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	done, err := s.stopAccepting()
	if err != nil {
		return err
	}
	s.conns.drain()

	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		// Closed connections end promptly, except one stuck in a Sink that
		// ignores ctx; don't wait for them.
		s.conns.closeAll()
		return fmt.Errorf("listener %q: shutdown: %w", s.name, ctx.Err())
	}
}
