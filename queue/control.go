package queue

import (
	"fmt"
	"os"
	"path/filepath"
)

// Control requests run on the committer between batches, so they see a
// quiet log and index.

func (s *Spool) control(r *request) {
	if !r.state.CompareAndSwap(stQueued, stTaken) {
		return
	}
	err := s.ready()
	if err == nil {
		switch r.kind {
		case reqTruncate:
			err = s.truncateFront(r.cut)
		case reqDropFiles:
			err = s.dropFiles(r.files)
		case reqPlanCut:
			r.plan, err = s.planCut()
		}
	}
	r.state.Store(stBuilt)
	r.done <- err
}

// truncateFront drops the log entries before cut once no live message's
// latest record is among them. It truncates at cut-1, not cut: wal rewrites
// the remainder of the segment holding the new first entry, and cut is a
// segment's first entry, so this rewrites one record instead of a segment.
// The one old record kept is harmless: anything it says is superseded by
// later records.
func (s *Spool) truncateFront(cut uint64) error {
	for _, e := range s.idx.m {
		if e.walIdx < cut {
			return fmt.Errorf("spool: compact: a live message is still at log index %d < %d", e.walIdx, cut)
		}
	}
	first, err := s.wal.FirstIndex()
	if err != nil {
		return storageErr("compact: log first index", err)
	}
	if cut < 2 || cut-1 <= first {
		return nil
	}
	if err := s.wal.TruncateFront(cut - 1); err != nil {
		err = storageErr("compact: truncate log", err)
		s.broken = err // the wal may be half-way: reopen it
		if rerr := s.repair(); rerr != nil {
			s.log.Error("spool: repair failed; will retry before the next batch", "err", rerr)
		}
		return err
	}
	if err := s.opts.hooks.dirSync(s.walDir); err != nil {
		return storageErr("compact: fsync log directory", err)
	}
	return nil
}

// dropFiles deletes body files that no live message references.
func (s *Spool) dropFiles(files []uint32) error {
	n := 0
	for _, num := range files {
		s.idx.mu.Lock()
		u := s.idx.files[num]
		ok := u != nil && u.live == 0 && num != s.body.num
		if ok {
			delete(s.idx.files, num)
		}
		s.idx.mu.Unlock()
		if !ok {
			continue
		}
		s.readers.drop(num)
		if err := os.Remove(filepath.Join(s.bodyDir, bodyName(num))); err != nil && !os.IsNotExist(err) {
			return storageErr("compact: remove body file", err)
		}
		n++
	}
	if n > 0 {
		if err := s.opts.hooks.dirSync(s.bodyDir); err != nil {
			return storageErr("compact: fsync body directory", err)
		}
	}
	return nil
}
