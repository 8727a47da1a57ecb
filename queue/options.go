package queue

import (
	"log/slog"
	"os"
	"time"

	"github.com/tidwall/wal"
)

// Options tunes a Spool. The zero value is ready to use.
type Options struct {
	// SegmentSize is the target size of one log segment (envelopes and
	// state changes only). The tail segment is held in memory by
	// tidwall/wal, so this bounds that memory too. Default 16 MiB.
	SegmentSize int64
	// BodyFileSize is the size at which the spool starts a new body file.
	// Default 64 MiB.
	BodyFileSize int64
	// GroupCommitWindow is how long the committer waits after the first
	// pending request to let more join its batch. The default 0 waits for
	// nothing: requests that arrive during one fsync form the next batch,
	// which already batches well under load without adding latency when idle.
	GroupCommitWindow time.Duration
	// CompactInterval is how often the background compactor runs.
	// Default 1 minute; negative disables it (call Compact yourself).
	CompactInterval time.Duration
	// Now is the clock for Received, NextAttempt and generated IDs.
	// Default time.Now.
	Now func() time.Time
	// OnCommit, if set, is told how long each batch's write and fsyncs took
	// and how many records it held (for a latency histogram). It runs on
	// the committer goroutine: keep it cheap.
	OnCommit func(d time.Duration, records int)
	// Logger receives repairs, storage faults and compaction results.
	// Default slog.Default().
	Logger *slog.Logger
	// Reserve is the free space, in bytes, that reception must leave on the
	// spool's filesystem: Enqueue is refused (ErrLowSpace, which wraps
	// ErrNoSpace) when storing the message would leave less than Reserve
	// free, while everything that drains the queue (RecordAttempt,
	// Reschedule, Update, Complete, compaction and EnqueueReserved for
	// bounces) may use it. Default DefaultReserve; negative disables the
	// reserve and the free-space checks. See LowSpace and EnqueueReserved.
	Reserve int64

	hooks *hooks // test-only fault injection; nil means the real syscalls
}

const (
	defaultSegmentSize     = 16 << 20
	defaultBodyFileSize    = 64 << 20
	defaultCompactInterval = time.Minute
	// A batch stops growing at either bound; a single larger request still
	// goes through, alone.
	maxBatchRequests = 1024
	maxBatchBytes    = 16 << 20
)

func (o Options) withDefaults() Options {
	if o.SegmentSize <= 0 {
		o.SegmentSize = defaultSegmentSize
	}
	if o.BodyFileSize <= 0 {
		o.BodyFileSize = defaultBodyFileSize
	}
	if o.CompactInterval == 0 {
		o.CompactInterval = defaultCompactInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Reserve = normReserve(o.Reserve)
	// A copy: Options are passed by value, and two spools opened with the
	// same Options (Salvage beside another Open) must not fill one shared
	// hooks struct at once.
	var h hooks
	if o.hooks != nil {
		h = *o.hooks
	}
	h.fill()
	o.hooks = &h
	return o
}

// hooks is the write path to storage. Tests replace members to count fsyncs
// or to inject ENOSPC/EIO deterministically; nil members are the real calls.
type hooks struct {
	bodyWrite func(f *os.File, p []byte, off int64) (int, error)
	bodySync  func(f *os.File) error
	walWrite  func(l *wal.Log, b *wal.Batch) error // write + fsync of one log batch
	dirSync   func(dir string) error
	// statfs returns the bytes available to the spool on the filesystem
	// holding f (the spool's lock file).
	statfs func(f *os.File) (int64, error)
}

func (h *hooks) fill() {
	if h.bodyWrite == nil {
		h.bodyWrite = func(f *os.File, p []byte, off int64) (int, error) { return f.WriteAt(p, off) }
	}
	if h.bodySync == nil {
		h.bodySync = (*os.File).Sync
	}
	if h.walWrite == nil {
		h.walWrite = (*wal.Log).WriteBatch
	}
	if h.dirSync == nil {
		h.dirSync = syncDir
	}
	if h.statfs == nil {
		h.statfs = freeBytes
	}
}

// syncDir fsyncs a directory so that file creations, renames and removals
// in it survive a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
