package hooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/deliverylog"
	"github.com/cuemta/cuemta/internal/msgheader"
)

// Options are what a Manager needs beyond its config.
type Options struct {
	// Dir holds one queue directory per hook name (spool.dir/hooks).
	Dir    string
	Logger *slog.Logger
	// Recorder counts sent and failed; nil counts nothing.
	Recorder Recorder
	// Message returns the spooled message of a queue id (its header block
	// suffices), or nil when it is gone; events.messageHeaders and
	// header_message_id are read from it.
	Message func(id string) []byte
	// Clock and Client are for tests; nil: the real ones.
	Clock  Clock
	Client *http.Client
	// Jitter returns the back-off spread in [0,1); nil: random.
	Jitter func() float64
}

// Manager runs the hooks of the config in force: their queues and senders.
// It is safe for concurrent use; a nil *Manager has no hooks.
type Manager struct {
	opts  Options
	cache headerCache

	mu      sync.RWMutex
	hooks   map[string]*sender
	headers []string // events.messageHeaders
	closed  bool
}

// New opens the queue of every configured hook and starts its sender.
func New(cfg config.Events, opts Options) (*Manager, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Recorder == nil {
		opts.Recorder = nopRecorder{}
	}
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	if opts.Jitter == nil {
		opts.Jitter = defaultJitter
	}
	if opts.Client == nil {
		// Redirects are not followed: a POST that lands elsewhere is a
		// misconfiguration to surface as a failure, not to follow.
		opts.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	m := &Manager{opts: opts, hooks: map[string]*sender{}}
	if err := m.Apply(cfg); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// Apply makes cfg the hooks in force (at start and on reload): a new hook
// opens its queue (with whatever an earlier run left there) and starts
// sending; a changed one sends its next batch under the new settings; a
// removed one stops, and its queue stays on disk, sent again if a hook of
// that name comes back, or deleted by the operator. Nothing changes if a
// new hook's queue cannot be opened.
func (m *Manager) Apply(cfg config.Events) error {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	opened := map[string]*Queue{}
	for _, name := range slices.Sorted(maps.Keys(cfg.Hooks)) {
		if _, ok := m.hooks[name]; ok {
			continue
		}
		q, err := OpenQueue(filepath.Join(m.opts.Dir, name))
		if err != nil {
			for _, q := range opened {
				q.Close()
			}
			return fmt.Errorf("hook %s: %w", name, err)
		}
		q.now = m.opts.Clock.Now
		opened[name] = q
	}
	for name, s := range m.hooks {
		if _, ok := cfg.Hooks[name]; !ok {
			s.close()
			delete(m.hooks, name)
			m.opts.Logger.Info("hook removed; its queue is kept on disk", "hook", name, "dir", s.q.dir)
		}
	}
	for name, hc := range cfg.Hooks {
		conf := &hookConf{cfg: hc, types: map[string]bool{}}
		for _, t := range hc.Events {
			conf.types[t] = true
		}
		if s, ok := m.hooks[name]; ok {
			s.conf.Store(conf)
			select {
			case s.kick <- struct{}{}:
			default:
			}
			continue
		}
		s := &sender{name: name, q: opened[name], client: m.opts.Client, clock: m.opts.Clock,
			rec: m.opts.Recorder, logger: m.opts.Logger, jitter: m.opts.Jitter,
			kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
		s.conf.Store(conf)
		m.hooks[name] = s
		st := s.q.Stats()
		m.opts.Logger.Info("hook", "hook", name, "url", hc.URL, "events", hc.Events, "queued", st.Queued)
		go s.run()
	}
	if !slices.Equal(m.headers, cfg.MessageHeaders) {
		m.headers = slices.Clone(cfg.MessageHeaders)
		m.cache.reset()
	}
	return nil
}

// Wants reports whether any hook takes events of this type, so the caller
// can skip building what none would read.
func (m *Manager) Wants(typ string) bool {
	if m == nil {
		return false
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, s := range m.hooks {
		if s.conf.Load().types[typ] {
			return true
		}
	}
	return false
}

// Publish queues ev for every hook that takes its type and returns once
// it is fsynced in each of their queues. ev.Time must be set.
func (m *Manager) Publish(ev deliverylog.Event) error {
	if m == nil {
		return nil
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	var targets []*sender
	for _, s := range m.hooks {
		if s.conf.Load().types[ev.Type] {
			targets = append(targets, s)
		}
	}
	if len(targets) == 0 {
		return nil
	}
	rec := Record{EventID: newEventID(), Event: ev}
	rec.Time = rec.Time.UTC()
	if ev.MessageID != "" {
		h := m.messageHeaders(ev.MessageID)
		rec.HeaderMessageID, rec.Headers = h.messageID, h.headers
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // as the delivery log: addresses and Message-IDs keep their < >
	if err := enc.Encode(&rec); err != nil {
		return fmt.Errorf("hooks: encode %s event: %w", ev.Type, err)
	}
	payload := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	var errs []error
	for _, s := range targets {
		if err := s.q.Append(payload); err != nil {
			errs = append(errs, fmt.Errorf("hook %s: %w", s.name, err))
		}
	}
	return errors.Join(errs...)
}

// Active reports whether any hook is configured, so that a caller can
// skip parsing a header nobody will read.
func (m *Manager) Active() bool {
	if m == nil {
		return false
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.hooks) > 0
}

// Remember takes the parsed header of a message just stored, so that its
// events need not read it back from the spool. It does nothing when no
// hook is configured.
func (m *Manager) Remember(id string, h msgheader.Header) {
	if m == nil {
		return
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if len(m.hooks) == 0 {
		return
	}
	m.cache.put(id, headersOf(h, m.headers))
}

// messageHeaders looks a message's headers up, from the cache or the spool;
// m.mu is read-locked.
func (m *Manager) messageHeaders(id string) msgHeaders {
	if h, ok := m.cache.get(id); ok {
		return h
	}
	if m.opts.Message == nil {
		return msgHeaders{}
	}
	msg := m.opts.Message(id)
	if msg == nil {
		return msgHeaders{} // gone (an admin deletion): nothing to cache
	}
	h := parseHeaders(msg, m.headers)
	m.cache.put(id, h)
	return h
}

// Full returns why new mail must wait, or nil: a hook whose queue has
// reached maxQueued or maxQueuedBytes, or whose last append failed.
func (m *Manager) Full() error {
	if m == nil {
		return nil
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, s := range m.hooks {
		st := s.q.Stats()
		cfg := s.conf.Load().cfg
		switch {
		case st.Err != nil:
			return fmt.Errorf("hook %s: queue cannot be written: %w", s.name, st.Err)
		case st.Queued >= cfg.MaxQueued:
			return fmt.Errorf("hook %s: %d events queued, maxQueued is %d", s.name, st.Queued, cfg.MaxQueued)
		case st.Bytes >= cfg.MaxQueuedBytes:
			return fmt.Errorf("hook %s: %d bytes queued, maxQueuedBytes is %d", s.name, st.Bytes, cfg.MaxQueuedBytes)
		}
	}
	return nil
}

// HookStats is one hook's queue, for metrics.
type HookStats struct {
	Name   string
	Queued int
	Bytes  int64
	Oldest time.Duration // age of the oldest unsent event; 0 when empty
}

// Stats reports every hook in force, by name.
func (m *Manager) Stats() []HookStats {
	m.mu.RLock()
	defer m.mu.RUnlock()
	now := m.opts.Clock.Now()
	out := make([]HookStats, 0, len(m.hooks))
	for _, name := range slices.Sorted(maps.Keys(m.hooks)) {
		st := m.hooks[name].q.Stats()
		hs := HookStats{Name: name, Queued: st.Queued, Bytes: st.Bytes}
		if !st.Oldest.IsZero() {
			hs.Oldest = max(now.Sub(st.Oldest), 0)
		}
		out = append(out, hs)
	}
	return out
}

// Close stops every sender (a POST in flight is abandoned, its batch kept)
// and closes the queues.
func (m *Manager) Close() {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	for name, s := range m.hooks {
		s.close()
		delete(m.hooks, name)
	}
}

func (s *sender) close() {
	close(s.stop)
	<-s.done
	s.q.Close()
}
