package queue

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// CompactResult says what one Compact call did.
type CompactResult struct {
	BodiesMoved    int   // live bodies copied out of mostly-dead body files
	RecordsMoved   int   // live messages re-appended past the log cut
	LogBytesFreed  int64 // size of the log segments dropped
	BodyFilesFreed int   // body files deleted
}

// Reclamation policy. A body file is evacuated when under a quarter of it
// is live; log segments are dropped from the front as far as the live
// records in them are at most half their size. Copying therefore costs at
// most about as much as it frees.
const (
	bodyLiveFraction = 4 // evacuate when liveBytes*4 < size
	logLiveFraction  = 2 // drop a prefix when liveBytes*2 <= its size
	moveChunk        = 256
	logRecOverhead   = 24 // approximate non-envelope bytes of a put record
)

// Compact reclaims disk space held by finished messages: live bodies are
// copied out of mostly-dead body files, live records are re-appended past
// the point where the log's front is cut, then the log is truncated
// (TruncateFront) and unreferenced body files are deleted, each followed
// by a directory fsync. Open runs it in the background every
// CompactInterval; calling it directly is safe at any time.
func (s *Spool) Compact() (CompactResult, error) {
	s.compactMu.Lock()
	defer s.compactMu.Unlock()
	var res CompactResult
	ctx := context.Background()
	if err := s.moveBodies(ctx, &res); err != nil {
		return res, err
	}
	if err := s.cutLog(ctx, &res); err != nil {
		return res, err
	}
	// Body files that are now unreferenced (including those just evacuated).
	s.idx.mu.RLock()
	var dead []uint32
	for num, u := range s.idx.files {
		if u.live == 0 && num != s.activeBodyNum() {
			dead = append(dead, num)
		}
	}
	s.idx.mu.RUnlock()
	if len(dead) > 0 {
		r := newRequest(reqDropFiles, "")
		r.files = dead
		if err := s.do(ctx, r); err != nil {
			return res, err
		}
		res.BodyFilesFreed = len(dead)
	}
	return res, nil
}

// activeBodyNum must be called holding idx.mu.
func (s *Spool) activeBodyNum() uint32 { return s.idx.active }

func (s *Spool) moveBodies(ctx context.Context, res *CompactResult) error {
	s.idx.mu.RLock()
	sparse := make(map[uint32]bool)
	for num, u := range s.idx.files {
		if u.live > 0 && num != s.activeBodyNum() && u.liveBytes*bodyLiveFraction < u.size {
			sparse[num] = true
		}
	}
	var ids []string
	if len(sparse) > 0 {
		for id, e := range s.idx.m {
			if sparse[e.file] {
				ids = append(ids, id)
			}
		}
	}
	s.idx.mu.RUnlock()
	for len(ids) > 0 {
		n, bytes := 0, 0
		var rs []*request
		for _, id := range ids {
			if n == moveChunk || bytes >= maxBatchBytes {
				break
			}
			n++
			s.idx.mu.RLock()
			e := s.idx.m[id]
			var ref bodyRef
			if e != nil {
				ref = e.ref()
			}
			s.idx.mu.RUnlock()
			if e == nil || !sparse[ref.file] {
				continue
			}
			body, err := readFrame(s.bodyDir, ref, id)
			if err != nil {
				s.log.Error("spool: compact: cannot read body to move it; its file stays", "id", id, "err", err)
				continue
			}
			r := newRequest(reqRebody, id)
			r.body, r.oldRef = body, ref
			rs = append(rs, r)
			bytes += len(body)
		}
		if err := s.doAll(ctx, rs); err != nil {
			return fmt.Errorf("spool: compact: move bodies: %w", err)
		}
		res.BodiesMoved += len(rs)
		ids = ids[n:]
	}
	return nil
}

// cutPlan is where compaction cuts the log's front.
type cutPlan struct {
	cut   uint64   // first log index kept (a segment's first entry)
	ids   []string // live messages whose latest record lies before cut
	freed int64    // bytes of the segments before cut
}

