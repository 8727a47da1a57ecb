package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The spool reserve. A spool that fills its disk can no longer record what
// its delivery scheduler does (RecordAttempt, Complete), nor what an operator
// asks (retry, delete), nor queue a bounce: the queue stops draining just
// when it most needs to. So reception (Enqueue) keeps Options.Reserve bytes
// free on the spool's filesystem, as Postfix's queue_minfree does, and
// everything else may use them.
//
// The committer measures the free space (fstatfs on the lock file: 0.6 to
// 1.1 µs here, BenchmarkFreeBytes, against at least 185 µs for a batch's
// fsync) before every batch that holds a reception Enqueue, and every
// spaceCheckEvery in any case. Within a batch it subtracts what the batch
// has staged so far, so the bytes of one batch are accounted for before
// they are written, and the next batch's measurement includes them.
//
// Low-space state, with hysteresis so that readiness does not flap:
//   - it starts when the free space is below the reserve, when a reception
//     Enqueue is refused for lack of space while the headroom above the
//     reserve is under the hysteresis margin, or when a write fails with
//     ENOSPC/EDQUOT;
//   - while it lasts every reception Enqueue is refused whatever its size,
//     the space is measured every spaceCheckEvery, the active body file is
//     retired once it is mostly dead (compaction never reclaims the file
//     being appended to) and a compaction is started whenever the log has
//     moved since the last one;
//   - it ends, by itself, once the free space is at least reserve + margin.

const (
	// DefaultReserve is Options.Reserve when it is 0: room for a few
	// hundred bounces and for the records that drain a large queue.
	DefaultReserve = 4 << 20
	// spaceCheckEvery is the longest time between two measurements.
	spaceCheckEvery = time.Second
	// rollEvery bounds how often a low spool retires its body file.
	rollEvery = time.Second
	// enqueueOverhead approximates what an enqueue adds to the log besides
	// its envelope (record header, batch sequence, body reference, varint).
	enqueueOverhead = 48
)

// spaceState is the spool's free-space view. The atomics are read by any
// goroutine; the rest is the committer's.
type spaceState struct {
	override atomic.Pointer[int64] // set by SetReserve; nil: Options.Reserve
	free     atomic.Int64          // bytes available at the last measurement
	checked  atomic.Int64          // UnixNano of that measurement; 0: none yet
	low      atomic.Bool

	compacting atomic.Bool    // a compaction started by the reserve is running
	compactWG  sync.WaitGroup // run waits for it before the committer stops
	// recheck tells the committer that such a compaction ended, so that
	// it measures again at once (created by the first kickCompact).
	recheck chan struct{}

	// committer only
	lowSince   time.Time
	rolled     time.Time // last retirement of a body file
	compactIdx uint64    // s.lastIdx when the last compaction was started
	statErr    bool      // the last measurement failed (logged once)
}

// SpaceStatus is the spool's view of its filesystem's free space.
type SpaceStatus struct {
	Free    int64     // bytes available at the last check; -1 before the first
	Reserve int64     // bytes reception leaves free; -1 when disabled
	Low     bool      // reception is refused for lack of space (see LowSpace)
	Checked time.Time // time of the last check; zero before the first
}

// LowSpace reports whether reception is refused for lack of space: every
// Enqueue fails with ErrLowSpace while it is true. It becomes true when the
// free space on the spool's filesystem falls below Options.Reserve (or a
// write fails with ENOSPC) and false again, by itself, once compaction or
// anything else has freed the reserve plus a margin (the spool checks at
// least every second). Callers use it to
// refuse mail before it is sent (SMTP MAIL FROM) and to report readiness.
// A message larger than the headroom above the reserve is refused by
// Enqueue even while LowSpace is false.
func (s *Spool) LowSpace() bool { return s.space.low.Load() }

