package hooks

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/cuemta/cuemta/config"
)

// Clock is the time source of the senders; tests inject one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Recorder counts what the senders do (package metrics implements it).
type Recorder interface {
	// HookSent counts events acknowledged by a 2xx.
	HookSent(hook string, n int)
	// HookFailed counts failed POSTs (non-2xx or network error).
	HookFailed(hook string)
}

type nopRecorder struct{}

func (nopRecorder) HookSent(string, int) {}
func (nopRecorder) HookFailed(string)    {}

// hookConf is a hook's config with its event set, swapped whole on reload.
type hookConf struct {
	cfg   *config.Hook
	types map[string]bool
}

// sender posts one hook's queue, oldest first, one batch at a time.
type sender struct {
	name   string
	q      *Queue
	conf   atomic.Pointer[hookConf]
	client *http.Client
	clock  Clock
	rec    Recorder
	logger *slog.Logger
	jitter func() float64 // in [0,1)

	kick chan struct{} // the config changed
	stop chan struct{}
	done chan struct{}
}

func (s *sender) run() {
	defer close(s.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	var delay time.Duration // the back-off in force; 0 after a success
	for {
		cfg := s.conf.Load().cfg
		st := s.q.Stats()
		var wait <-chan time.Time // nil: wait for an append
		if st.Queued > 0 && st.Queued < cfg.Batch.Size {
			if d := st.Oldest.Add(cfg.Batch.Wait.D()).Sub(s.clock.Now()); d > 0 {
				wait = s.clock.After(d)
			} else {
				st.Queued = cfg.Batch.Size // due: send what there is
			}
		}
		if st.Queued < cfg.Batch.Size {
			select {
			case <-wait:
			case <-s.q.Notify():
				if wait == nil {
					continue
				}
				// Leave the pending timer to fire: the check at the top
				// sees a full batch, or waits again until the same due time.
				continue
			case <-s.kick:
				continue
			case <-s.stop:
				return
			}
		}
		b, err := s.q.Peek(cfg.Batch.Size)
		if err != nil || (len(b.Entries) == 0 && b.Through == 0) {
			continue
		}
		if len(b.Entries) > 0 {
			err = s.post(ctx, cfg, b)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.rec.HookFailed(s.name)
			delay = s.nextDelay(cfg, delay)
			s.logger.Warn("hook: POST failed; retrying", "hook", s.name, "events", len(b.Entries), "retry_in", delay.Round(time.Millisecond), "err", err)
			select {
			case <-s.clock.After(delay):
			case <-s.kick: // a new url or secret: try it now
			case <-s.stop:
				return
			}
			continue
		}
		delay = 0
		if b.Damaged > 0 {
			s.logger.Error("hook: damaged queue entries skipped", "hook", s.name, "count", b.Damaged)
		}
		if err := s.q.Ack(b); err != nil {
			s.logger.Error("hook: acknowledge batch", "hook", s.name, "err", err)
		}
		s.rec.HookSent(s.name, len(b.Entries))
	}
}

// nextDelay doubles the back-off from backoff.initial up to backoff.max,
// then spreads it by ±20% so that many senders do not retry in step.
func (s *sender) nextDelay(cfg *config.Hook, prev time.Duration) time.Duration {
	d := cfg.Backoff.Initial.D()
	if prev > 0 {
		d = min(2*prev, cfg.Backoff.Max.D())
	}
	d = min(d, cfg.Backoff.Max.D())
	return time.Duration(float64(d) * (0.8 + 0.4*s.jitter()))
}

// post sends the batch as a JSON array; only a 2xx acknowledges it.
func (s *sender) post(ctx context.Context, cfg *config.Hook, b Batch) error {
	n := 2
	for _, e := range b.Entries {
		n += len(e.Payload) + 1
	}
	body := make([]byte, 0, n)
	body = append(body, '[')
	for i, e := range b.Entries {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, e.Payload...)
	}
	body = append(body, ']')

	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout.D())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("hook %s: %w", s.name, err)
	}
	for k, v := range cfg.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cuemta-hooks")
	req.Header.Set("X-Cuemta-Hook", s.name)
	req.Header.Set(SignatureHeader, Sign(cfg.Secret, s.clock.Now(), body))
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("hook %s: POST %s: %w", s.name, cfg.URL, err)
	}
	// Read a little of the answer so the connection can be reused.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("hook %s: POST %s: %s", s.name, cfg.URL, resp.Status)
	}
	return nil
}

func defaultJitter() float64 { return rand.Float64() }
