package queue

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/cuemta/cuemta/internal/walseg"
)

// The committer is the one goroutine that writes: it owns the wal, the
// active body file and every change to the index, which keeps log indexes
// gapless and lets it read the index without locking.

// staged is a message's state as of the requests staged so far in the
// current batch.
type staged struct {
	enc    []byte
	ref    bodyRef
	walIdx uint64
	gone   bool
}

// op is one record of the batch and its effect on the index.
type op struct {
	r      *request
	id     string
	enc    []byte // nil: the message leaves the index
	next   int64
	ref    bodyRef
	walIdx uint64
}

type activeBody struct {
	f   *os.File
	num uint32
	off int64
}

func (s *Spool) run() {
	defer close(s.runDone)
	defer s.space.compactWG.Wait() // a compaction started by the reserve
	tick := time.NewTicker(spaceCheckEvery)
	defer tick.Stop()
	var batch []*request
	for {
		var r *request
		select {
		case req, ok := <-s.reqs:
			if !ok {
				return
			}
			r = req
		case <-tick.C:
			s.spaceTick()
			continue
		case <-s.space.recheck: // nil until the reserve starts a compaction
			s.spaceTick()
			continue
		}
		if r.isControl() {
			s.control(r)
			continue
		}
		batch = append(batch[:0], r)
		size := r.size()
		var held *request
		if w := s.opts.GroupCommitWindow; w > 0 {
			t := time.NewTimer(w)
			batch, size, held = s.gather(batch, size, t.C)
			t.Stop()
		}
		if held == nil {
			batch, _, held = s.gather(batch, size, nil)
		}
		s.commit(batch)
		clear(batch) // let requests and bodies go
		if cap(s.bodyBuf) > 2*maxBatchBytes {
			s.bodyBuf = nil // after one huge body, do not keep its buffer
		}
		if held != nil {
			s.control(held)
		}
	}
}

// gather adds pending requests to batch until it is full, the channel is
// empty (deadline nil) or the deadline passes. A control request ends the
// batch and is returned to run after it.
func (s *Spool) gather(batch []*request, size int, deadline <-chan time.Time) ([]*request, int, *request) {
	for len(batch) < maxBatchRequests && size < maxBatchBytes {
		var r *request
		var ok bool
		if deadline == nil {
			select {
			case r, ok = <-s.reqs:
			default:
				return batch, size, nil
			}
		} else {
			select {
			case r, ok = <-s.reqs:
			case <-deadline:
				return batch, size, nil
			}
		}
		if !ok {
			return batch, size, nil // closing: run's loop ends after this batch
		}
		if r.isControl() {
			return batch, size, r
		}
		batch = append(batch, r)
		size += r.size()
	}
	return batch, size, nil
}

// commit stages, writes and fsyncs one batch, then answers its waiters.
func (s *Spool) commit(batch []*request) {
	if err := s.ready(); err != nil {
		for _, r := range batch {
			r.done <- err
		}
		return
	}
	if batchNeedsSpace(batch) {
		s.checkSpace() // once per batch: admit subtracts what it stages
	}
	s.batchSeq++
	clear(s.overlay)
	s.ops = s.ops[:0]
	s.bodyBuf = s.bodyBuf[:0]
	clear(s.bodyParts) // let the last batch's bodies go
	s.bodyParts, s.bodyLen = s.bodyParts[:0], 0
	for _, r := range batch {
		if !r.state.CompareAndSwap(stQueued, stTaken) {
			continue // withdrawn by its caller
		}
		o, err := s.stage(r, s.lastIdx+uint64(len(s.ops))+1)
		r.state.Store(stBuilt)
		switch {
		case err != nil:
			r.done <- err
		case o == nil:
			r.done <- nil // nothing to write
		default:
			s.ops = append(s.ops, *o)
		}
	}
	if len(s.ops) == 0 {
		return
	}
	start := time.Now()
	err := s.write()
	if s.opts.OnCommit != nil {
		s.opts.OnCommit(time.Since(start), len(s.ops))
	}
	if err != nil {
		err = storageErr("commit batch", err)
		s.broken = err
		s.noteWriteFailure(err)
		s.log.Error("spool: batch failed, nothing in it acknowledged", "requests", len(s.ops), "err", err)
		for i := range s.ops {
			s.ops[i].r.done <- err
			s.ops[i] = op{}
		}
		if rerr := s.repair(); rerr != nil {
			s.log.Error("spool: repair failed; will retry before the next batch", "err", rerr)
		}
		return
	}
	s.idx.mu.Lock()
	for i := range s.ops {
		o := &s.ops[i]
		if o.enc == nil {
			s.idx.remove(o.id)
		} else {
			s.idx.put(o.id, o.enc, o.next, o.walIdx, o.ref)
		}
	}
	s.idx.use(s.body.num).size = s.body.off
	s.idx.mu.Unlock()
	s.lastIdx += uint64(len(s.ops))
	for i := range s.ops {
		s.ops[i].r.done <- nil
		s.ops[i] = op{}
	}
}

