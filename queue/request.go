package queue

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
)

type reqKind uint8

const (
	reqEnqueue reqKind = iota
	reqMutate          // change the envelope (mutate func, or enc replacing it)
	reqDone            // Complete
	reqRewrite         // compaction: re-put the current state past cut
	reqRebody          // compaction: move the body into the active body file
	// control requests run alone, between batches
	reqTruncate  // drop log entries before cut
	reqDropFiles // delete unreferenced body files
	reqPlanCut   // choose where compaction cuts the log (fills plan)
)

// Request states. The committer moves queued→taken→built; a waiter whose
// context ends moves queued→cancelled, which keeps the request out of any
// batch.
const (
	stQueued int32 = iota
	stCancelled
	stTaken // the committer may still read body
	stBuilt // the committer no longer reads the caller's memory
)

type request struct {
	kind    reqKind
	id      string
	enc     []byte // enqueue: the encoded envelope; mutate: replacement
	next    int64  // enqueue: NextAttempt (UnixNano)
	body    []byte // enqueue, rebody
	reserve bool   // enqueue: may use the spool reserve (EnqueueReserved)
	mutate  func(*Envelope) error
	expect  []byte  // mutate: apply only if the current encoding is this slice
	oldRef  bodyRef // rebody: move only if the body is still here
	outcome Outcome
	reason  string
	cut     uint64   // rewrite, truncate
	files   []uint32 // dropFiles
	plan    *cutPlan // planCut: its answer, nil when not worth cutting
	state   atomic.Int32
	done    chan error
}

func newRequest(kind reqKind, id string) *request {
	return &request{kind: kind, id: id, done: make(chan error, 1)}
}

func (r *request) size() int       { return len(r.body) + len(r.enc) + 64 }
func (r *request) isControl() bool { return r.kind >= reqTruncate }

// submit hands r to the committer.
func (s *Spool) submit(ctx context.Context, r *request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.submitMu.RLock()
	defer s.submitMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	select {
	case s.reqs <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// do submits r and waits for its result. If ctx ends before the committer
// took r, r is withdrawn and never written. If the committer already took
// it, the call still returns the context error (the outcome is then
// unknown: r may be committed) but only after the committer has stopped
// reading r's body, so the caller may reuse that memory.
func (s *Spool) do(ctx context.Context, r *request) error {
	if err := s.submit(ctx, r); err != nil {
		return fmt.Errorf("spool: submit: %w", err)
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		select {
		case err := <-r.done:
			return err
		default:
		}
		if r.state.CompareAndSwap(stQueued, stCancelled) {
			return fmt.Errorf("spool: abandoned before commit, nothing stored: %w", ctx.Err())
		}
		for r.state.Load() == stTaken {
			runtime.Gosched() // staging copies the body: microseconds
		}
		return fmt.Errorf("spool: abandoned during commit, may have been stored: %w", ctx.Err())
	}
}

// doAll submits rs and waits for all of them, returning the first error.
// Used by compaction, so that its requests share batches.
func (s *Spool) doAll(ctx context.Context, rs []*request) error {
	var first error
	n := 0
	for _, r := range rs {
		if err := s.submit(ctx, r); err != nil {
			first = fmt.Errorf("spool: submit: %w", err)
			break
		}
		n++
	}
	for _, r := range rs[:n] {
		if err := <-r.done; err != nil && first == nil {
			first = err
		}
	}
	return first
}
