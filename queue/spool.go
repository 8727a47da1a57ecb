package queue

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tidwall/wal"

	"github.com/cuemta/cuemta/internal/walseg"
)

// Spool is a durable message queue in one directory. All methods are safe
// for concurrent use.
type Spool struct {
	dir, walDir, bodyDir string
	opts                 Options
	log                  *slog.Logger
	lockFile             *os.File
	ids                  idGen
	idx                  *index
	readers              *bodyReaders // handles for Body (readers.go)

	submitMu sync.RWMutex // guards closed against sends on reqs
	closed   bool
	reqs     chan *request
	runDone  chan struct{}

	// owned by the committer goroutine (and by Open before it starts)
	wal       *wal.Log
	lastIdx   uint64 // last log index written and acknowledged
	tailStart uint64 // first index of the newest log segment
	// tailBytes over-estimates the newest segment's size, and batchBytes
	// the current batch's log bytes: a new segment can only have started
	// once tailBytes reaches SegmentSize.
	tailBytes, batchBytes int64
	batchSeq              uint64
	body                  activeBody
	nextBody              uint32
	broken                error // set by a failed write; storage is repaired before the next one
	overlay               map[string]staged
	ops                   []op
	wb                    wal.Batch
	bodyBuf               []byte
	scratch               []byte
	// bodyParts are the batch's body frames in file order (see
	// stageBody), bodyLen their total size.
	bodyParts []bodyPart
	bodyLen   int64

	space       spaceState // free space and the reserve (reserve.go)
	compactMu   sync.Mutex
	stopCompact chan struct{}
	compactDone chan struct{}
	closeOnce   sync.Once
	closeErr    error
}

var errConflict = errors.New("spool: envelope changed concurrently")

// Open opens or creates the spool in dir, taking its lock and replaying
// its log (repairing a torn tail left by a crash). Damage it cannot repair
// without dropping acknowledged records fails with an error wrapping
// ErrCorrupt; Salvage copies what is readable of such a spool.
func Open(dir string, opts Options) (*Spool, error) {
	opts = opts.withDefaults()
	created := false
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		created = true
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: create %s: %w", dir, err)
	}
	lf, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s := &Spool{
		dir:         dir,
		walDir:      filepath.Join(dir, "wal"),
		bodyDir:     filepath.Join(dir, "body"),
		readers:     newBodyReaders(filepath.Join(dir, "body")),
		opts:        opts,
		log:         opts.Logger,
		lockFile:    lf,
		idx:         newIndex(),
		reqs:        make(chan *request, maxBatchRequests),
		runDone:     make(chan struct{}),
		stopCompact: make(chan struct{}),
		compactDone: make(chan struct{}),
		overlay:     make(map[string]staged),
	}
	if err := s.load(created); err != nil {
		if s.wal != nil {
			s.wal.Close()
		}
		if s.body.f != nil {
			s.body.f.Close()
		}
		lf.Close()
		return nil, err
	}
	s.checkSpace() // before the committer starts: LowSpace is right from the start
	go s.run()
	if opts.CompactInterval > 0 {
		go s.compactLoop()
	} else {
		close(s.compactDone)
	}
	return s, nil
}

func (s *Spool) load(created bool) error {
	start := time.Now()
	for _, d := range []string{s.walDir, s.bodyDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("spool: create %s: %w", d, err)
		}
	}
	// A crash inside wal's atomic write can leave NAME.START.TEMP behind;
	// wal ignores it, so remove it here.
	if temps, _ := filepath.Glob(filepath.Join(s.walDir, "*.TEMP")); len(temps) > 0 {
		for _, p := range temps {
			os.Remove(p)
		}
	}
	if _, pending, err := listSegments(s.walDir); err != nil {
		return fmt.Errorf("spool: list log: %w", err)
	} else if pending {
		if err := finishTruncation(s.walDir, s.opts.SegmentSize); err != nil {
			return fmt.Errorf("spool: finish interrupted log truncation: %w", err)
		}
	}
	res, err := replayLog(s.walDir, s.bodyDir, s.idx, s.log)
	if err != nil {
		return err
	}
	s.lastIdx, s.batchSeq = res.lastIdx, res.lastBatch
	if err := s.syncLastBatch(res); err != nil {
		return err
	}
	if s.wal, err = openLog(s.walDir, s.opts.SegmentSize); err != nil {
		return fmt.Errorf("spool: open log: %w", err)
	}
	if li, _ := s.wal.LastIndex(); li != s.lastIdx {
		return fmt.Errorf("spool: log ends at %d after replay, wal says %d: %w", s.lastIdx, li, ErrCorrupt)
	}
	if s.tailStart, err = walseg.TailStart(s.walDir); err == nil {
		s.tailBytes = segmentSize(s.walDir, s.tailStart)
	}
	if err != nil {
		return fmt.Errorf("spool: list log: %w", err)
	}
	if err := s.loadBodyFiles(); err != nil {
		return err
	}
	dirs := []string{s.walDir, s.bodyDir, s.dir}
	if created {
		dirs = append(dirs, filepath.Dir(s.dir))
	}
	for _, d := range dirs {
		if err := s.opts.hooks.dirSync(d); err != nil {
			return storageErr("open: fsync "+d, err)
		}
	}
	if err := s.rollBody(); err != nil {
		return storageErr("open: start body file", err)
	}
	s.log.Info("spool: opened", "dir", s.dir, "messages", len(s.idx.m), "log_entries", s.lastIdx,
		"replay", time.Since(start).Round(time.Millisecond))
	return nil
}

