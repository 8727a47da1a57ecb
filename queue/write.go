package queue

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Enqueue stores a message and returns its ID. It returns nil only after
// the envelope and body are on disk (fsynced). env is not modified: the
// stored copy gets an ID when env.ID is empty, Received = Now() when zero,
// NextAttempt = Received when zero, and Size = len(body). body must not be
// modified until Enqueue returns.
//
// Enqueue is for mail received from outside (SMTP, the injection API): it
// keeps Options.Reserve free on the spool's filesystem, refusing with an
// error wrapping ErrLowSpace (and so ErrNoSpace) when storing the message
// would leave less, and refusing every message while LowSpace reports true.
// Nothing is written then.
//
// If ctx ends first, Enqueue returns an error; the message was then not
// stored if the committer had not yet taken it, and may have been otherwise
// (the error says which). Success is never reported for unstored data.
func (s *Spool) Enqueue(ctx context.Context, env *Envelope, body []byte) (string, error) {
	return s.enqueue(ctx, env, body, false)
}

// EnqueueReserved is Enqueue for system mail: bounces (DSNs) and other
// messages the MTA generates while draining its queue. It may use the
// reserve that Enqueue keeps free, so a bounce can still be queued while
// reception is refused for lack of space; it fails only when the
// filesystem itself is full (ErrNoSpace). Do not use it for mail from
// clients: that would defeat the reserve.
func (s *Spool) EnqueueReserved(ctx context.Context, env *Envelope, body []byte) (string, error) {
	return s.enqueue(ctx, env, body, true)
}

func (s *Spool) enqueue(ctx context.Context, env *Envelope, body []byte, reserved bool) (string, error) {
	e := env.clone()
	if e.ID == "" {
		e.ID = s.ids.next(s.opts.Now())
	} else if err := validID(e.ID); err != nil {
		return "", err
	}
	if len(e.Recipients) == 0 {
		return "", fmt.Errorf("spool: enqueue %s: no recipients", e.ID)
	}
	if uint64(len(body)) > 1<<32-1 {
		return "", fmt.Errorf("spool: enqueue %s: body of %d bytes is too large", e.ID, len(body))
	}
	if e.Received.IsZero() {
		e.Received = s.opts.Now()
	}
	if e.NextAttempt.IsZero() {
		e.NextAttempt = e.Received
	}
	e.Size = int64(len(body))
	r := newRequest(reqEnqueue, e.ID)
	r.enc = encodeEnvelope(nil, &e)
	r.next = timeNano(e.NextAttempt)
	r.body = body
	r.reserve = reserved
	if err := s.do(ctx, r); err != nil {
		return "", err
	}
	return e.ID, nil
}

// RecordAttempt durably records one delivery attempt: each result updates
// its recipient's status and last reply, Attempts is incremented and
// NextAttempt set to next. A result for an address that is not a recipient
// fails the call and changes nothing.
func (s *Spool) RecordAttempt(id string, results []RecipientResult, next time.Time) error {
	results = append([]RecipientResult(nil), results...)
	return s.mutate(id, func(e *Envelope) error {
		for _, res := range results {
			found := false
			for i := range e.Recipients {
				if e.Recipients[i].Addr == res.Addr {
					e.Recipients[i].Status = res.Status
					e.Recipients[i].LastReply = res.Reply
					e.Recipients[i].DelayNotified = e.Recipients[i].DelayNotified || res.DelayNotified
					found = true
				}
			}
			if !found {
				return fmt.Errorf("spool: record attempt for %s: %q is not a recipient", id, res.Addr)
			}
		}
		e.Attempts++
		e.NextAttempt = next
		return nil
	})
}

// Reschedule durably sets a message's NextAttempt.
func (s *Spool) Reschedule(id string, next time.Time) error {
	return s.mutate(id, func(e *Envelope) error {
		e.NextAttempt = next
		return nil
	})
}

func (s *Spool) mutate(id string, f func(*Envelope) error) error {
	r := newRequest(reqMutate, id)
	r.mutate = f
	return s.do(context.Background(), r)
}

// Update applies an administrative change: f edits a copy of the current
// envelope and the result is stored durably. f runs outside the spool's
// locks and may run more than once if the message changes concurrently;
// it must not change the ID. Size is kept as stored.
func (s *Spool) Update(id string, f func(*Envelope) error) error {
	for range 10 {
		enc := s.encoded(id)
		if enc == nil {
			return fmt.Errorf("spool: update %s: %w", id, ErrNotFound)
		}
		env, err := decodeEnvelope(enc)
		if err != nil {
			return fmt.Errorf("spool: update %s: decode: %w", id, err)
		}
		size := env.Size
		if err := f(&env); err != nil {
			return err
		}
		if env.ID != id {
			return fmt.Errorf("spool: update %s: the ID cannot change", id)
		}
		env.Size = size
		r := newRequest(reqMutate, id)
		r.enc = encodeEnvelope(nil, &env)
		r.expect = enc
		err = s.do(context.Background(), r)
		if !errors.Is(err, errConflict) {
			return err
		}
	}
	return fmt.Errorf("spool: update %s: %w", id, ErrConflict)
}

// Complete durably records that a message is finished; it leaves the index
// and its space is reclaimed by compaction.
func (s *Spool) Complete(id string, outcome Outcome, reason string) error {
	r := newRequest(reqDone, id)
	r.outcome, r.reason = outcome, reason
	return s.do(context.Background(), r)
}
