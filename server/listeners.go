package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/intake"
	"github.com/cuemta/cuemta/milter"
	"github.com/cuemta/cuemta/queue"
	"github.com/cuemta/cuemta/reception"
)

// listener is one configured SMTP listener. The server owns the bound
// socket and hands each accepted connection to the reception server of
// the current snapshot; a reload swaps that server without ever closing
// the socket, so no connection is refused or reset by a reload, and
// sessions already running finish on the server (and snapshot) they
// started with.
type listener struct {
	name string
	ln   net.Listener
	// conns counts the socket's connections across the reception servers
	// of successive snapshots, so the per-IP and total limits hold while
	// a replaced server drains: a reload gives no client a fresh quota.
	conns *reception.ConnCounts

	mu  sync.Mutex
	cfg *config.Listener
	cur *served
}

// served is one reception server fed by a listener.
type served struct {
	srv  *reception.Server
	conn *connQueue
	done chan struct{}
}

// connQueue is a net.Listener fed by the server's accept loop.
type connQueue struct {
	addr   net.Addr
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.closed:
		return nil, net.ErrClosed
	}
}

// offer hands a connection to the server; false if it stopped accepting.
func (q *connQueue) offer(c net.Conn) bool {
	select {
	case q.ch <- c:
		return true
	case <-q.closed:
		return false
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.closed) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }

// bindListener binds a listener's socket and starts its accept loop.
func (s *Server) bindListener(l *config.Listener) (*listener, error) {
	ln, err := s.listen(l)
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", l.Name, err)
	}
	run := &listener{name: l.Name, ln: ln, cfg: l, conns: reception.NewConnCounts()}
	go run.acceptLoop()
	return run, nil
}

func (l *listener) acceptLoop() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return // closed by closeListener, which drains the server
		}
		for {
			l.mu.Lock()
			cur := l.cur
			l.mu.Unlock()
			if cur == nil {
				c.Close()
				break
			}
			if cur.conn.offer(c) {
				break
			}
			// That server is draining after a reload: offer it to the
			// one that replaced it (the swap happens before the drain).
			l.mu.Lock()
			same := l.cur == cur
			l.mu.Unlock()
			if same {
				c.Close()
				break
			}
		}
	}
}

// serve starts a reception server for the snapshot on the listener and
// makes it the one new connections go to. The previous server, if any,
// is returned for the caller to drain.
func (s *Server) serve(l *listener, cfg *config.Listener, snap *Snapshot) (*served, error) {
	pol, err := receptionPolicy(snap.Config)
	if err != nil {
		return nil, err
	}
	pol.Guard, pol.Conns = s.guard, l.conns
	pol.Budget = s.budget // one for the process: shared by listeners, kept across reloads
	pol.Suppressions = rcptSuppressor{s}
	if err := s.stagePolicy(&pol, snap.Config, snap); err != nil {
		return nil, fmt.Errorf("listener %s: %w", cfg.Name, err)
	}
	acc := &intake.Acceptor{Policy: func() *intake.Policy { return &snap.Policy }, Spool: s.spool, Logger: s.logger, Guard: s.guard,
		Admit: s.admitHooks, Stored: s.stored,
		Accepted: func(p *intake.Policy, id string, env *queue.Envelope, size int, matched, tags []string) {
			s.accepted(p, id, env, size, matched, tags)
			s.delivery.Wake()
		},
		Suppressions: intakeSuppressor{s}, Suppressed: s.suppressedAtIntake, Resolver: s.verifyResolver(),
		Verified: s.verified}
	var sink reception.Sink = acc
	if cfg.Mode == config.ModeFeedback {
		sink = s.feedbackListener(cfg, snap, &pol)
	}
	// The listener's content filters see each message before the message
	// rules do (milter/).
	if sink, err = milter.Wrap(cfg, snap.Config.Hostname, sink, s.logger, s.metrics); err != nil {
		return nil, err
	}
	srv, err := reception.New(cfg, pol, sink, s.logger)
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", cfg.Name, err)
	}
	sv := &served{srv: srv, conn: newConnQueue(l.ln.Addr()), done: make(chan struct{})}
	go func() {
		defer close(sv.done)
		if err := srv.Serve(sv.conn); err != nil && !errors.Is(err, reception.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			s.logger.Error("listener stopped", "listener", cfg.Name, "err", err)
		}
	}()
	l.mu.Lock()
	old := l.cur
	l.cur, l.cfg = sv, cfg
	l.mu.Unlock()
	return old, nil
}

// drain retires a server replaced by a reload: it takes no new
// connections and its sessions go on until they end by themselves; only
// when ctx ends (shutdown) are they asked to stop.
func (s *Server) drain(ctx context.Context, name string, sv *served) {
	if sv == nil {
		return
	}
	sv.conn.Close()
	if err := sv.srv.Drain(ctx); err != nil && !errors.Is(err, reception.ErrServerClosed) {
		s.logger.Warn("listener drain", "listener", name, "err", err)
	}
}

// retireListener stops accepting on a socket a reload removed; its
// sessions drain as by drain.
func (s *Server) retireListener(ctx context.Context, l *listener) {
	l.ln.Close()
	l.mu.Lock()
	cur := l.cur
	l.cur = nil
	l.mu.Unlock()
	s.drain(ctx, l.name, cur)
}

// closeListener stops accepting on the socket and shuts the current
// server down: idle sessions get 421, transactions in progress finish
// (bounded by ctx). Used at shutdown.
func (s *Server) closeListener(ctx context.Context, l *listener) {
	l.ln.Close()
	l.mu.Lock()
	cur := l.cur
	l.cur = nil
	l.mu.Unlock()
	if cur == nil {
		return
	}
	cur.conn.Close()
	if err := cur.srv.Shutdown(ctx); err != nil && !errors.Is(err, reception.ErrServerClosed) {
		s.logger.Warn("listener shutdown", "listener", l.name, "err", err)
	}
}
