package queue

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// Get returns the current envelope of a live message.
func (s *Spool) Get(id string) (Envelope, bool) {
	enc := s.encoded(id)
	if enc == nil {
		return Envelope{}, false
	}
	env, err := decodeEnvelope(enc)
	if err != nil { // encodings are checked when written and replayed
		s.log.Error("spool: undecodable envelope in memory", "id", id, "err", err)
		return Envelope{}, false
	}
	return env, true
}

// Body returns a live message's body, read from disk and checked against
// its CRC.
func (s *Spool) Body(id string) ([]byte, error) {
	var last error
	for range 3 { // compaction may move the body between lookup and read
		s.idx.mu.RLock()
		e := s.idx.m[id]
		var ref bodyRef
		if e != nil {
			ref = e.ref()
		}
		s.idx.mu.RUnlock()
		if e == nil {
			return nil, fmt.Errorf("spool: body of %s: %w", id, ErrNotFound)
		}
		b, err := s.readers.read(ref, id)
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		last = err
	}
	return nil, storageErr("read body of "+id, last)
}

// Len returns the number of live messages.
func (s *Spool) Len() int {
	s.idx.mu.RLock()
	defer s.idx.mu.RUnlock()
	return len(s.idx.m)
}

// Each calls f for every live message, in no particular order, until f
// returns false. It works on a snapshot, so f may call other methods.
func (s *Spool) Each(f func(Envelope) bool) {
	s.idx.mu.RLock()
	encs := make([][]byte, 0, len(s.idx.m))
	for _, e := range s.idx.m {
		encs = append(encs, e.enc)
	}
	s.idx.mu.RUnlock()
	for _, enc := range encs {
		env, err := decodeEnvelope(enc)
		if err != nil {
			continue
		}
		if !f(env) {
			return
		}
	}
}

// Due returns up to max live messages whose NextAttempt is at or before
// now, earliest first. It costs O(max log max), so it can be polled often.
// It does not lease: a message stays due until RecordAttempt, Reschedule or
// Complete changes it, so callers move a message's NextAttempt when they
// start working on it.
func (s *Spool) Due(now time.Time, max int) []Envelope {
	s.idx.mu.RLock()
	encs := s.idx.due(now.UnixNano(), max)
	s.idx.mu.RUnlock()
	out := make([]Envelope, 0, len(encs))
	for _, enc := range encs {
		if env, err := decodeEnvelope(enc); err == nil {
			out = append(out, env)
		}
	}
	return out
}

// encoded is the stored encoding of a live message's envelope, nil if
// the message is unknown.
func (s *Spool) encoded(id string) []byte {
	s.idx.mu.RLock()
	defer s.idx.mu.RUnlock()
	if e := s.idx.m[id]; e != nil {
		return e.enc
	}
	return nil
}

// Lease moves a message's place in the Due order to until, in memory
// only, so that a scheduler does not see the message again while it works
// on it. It writes nothing: after a restart the message is due at its
// stored NextAttempt, as it must be since the work was not recorded. It
// reports whether the message is live.
func (s *Spool) Lease(id string, until time.Time) bool {
	s.idx.mu.Lock()
	defer s.idx.mu.Unlock()
	e := s.idx.m[id]
	if e == nil {
		return false
	}
	e.next = until.UnixNano()
	s.idx.fix(int(e.heapPos))
	return true
}
