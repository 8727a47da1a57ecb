package hooks

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/wal"

	"github.com/cuemta/cuemta/internal/walseg"
)

// Queue is one hook's durable FIFO of event records, in a tidwall/wal log.
//
// On disk each entry is crc32c(rest) | enqueued-at (unix ns) | payload,
// 4 + 8 bytes of header, both big-endian. tidwall/wal frames entries but
// neither checksums them nor fsyncs its directory (see
// /work/shared/notes/libraries.md), so Queue checks the CRC of every entry
// it reads, cuts a torn tail at open, and fsyncs the directory whenever a
// new segment file appears. Appends are group-committed: one goroutine
// writes everything pending as one batch, one fsync, then answers every
// caller.
//
// Acknowledged entries are recorded in the file ACKED (the last index
// acknowledged), written by rename without an fsync: losing it in a crash
// only makes the queue send some entries again, which at-least-once allows.
// The log's front is cut every truncateEvery acknowledged entries.
type Queue struct {
	dir  string
	log  *wal.Log
	reqs chan *appendReq
	stop chan struct{}
	done chan struct{}
	once sync.Once

	// notify gets a token after each committed batch (for the sender).
	notify chan struct{}

	mu     sync.Mutex
	next   uint64    // first unacknowledged index
	last   uint64    // last index written
	bytes  int64     // payload bytes of next..last
	oldest time.Time // enqueue time of entry next; zero when empty
	err    error     // the last commit's error, nil once one succeeds
	tail   uint64    // first index of the newest segment file

	now func() time.Time // the enqueue time of an entry; set before use
}

type appendReq struct {
	payload []byte
	at      time.Time
	done    chan error
}

// Entry is one queued record.
type Entry struct {
	Index   uint64
	Time    time.Time // when it was queued
	Payload []byte
}

// Batch is a run of entries from the front of the queue, acknowledged as
// one by Ack.
type Batch struct {
	Entries []Entry
	// Through is the last index the batch covers; Damaged entries (bad
	// CRC) inside it are skipped, counted, and acknowledged with it.
	Through uint64
	Damaged int
	bytes   int64
}

const (
	entryHeader   = 12
	segmentSize   = 4 << 20 // ~8000 events: TruncateFront rewrites at most this
	truncateEvery = 4096
	maxCommit     = 1024 // entries per group commit
	ackedFile     = "ACKED"
)

var (
	crcTable = crc32.MakeTable(crc32.Castagnoli)
	// ErrClosed is returned by Append after Close.
	ErrClosed = errors.New("hooks: queue closed")
)

// OpenQueue opens (or creates) the queue in dir, repairing a torn tail
// left by a crash.
func OpenQueue(dir string) (*Queue, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("hooks: create queue directory: %w", err)
	}
	opts := &wal.Options{SegmentSize: segmentSize, SegmentCacheSize: 2, NoCopy: false, DirPerms: 0o700, FilePerms: 0o600}
	log, err := wal.Open(dir, opts)
	if errors.Is(err, wal.ErrCorrupt) {
		if rerr := repairTail(dir); rerr != nil {
			return nil, fmt.Errorf("hooks: repair torn tail of %s: %w", dir, rerr)
		}
		log, err = wal.Open(dir, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("hooks: open queue %s: %w", dir, err)
	}
	q := &Queue{dir: dir, log: log, reqs: make(chan *appendReq, 256), stop: make(chan struct{}),
		done: make(chan struct{}), notify: make(chan struct{}, 1), now: time.Now}
	if err := q.load(); err != nil {
		log.Close()
		return nil, err
	}
	go q.run()
	return q, nil
}

// load finds the unacknowledged range and its size after open.
func (q *Queue) load() error {
	first, err := q.log.FirstIndex()
	if err != nil {
		return fmt.Errorf("hooks: queue %s: %w", q.dir, err)
	}
	last, err := q.log.LastIndex()
	if err != nil {
		return fmt.Errorf("hooks: queue %s: %w", q.dir, err)
	}
	// A tail entry that frames but fails its CRC is a torn write too.
	for last > 0 && last >= first {
		data, err := q.log.Read(last)
		if err == nil && validEntry(data) {
			break
		}
		if last == first {
			// Only damage left: start over empty, past it.
			break
		}
		if err := q.log.TruncateBack(last - 1); err != nil {
			return fmt.Errorf("hooks: queue %s: cut damaged tail: %w", q.dir, err)
		}
		last--
	}
	acked := readAcked(q.dir)
	if acked > last {
		// Segments removed by hand without ACKED: an index from that old
		// log would hide the new entries that reuse it.
		acked = 0
		if err := writeAcked(q.dir, 0); err != nil {
			return err
		}
	}
	q.last = last
	q.next = max(first, acked+1, 1)
	if q.next > last+1 {
		q.next = last + 1
	}
	for i := q.next; i <= last; i++ {
		data, err := q.log.Read(i)
		if err != nil || !validEntry(data) {
			continue
		}
		if q.oldest.IsZero() {
			q.oldest = entryTime(data)
		}
		q.bytes += int64(len(data) - entryHeader)
	}
	q.tail, _ = walseg.TailStart(q.dir)
	return nil
}

// Append queues payload and returns once it is fsynced.
func (q *Queue) Append(payload []byte) error {
	r := &appendReq{payload: payload, at: q.now(), done: make(chan error, 1)}
	select {
	case q.reqs <- r:
	case <-q.stop:
		return ErrClosed
	}
	select {
	case err := <-r.done:
		return err
	case <-q.done:
		// run answers every request it took before it exits.
		select {
		case err := <-r.done:
			return err
		default:
			return ErrClosed
		}
	}
}