func (s *Spool) current(id string) (staged, bool) {
	if st, ok := s.overlay[id]; ok {
		return st, !st.gone
	}
	e := s.idx.m[id] // only this goroutine writes the index
	if e == nil {
		return staged{}, false
	}
	return staged{enc: e.enc, ref: e.ref(), walIdx: e.walIdx}, true
}

func sameSlice(a, b []byte) bool { return len(a) == len(b) && len(a) > 0 && &a[0] == &b[0] }

// stage turns a request into its log record (added to s.wb, body frame to
// s.bodyBuf) at log index walIdx. A nil op means there is nothing to write.
func (s *Spool) stage(r *request, walIdx uint64) (*op, error) {
	cur, ok := s.current(r.id)
	o := &op{r: r, id: r.id, walIdx: walIdx}
	switch r.kind {
	case reqEnqueue:
		if ok {
			return nil, fmt.Errorf("spool: enqueue %s: %w", r.id, ErrExists)
		}
		if !r.reserve {
			if err := s.admit(r); err != nil {
				return nil, err
			}
		}
		o.enc, o.next, o.ref = r.enc, r.next, s.stageBody(r.id, r.body)
	case reqMutate:
		if !ok {
			return nil, fmt.Errorf("spool: update %s: %w", r.id, ErrNotFound)
		}
		if r.expect != nil && !sameSlice(cur.enc, r.expect) {
			return nil, errConflict
		}
		o.enc, o.ref = r.enc, cur.ref
		if o.enc == nil {
			env, err := decodeEnvelope(cur.enc)
			if err != nil {
				return nil, fmt.Errorf("spool: update %s: decode: %w", r.id, err)
			}
			if err := r.mutate(&env); err != nil {
				return nil, err
			}
			o.enc = encodeEnvelope(nil, &env)
		}
		h, _ := peekEnvelope(o.enc)
		o.next = h.next
	case reqDone:
		if !ok {
			return nil, fmt.Errorf("spool: complete %s: %w", r.id, ErrNotFound)
		}
		s.scratch = appendDone(s.scratch[:0], s.batchSeq, r.id, r.outcome, r.reason)
		s.wb.Write(walIdx, s.scratch)
		s.batchBytes += int64(len(s.scratch)) + binary.MaxVarintLen64
		s.overlay[r.id] = staged{gone: true}
		return o, nil
	case reqRewrite:
		if !ok || cur.walIdx >= r.cut {
			return nil, nil
		}
		o.enc, o.ref = cur.enc, cur.ref
		h, _ := peekEnvelope(o.enc)
		o.next = h.next
	case reqRebody:
		if !ok || cur.ref != r.oldRef {
			return nil, nil
		}
		o.enc, o.ref = cur.enc, s.stageBody(r.id, r.body)
		h, _ := peekEnvelope(o.enc)
		o.next = h.next
	default:
		return nil, fmt.Errorf("spool: unexpected request kind %d", r.kind)
	}
	s.scratch = appendPut(s.scratch[:0], s.batchSeq, o.ref, o.enc)
	s.wb.Write(walIdx, s.scratch)
	s.batchBytes += int64(len(s.scratch)) + binary.MaxVarintLen64
	s.overlay[r.id] = staged{enc: o.enc, ref: o.ref, walIdx: walIdx}
	return o, nil
}