// SpaceStatus returns the last free-space measurement and the reserve.
func (s *Spool) SpaceStatus() SpaceStatus {
	st := SpaceStatus{Free: -1, Reserve: s.reserve(), Low: s.space.low.Load()}
	if at := s.space.checked.Load(); at != 0 {
		st.Free, st.Checked = s.space.free.Load(), time.Unix(0, at)
	}
	return st
}

// SetReserve changes Options.Reserve while the spool runs (a configuration
// reload): 0 is DefaultReserve, negative disables the reserve. It applies
// from the next measurement, at most spaceCheckEvery later.
func (s *Spool) SetReserve(n int64) {
	n = normReserve(n)
	s.space.override.Store(&n)
}

func normReserve(n int64) int64 {
	switch {
	case n == 0:
		return DefaultReserve
	case n < 0:
		return -1
	}
	return n
}

// reserve is the reserve in force; -1 when disabled.
func (s *Spool) reserve() int64 {
	if p := s.space.override.Load(); p != nil {
		return *p
	}
	return s.opts.Reserve
}

// hysteresis is the headroom above the reserve that ends low-space state:
// an eighth of the reserve, between 256 KiB and 64 MiB.
func hysteresis(reserve int64) int64 { return min(max(reserve/8, 256<<10), 64<<20) }

// freeBytes is the real statfs hook: the bytes available to unprivileged
// users on f's filesystem (root's 5% on ext4 stays out of the count).
func freeBytes(f *os.File) (int64, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var st syscall.Statfs_t
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.Fstatfs(int(fd), &st) }); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, &os.PathError{Op: "fstatfs", Path: f.Name(), Err: serr}
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// checkSpace measures the free space and updates the low-space state. It
// runs on the committer.
func (s *Spool) checkSpace() {
	res := s.reserve()
	if res < 0 {
		if s.space.low.Load() {
			s.setLow(false, -1, res, "the reserve was disabled")
		}
		return
	}
	free, err := s.opts.hooks.statfs(s.lockFile)
	if err != nil {
		// Unknown: keep the state; a full disk still shows as failed writes.
		if !s.space.statErr {
			s.space.statErr = true
			s.log.Error("spool: cannot measure free space; the reserve is not enforced until it can", "err", err)
		}
		return
	}
	s.space.statErr = false
	s.space.free.Store(free)
	s.space.checked.Store(time.Now().UnixNano())
	switch low := s.space.low.Load(); {
	case !low && free < res:
		s.setLow(true, free, res, "free space is below the reserve")
	case low && free-res >= hysteresis(res):
		s.setLow(false, free, res, "free space is above the reserve again")
	}
}

// setLow enters or leaves low-space state (committer only).
func (s *Spool) setLow(low bool, free, res int64, why string) {
	if s.space.low.Load() == low {
		return
	}
	s.space.low.Store(low)
	now := time.Now()
	if low {
		s.space.lowSince = now
		s.log.Warn("spool: low on space; refusing new mail until space is freed", "why", why,
			"free_bytes", free, "reserve_bytes", res, "dir", s.dir)
		s.kickCompact()
		return
	}
	s.log.Info("spool: space recovered; accepting mail again", "why", why,
		"free_bytes", free, "reserve_bytes", res, "low_for", now.Sub(s.space.lowSince).Round(time.Millisecond))
}

// batchNeedsSpace reports whether batch holds a reception Enqueue, which
// must be measured against the reserve.
func batchNeedsSpace(batch []*request) bool {
	for _, r := range batch {
		if r.kind == reqEnqueue && !r.reserve {
			return true
		}
	}
	return false
}