func (q *Queue) run() {
	defer close(q.done)
	for {
		var r *appendReq
		select {
		case r = <-q.reqs:
		case <-q.stop:
			return
		}
		batch := []*appendReq{r}
	gather:
		for len(batch) < maxCommit {
			select {
			case r := <-q.reqs:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		err := q.commit(batch)
		for _, r := range batch {
			r.done <- err
		}
	}
}

// commit writes batch as one wal batch (one fsync) and, when that opened a
// new segment file, fsyncs the directory so the file's name is durable too.
func (q *Queue) commit(batch []*appendReq) error {
	q.mu.Lock()
	idx := q.last
	q.mu.Unlock()
	var b wal.Batch
	var size int64
	for _, r := range batch {
		idx++
		b.Write(idx, encodeEntry(r.payload, r.at))
		size += int64(len(r.payload))
	}
	err := q.log.WriteBatch(&b)
	if err == nil {
		if t, terr := walseg.TailStart(q.dir); terr != nil {
			err = terr
		} else if t != q.tail {
			if err = syncDir(q.dir); err == nil {
				q.tail = t
			}
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if err != nil {
		q.err = fmt.Errorf("hooks: append to %s: %w", q.dir, err)
		// The wal may hold part of the batch: continue after whatever it
		// holds, so indexes stay contiguous.
		if l, lerr := q.log.LastIndex(); lerr == nil {
			q.last = l
		}
		return q.err
	}
	q.err = nil
	if q.next > q.last { // was empty
		q.oldest = batch[0].at
	}
	q.last = idx
	q.bytes += size
	select {
	case q.notify <- struct{}{}:
	default:
	}
	return nil
}

// Peek returns up to max entries from the front, without removing them.
func (q *Queue) Peek(max int) (Batch, error) {
	q.mu.Lock()
	next, last := q.next, q.last
	q.mu.Unlock()
	var b Batch
	for i := next; i <= last && len(b.Entries) < max; i++ {
		data, err := q.log.Read(i)
		b.Through = i
		if err != nil || !validEntry(data) {
			// Damage inside the log (not a torn tail, which open cuts):
			// nothing to send, but it must not block the queue.
			b.Damaged++
			continue
		}
		b.Entries = append(b.Entries, Entry{Index: i, Time: entryTime(data), Payload: data[entryHeader:]})
		b.bytes += int64(len(data) - entryHeader)
	}
	return b, nil
}

// Ack removes the batch (which must be the front, as Peek returned it).
func (q *Queue) Ack(b Batch) error {
	if b.Through == 0 {
		return nil
	}
	q.mu.Lock()
	if b.Through < q.next {
		q.mu.Unlock()
		return nil
	}
	q.next = b.Through + 1
	q.bytes -= b.bytes
	next, last := q.next, q.last
	q.oldest = time.Time{}
	q.mu.Unlock()
	if next <= last {
		if data, err := q.log.Read(next); err == nil && validEntry(data) {
			q.mu.Lock()
			if q.next == next {
				q.oldest = entryTime(data)
			}
			q.mu.Unlock()
		}
	}
	if err := writeAcked(q.dir, b.Through); err != nil {
		return err
	}
	first, err := q.log.FirstIndex()
	if err != nil {
		return fmt.Errorf("hooks: queue %s: %w", q.dir, err)
	}
	if next-first >= truncateEvery {
		// The wal keeps at least one entry: keep the last acknowledged
		// one when everything is acknowledged (ACKED skips it).
		if err := q.log.TruncateFront(min(next, last)); err != nil {
			return fmt.Errorf("hooks: queue %s: truncate front: %w", q.dir, err)
		}
	}
	return nil
}

// Stats is a queue's state for metrics and back-pressure.
type Stats struct {
	Queued int
	Bytes  int64
	Oldest time.Time // zero when empty
	Err    error     // the last append failed
}

func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return Stats{Queued: int(q.last + 1 - q.next), Bytes: q.bytes, Oldest: q.oldest, Err: q.err}
}

// Notify receives a token after appends (coalesced).
func (q *Queue) Notify() <-chan struct{} { return q.notify }

// Close stops the committer (answering what it took) and closes the log.
func (q *Queue) Close() error {
	var err error
	q.once.Do(func() {
		close(q.stop)
		<-q.done
		err = q.log.Close()
	})
	return err
}

func encodeEntry(payload []byte, at time.Time) []byte {
	b := make([]byte, entryHeader+len(payload))
	binary.BigEndian.PutUint64(b[4:], uint64(at.UnixNano()))
	copy(b[entryHeader:], payload)
	binary.BigEndian.PutUint32(b, crc32.Checksum(b[4:], crcTable))
	return b
}

func validEntry(b []byte) bool {
	return len(b) >= entryHeader && binary.BigEndian.Uint32(b) == crc32.Checksum(b[4:], crcTable)
}

func entryTime(b []byte) time.Time { return time.Unix(0, int64(binary.BigEndian.Uint64(b[4:]))) }

func readAcked(dir string) uint64 {
	b, err := os.ReadFile(filepath.Join(dir, ackedFile))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n
}

func writeAcked(dir string, idx uint64) error {
	tmp := filepath.Join(dir, ackedFile+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.FormatUint(idx, 10)+"\n"), 0o600); err != nil {
		return fmt.Errorf("hooks: record acknowledgement: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, ackedFile)); err != nil {
		return fmt.Errorf("hooks: record acknowledgement: %w", err)
	}
	return nil
}
