package queue

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/cuemta/cuemta/internal/walseg"
)

// ready repairs storage after an earlier failure and rolls a full body file.
func (s *Spool) ready() error {
	if s.broken != nil {
		if err := s.repair(); err != nil {
			return err
		}
	}
	if s.body.off >= s.opts.BodyFileSize {
		if err := s.rollBody(); err != nil {
			s.broken = storageErr("start body file", err)
			return s.broken
		}
	}
	return nil
}

// repair brings storage back to exactly the acknowledged state after a
// failed write: the wal instance is dropped (its memory may hold entries
// that never reached the disk), the log is cut after the last acknowledged
// entry, reopened, and a fresh body file is started (the old one may end
// in a partial frame). A failed fsync can leave pages whose fate the kernel
// no longer reports, so nothing written after the last good fsync is kept.
func (s *Spool) repair() error {
	if s.wal != nil {
		_ = s.wal.Close() // fails again after a failed fsync; dropped either way
		s.wal = nil
	}
	dropped, err := truncateLogAfter(s.walDir, s.lastIdx)
	if err != nil {
		return storageErr("repair: cut log to the last acknowledged entry", err)
	}
	l, err := openLog(s.walDir, s.opts.SegmentSize)
	if err != nil {
		return storageErr("repair: reopen log", err)
	}
	if li, _ := l.LastIndex(); li != s.lastIdx {
		l.Close()
		return fmt.Errorf("spool: repair: log ends at %d, want %d: %w", li, s.lastIdx, ErrCorrupt)
	}
	s.wal = l
	if s.tailStart, err = walseg.TailStart(s.walDir); err == nil {
		s.tailBytes = segmentSize(s.walDir, s.tailStart)
	}
	if err != nil {
		return storageErr("repair: list log", err)
	}
	// The body file may end in a partial frame or in pages whose fsync
	// failed; start clean unless nothing was ever written to it.
	if fi, err := s.body.f.Stat(); err != nil || fi.Size() != 0 {
		if err := s.rollBody(); err != nil {
			return storageErr("repair: start body file", err)
		}
	}
	s.broken = nil
	s.log.Warn("spool: storage repaired after a failed write", "log_bytes_dropped", dropped, "body_file", bodyName(s.body.num))
	return nil
}

// rollBody starts a new body file; its directory entry is fsynced before
// any acknowledged record can point into it.
func (s *Spool) rollBody() error {
	s.nextBody++
	num := s.nextBody
	path := filepath.Join(s.bodyDir, bodyName(num))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	if err := s.opts.hooks.dirSync(s.bodyDir); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	s.idx.mu.Lock()
	if old := s.body.f; old != nil {
		if fi, err := old.Stat(); err == nil {
			s.idx.use(s.body.num).size = fi.Size()
		}
		old.Close()
	}
	s.idx.use(num)
	s.idx.active = num
	s.idx.mu.Unlock()
	s.body = activeBody{f: f, num: num}
	return nil
}