// admit decides whether a reception Enqueue fits above the reserve, given
// what the current batch has staged so far (committer only, from stage).
func (s *Spool) admit(r *request) error {
	res := s.reserve()
	if res < 0 || s.space.checked.Load() == 0 {
		return nil // disabled, or never measured: the write itself decides
	}
	free := s.space.free.Load()
	staged := s.bodyLen + s.batchBytes
	if s.space.low.Load() {
		return fmt.Errorf("spool: enqueue %s: %w (%d bytes free, %d reserved)", r.id, ErrLowSpace, free-staged, res)
	}
	need := frameLen(len(r.id), uint32(len(r.body))) + int64(len(r.enc)) + enqueueOverhead
	headroom := free - staged - res
	if headroom >= need {
		return nil
	}
	if headroom < hysteresis(res) {
		// Not one large message that does not fit: the disk is nearly at
		// the reserve, and smaller ones would only take the last of it.
		s.setLow(true, free-staged, res, "a message did not fit above the reserve")
	}
	return fmt.Errorf("spool: enqueue %s: %w (%d bytes needed, %d free, %d reserved)", r.id, ErrLowSpace, need, free-staged, res)
}

// noteWriteFailure is told of a failed batch (committer only): ENOSPC or
// EDQUOT means the reserve is gone or quotas are not in statfs's view.
func (s *Spool) noteWriteFailure(err error) {
	if res := s.reserve(); res >= 0 && IsNoSpace(err) && !errors.Is(err, ErrLowSpace) {
		s.setLow(true, s.space.free.Load(), res, "a write failed: "+err.Error())
	}
}

// spaceTick runs on the committer every spaceCheckEvery and when a
// compaction started by the reserve has ended.
func (s *Spool) spaceTick() {
	s.checkSpace()
	if !s.space.low.Load() {
		return
	}
	s.retireBody()
	s.kickCompact()
}

// retireBody starts a new body file when the active one is mostly dead:
// compaction evacuates and deletes body files but never the one being
// appended to, so without this a spool whose deliveries finished would
// keep that file's space until it reached BodyFileSize.
func (s *Spool) retireBody() {
	now := time.Now()
	if s.broken != nil || s.body.f == nil || s.body.off == 0 || now.Sub(s.space.rolled) < rollEvery {
		return
	}
	if u := s.idx.files[s.body.num]; u != nil && u.liveBytes*bodyLiveFraction >= s.body.off {
		return // mostly live: moving it would cost about what it frees
	}
	old := s.body.num
	if err := s.rollBody(); err != nil {
		// rollBody leaves the active file as it was: go on appending.
		s.log.Error("spool: low on space: cannot start a new body file", "err", err)
		return
	}
	s.space.rolled = now
	s.space.compactIdx = 0 // the old file is now reclaimable
	s.log.Info("spool: low on space: retired the active body file for compaction to reclaim",
		"old", bodyName(old), "new", bodyName(s.body.num))
}

// kickCompact starts a compaction in the background unless one started
// by the reserve is running or nothing was written since the last one
// (committer only). Compact's own lock orders it with the periodic
// compactor.
func (s *Spool) kickCompact() {
	if s.space.compactIdx != 0 && s.space.compactIdx == s.lastIdx {
		return
	}
	if !s.space.compacting.CompareAndSwap(false, true) {
		return
	}
	s.space.compactIdx = s.lastIdx
	if s.space.recheck == nil {
		s.space.recheck = make(chan struct{}, 1)
	}
	recheck := s.space.recheck
	s.space.compactWG.Add(1)
	go func() {
		defer s.space.compactWG.Done()
		defer func() {
			s.space.compacting.Store(false)
			select {
			case recheck <- struct{}{}:
			default:
			}
		}()
		start := time.Now()
		res, err := s.Compact()
		switch {
		case errors.Is(err, ErrClosed):
		case err != nil:
			s.log.Error("spool: low on space: compaction failed", "err", err)
		case res != CompactResult{}:
			// Every second during a long outage: the routine log cuts are Debug.
			level := slog.LevelDebug
			if res.BodyFilesFreed > 0 || res.BodiesMoved > 0 {
				level = slog.LevelInfo
			}
			s.log.Log(context.Background(), level, "spool: low on space: compacted", "bodies_moved", res.BodiesMoved, "records_moved", res.RecordsMoved,
				"log_bytes_freed", res.LogBytesFreed, "body_files_freed", res.BodyFilesFreed,
				"took", time.Since(start).Round(time.Millisecond))
		}
	}()
}