func (s *Spool) cutLog(ctx context.Context, res *CompactResult) error {
	// The cut is chosen on the committer, between batches: there the
	// segment list, the index and the last log index agree. Listed from
	// here instead, a segment started by a batch still being written could
	// become the cut while that batch's records before it were not yet in
	// the index, so nothing rewrote them and the truncation had to refuse.
	r := newRequest(reqPlanCut, "")
	if err := s.do(ctx, r); err != nil {
		return fmt.Errorf("spool: compact: plan log cut: %w", err)
	}
	p := r.plan
	if p == nil {
		return nil
	}
	// Every record written from now on lands at or after the cut (it is at
	// most the tail segment's first index), so rewriting these messages
	// leaves no live message's latest record before it.
	ids := p.ids
	for len(ids) > 0 {
		n := min(4*moveChunk, len(ids))
		rs := make([]*request, n)
		for i, id := range ids[:n] {
			rs[i] = newRequest(reqRewrite, id)
			rs[i].cut = p.cut
		}
		if err := s.doAll(ctx, rs); err != nil {
			return fmt.Errorf("spool: compact: move records: %w", err)
		}
		res.RecordsMoved += n
		ids = ids[n:]
	}
	r = newRequest(reqTruncate, "")
	r.cut = p.cut
	if err := s.do(ctx, r); err != nil {
		return err
	}
	res.LogBytesFreed += p.freed
	return nil
}

// planCut runs on the committer (a control request). It picks the longest
// prefix of non-tail segments whose live records take at most half its
// bytes, and lists the live messages to re-append past it. It scans the
// index, O(live messages): a few ms at a million, once per compaction.
// Only the committer changes entries' walIdx and the map, so it reads them
// without the lock.
func (s *Spool) planCut() (*cutPlan, error) {
	segs, _, err := listSegments(s.walDir)
	if err != nil {
		return nil, storageErr("compact: list log", err)
	}
	if len(segs) < 2 {
		return nil, nil
	}
	// Live record bytes per segment.
	starts := make([]uint64, len(segs))
	for i, sg := range segs {
		starts[i] = sg.start
	}
	live := make([]int64, len(segs))
	for _, e := range s.idx.m {
		i := sort.Search(len(starts), func(i int) bool { return starts[i] > e.walIdx }) - 1
		if i >= 0 {
			live[i] += int64(len(e.enc) + logRecOverhead)
		}
	}
	// The longest prefix (never the tail) worth cutting.
	k := 0
	var segBytes, liveBytes int64
	for i := 0; i < len(segs)-1; i++ {
		segBytes += segs[i].size
		liveBytes += live[i]
		if liveBytes*logLiveFraction <= segBytes && segs[i+1].start-1 > segs[0].start {
			k = i + 1
		}
	}
	if k == 0 {
		return nil, nil
	}
	p := &cutPlan{cut: segs[k].start}
	if p.cut > s.lastIdx+1 { // a segment wal has not written to yet; cannot happen between batches
		return nil, fmt.Errorf("spool: compact: segment %s starts past the last log index %d: %w", segs[k].path, s.lastIdx, ErrCorrupt)
	}
	for id, e := range s.idx.m {
		if e.walIdx < p.cut {
			p.ids = append(p.ids, id)
		}
	}
	for _, sg := range segs[:k] {
		p.freed += sg.size
	}
	return p, nil
}

func (s *Spool) compactLoop() {
	defer close(s.compactDone)
	t := time.NewTicker(s.opts.CompactInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stopCompact:
			return
		case <-t.C:
		}
		start := time.Now()
		res, err := s.Compact()
		switch {
		case err != nil:
			s.log.Error("spool: compaction failed", "err", err)
		case res != CompactResult{}:
			s.log.Info("spool: compacted", "bodies_moved", res.BodiesMoved, "records_moved", res.RecordsMoved,
				"log_bytes_freed", res.LogBytesFreed, "body_files_freed", res.BodyFilesFreed,
				"took", time.Since(start).Round(time.Millisecond))
		}
	}
}