// syncLastBatch fsyncs the files the log's last batch lives in before
// anything builds on it. After a process crash that batch may exist only in
// the page cache (its fsyncs were in flight): replay reads it from there and
// accepts it, but nothing would ever fsync its body file again, since Open
// starts a new one, while the next batch's log fsync would make its records
// durable. A power cut after that would leave records pointing past the end
// of a body file. Earlier batches finished their fsyncs before the next one
// began, so only the last batch's body files and segments need this. The
// fsyncs go through hooks.bodySync, the spool's "fsync this file" hook.
func (s *Spool) syncLastBatch(res replayResult) error {
	if res.lastBatchFirst == 0 {
		return nil
	}
	var paths []string
	segs, _, err := listSegments(s.walDir)
	if err != nil {
		return fmt.Errorf("spool: list log: %w", err)
	}
	for i, sg := range segs {
		// wal fsyncs a segment when it starts the next one, but the batch
		// may span segments; sync every one holding a part of it.
		if sg.start <= res.lastIdx && (i == len(segs)-1 || segs[i+1].start > res.lastBatchFirst) {
			paths = append(paths, sg.path)
		}
	}
	for _, num := range res.lastBatchFiles {
		paths = append(paths, filepath.Join(s.bodyDir, bodyName(num)))
	}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return storageErr("open: fsync what the last batch references", err)
		}
		err = s.opts.hooks.bodySync(f)
		f.Close()
		if err != nil {
			return storageErr("open: fsync "+p, err)
		}
	}
	return nil
}

// loadBodyFiles checks that every live message's body frame lies inside an
// existing body file and deletes files nothing references any more.
func (s *Spool) loadBodyFiles() error {
	sizes, err := listBodyFiles(s.bodyDir)
	if err != nil {
		return fmt.Errorf("spool: list body files: %w", err)
	}
	for id, e := range s.idx.m {
		size, ok := sizes[e.file]
		if !ok || e.off+frameLen(len(id), e.n) > size {
			return fmt.Errorf("spool: body of %s (%s at %d) is missing: %w", id, bodyName(e.file), e.off, ErrCorrupt)
		}
	}
	removed := 0
	for num, size := range sizes {
		s.nextBody = max(s.nextBody, num)
		if u := s.idx.files[num]; u != nil && u.live > 0 {
			u.size = size
			continue
		}
		delete(s.idx.files, num)
		if err := os.Remove(filepath.Join(s.bodyDir, bodyName(num))); err != nil {
			return fmt.Errorf("spool: remove unreferenced body file: %w", err)
		}
		removed++
	}
	for num := range s.idx.files { // entries left by replayed-then-finished messages
		if _, ok := sizes[num]; !ok {
			delete(s.idx.files, num)
		}
	}
	if removed > 0 {
		s.log.Info("spool: removed unreferenced body files", "files", removed)
	}
	return nil
}

// Close flushes pending requests, stops the background compactor and
// releases the lock. Calls after Close return ErrClosed.
func (s *Spool) Close() error {
	s.closeOnce.Do(func() {
		close(s.stopCompact)
		<-s.compactDone
		s.compactMu.Lock() // wait for a Compact call in progress
		s.submitMu.Lock()
		s.closed = true
		s.submitMu.Unlock()
		s.compactMu.Unlock()
		close(s.reqs)
		<-s.runDone // the committer drains what was queued
		var errs []error
		if s.wal != nil {
			if err := s.wal.Close(); err != nil {
				errs = append(errs, fmt.Errorf("spool: close log: %w", err))
			}
		}
		s.readers.closeAll()
		if s.body.f != nil {
			if err := s.body.f.Close(); err != nil {
				errs = append(errs, fmt.Errorf("spool: close body file: %w", err))
			}
		}
		if err := s.lockFile.Close(); err != nil { // releases the flock
			errs = append(errs, fmt.Errorf("spool: release lock: %w", err))
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