// bigBody is the size from which a body is written from the caller's
// slice instead of being copied into bodyBuf: a copy of a 50 MB message
// is 50 MB more garbage per message, while small bodies share one pwrite.
const bigBody = 64 << 10

// bodyPart is a run of the batch's body frames: bodyBuf[start:end], or a
// large body written from where it is (ext). The caller of Enqueue keeps
// it unchanged until the batch is durable, since it waits for that.
type bodyPart struct {
	ext        []byte
	start, end int
}

func (s *Spool) stageBody(id string, body []byte) bodyRef {
	ref := bodyRef{file: s.body.num, n: uint32(len(body)), off: s.body.off + s.bodyLen}
	start := len(s.bodyBuf)
	if len(body) < bigBody {
		s.bodyBuf, ref.crc = appendFrame(s.bodyBuf, id, body)
	} else {
		s.bodyBuf, ref.crc = appendFrameHeader(s.bodyBuf, id, body)
	}
	if n := len(s.bodyParts); n > 0 && s.bodyParts[n-1].ext == nil && s.bodyParts[n-1].end == start {
		s.bodyParts[n-1].end = len(s.bodyBuf)
	} else {
		s.bodyParts = append(s.bodyParts, bodyPart{start: start, end: len(s.bodyBuf)})
	}
	if len(body) >= bigBody {
		s.bodyParts = append(s.bodyParts, bodyPart{ext: body})
	}
	s.bodyLen += frameLen(len(id), ref.n)
	return ref
}

// write makes the staged batch durable: body frames are written first,
// then the body fsync runs alongside the log's write+fsync (overlapping
// the two fsyncs; replay covers the window, see replayLog).
func (s *Spool) write() error {
	h := s.opts.hooks
	defer s.wb.Clear() // WriteBatch keeps a failed batch
	// Frames go to the file in order, the offset advancing only once all
	// are written: a failure leaves a tail that repair truncates.
	off := s.body.off
	for _, p := range s.bodyParts {
		b := p.ext
		if b == nil {
			b = s.bodyBuf[p.start:p.end]
		}
		if _, err := h.bodyWrite(s.body.f, b, off); err != nil {
			return fmt.Errorf("write body file: %w", err)
		}
		off += int64(len(b))
	}
	s.body.off = off
	var syncErr error
	var wg sync.WaitGroup
	if s.bodyLen > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			syncErr = h.bodySync(s.body.f)
		}()
	}
	walErr := h.walWrite(s.wal, &s.wb)
	wg.Wait()
	if walErr != nil {
		return fmt.Errorf("write log: %w", walErr)
	}
	if syncErr != nil {
		return fmt.Errorf("fsync body file: %w", syncErr)
	}
	// wal fsyncs a segment it creates but never the directory entry. It
	// starts one only once its tail holds SegmentSize bytes, so the
	// directory is listed only when our (over-)estimate of the tail's
	// size says it may have: listing it after every batch cost a tenth of
	// the spool's CPU.
	s.tailBytes += s.batchBytes
	s.batchBytes = 0
	if s.tailBytes < s.opts.SegmentSize {
		return nil
	}
	ts, err := walseg.TailStart(s.walDir)
	if err != nil {
		return fmt.Errorf("list log: %w", err)
	}
	if ts != s.tailStart {
		if err := h.dirSync(s.walDir); err != nil {
			return fmt.Errorf("fsync log directory: %w", err)
		}
		s.tailStart = ts
		s.tailBytes = segmentSize(s.walDir, ts)
	}
	return nil
}
