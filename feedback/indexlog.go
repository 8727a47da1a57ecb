package feedback

import (
	"bufio"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The Index's log: complaints arrive hours or days after the mail they
// are about, and a restart in between must not leave a Message-ID match
// (or a VERP match's tenant and campaign) to chance. OpenIndex replays the
// log into the index and appends one record per accepted message.
//
// Record: the CRC-32 (IEEE) of the rest of the line in 8 hex digits, TAB,
// then queue id, Message-ID, envelope sender, tenant and campaign
// separated by TABs, then LF. A TAB, CR or LF inside a field is written as
// a space. A line whose CRC does not match (a torn last write, damage) is
// skipped and counted: the index is a cache of what the spool and the
// delivery log hold, so a lost entry costs one report its match, never
// mail.
//
// Two generations bound the files: index.log takes records until it holds
// size of them, then becomes index.log.1 (replacing the one before) and a
// new index.log begins; between them they always hold the last size
// messages or more, and the Index keeps the last size.
//
// Records are written through a buffer flushed within flushEvery and at
// Close, not fsynced: the 250 of a message does not wait on its index
// entry, and a crash loses at most the last second of entries.

const (
	indexLogName = "index.log"
	flushEvery   = time.Second
	maxIndexLine = 4096 // a record is far shorter; longer is damage
)

// indexLog is the Index's file; its fields are guarded by the Index's mu.
type indexLog struct {
	mu      *sync.Mutex // the Index's
	dir     string
	size    int // records a generation holds
	f       *os.File
	w       *bufio.Writer
	records int // in the current generation
	timer   *time.Timer
	failed  bool // a write failed; logged once until one succeeds
	logger  *slog.Logger
	rec     []byte // scratch for one record
}

// OpenIndex returns an Index of at most size messages kept under dir (see
// above), with the entries of the log already there; skipped is the
// number of damaged records left out. The Index must be closed.
func OpenIndex(dir string, size int, logger *slog.Logger) (x *Index, skipped int, err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	x = NewIndex(size)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, 0, fmt.Errorf("feedback index: %w", err)
	}
	cur := filepath.Join(dir, indexLogName)
	torn := false
	for _, path := range []string{cur + ".1", cur} {
		n, bad, endsTorn, err := x.replay(path)
		if err != nil {
			return nil, 0, err
		}
		skipped += bad
		if path == cur {
			x.log = &indexLog{dir: dir, size: len(x.ring), records: n, logger: logger, mu: &x.mu}
			torn = endsTorn
		}
	}
	f, err := os.OpenFile(cur, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("feedback index: %w", err)
	}
	x.log.f, x.log.w = f, bufio.NewWriterSize(f, 64<<10)
	if torn {
		// A record cut short by a crash: the next one starts on a line
		// of its own rather than completing it.
		x.log.w.WriteByte('\n')
	}
	return x, skipped, nil
}

// replay adds the records of path to x; lines is the number of lines
// read, bad those skipped, torn whether the last one lacks its line end
// (cut short by a crash). A missing file is an empty one.
func (x *Index) replay(path string) (lines, bad int, torn bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, fmt.Errorf("feedback index: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// Far longer than any record: skip to the next line end.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = r.ReadSlice('\n')
			}
			lines++
			bad++
			if err == io.EOF {
				return lines, bad, true, nil // the long line was the last, without its line end
			}
			continue
		}
		if len(line) > 0 {
			lines++
			if !x.replayRecord(line) {
				bad++
			}
		}
		if err == io.EOF {
			return lines, bad, len(line) > 0, nil // ReadSlice returns a final line without '\n' with EOF
		}
		if err != nil {
			return lines, bad, false, fmt.Errorf("feedback index: %s: %w", path, err)
		}
	}
}

// replayRecord adds one record line to x, reporting whether it was whole.
func (x *Index) replayRecord(line []byte) bool {
	s, ok := strings.CutSuffix(string(line), "\n")
	if !ok || len(s) > maxIndexLine || len(s) < 9 || s[8] != '\t' {
		return false
	}
	sum, err := strconv.ParseUint(s[:8], 16, 32)
	if err != nil || uint32(sum) != crc32.ChecksumIEEE([]byte(s[9:])) {
		return false
	}
	f := strings.Split(s[9:], "\t")
	if len(f) != 5 || f[0] == "" {
		return false
	}
	m := x.entry(f[0])
	m.MessageID, m.From, m.Tenant, m.Campaign = f[1], f[2], f[3], f[4]
	if m.MessageID != "" {
		x.byMID[m.MessageID] = m.ID
	}
	return true
}

// append writes m's record. Called with x.mu held.
func (l *indexLog) append(m *Meta) {
	if l.records >= l.size {
		l.rotate()
	}
	if l.w == nil {
		return
	}
	r := l.rec[:0]
	r = append(r, "00000000\t"...)
	for i, s := range []string{m.ID, m.MessageID, m.From, m.Tenant, m.Campaign} {
		if i > 0 {
			r = append(r, '\t')
		}
		for j := 0; j < len(s); j++ {
			switch c := s[j]; c {
			case '\t', '\r', '\n':
				r = append(r, ' ')
			default:
				r = append(r, c)
			}
		}
	}
	sum := strconv.FormatUint(uint64(crc32.ChecksumIEEE(r[9:])), 16)
	copy(r[8-len(sum):8], sum)
	r = append(r, '\n')
	l.rec = r
	l.w.Write(r)
	l.records++
	if l.timer == nil {
		l.timer = time.AfterFunc(flushEvery, l.flushLater)
	}
}

// flushLater is the timer's flush, on its own goroutine.
func (l *indexLog) flushLater() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.timer = nil // this one has fired; flush must not stop a newer one
	l.flush()
}

// flush writes the buffer to the file. Called with x.mu held.
func (l *indexLog) flush() {
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	if l.w == nil {
		return
	}
	if err := l.w.Flush(); err != nil {
		l.fail(err)
		// bufio keeps a failed writer failed: start a fresh buffer on
		// the same file, losing what it held (a cache's entries).
		l.w = bufio.NewWriterSize(l.f, 64<<10)
		l.w.WriteByte('\n') // after a part of a record, if any
		return
	}
	l.failed = false
}

// rotate makes the current generation the previous one and starts a new
// one. Called with x.mu held.
func (l *indexLog) rotate() {
	l.flush()
	if l.f != nil {
		l.f.Close()
	}
	l.f, l.w, l.records = nil, nil, 0
	cur := filepath.Join(l.dir, indexLogName)
	if err := os.Rename(cur, cur+".1"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		l.fail(err)
	}
	f, err := os.OpenFile(cur, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		l.fail(err)
		return
	}
	l.f, l.w = f, bufio.NewWriterSize(f, 64<<10)
}

func (l *indexLog) fail(err error) {
	if !l.failed {
		l.failed = true
		l.logger.Error("feedback index: writing the log failed; entries are kept in memory only until it works again", "err", err)
	}
}

// Close writes what is buffered and closes the log; the Index goes on in
// memory only. An Index from NewIndex has nothing to close.
func (x *Index) Close() error {
	if x == nil {
		return nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	l := x.log
	if l == nil || l.f == nil {
		return nil
	}
	l.flush()
	err := l.f.Close()
	l.f, l.w = nil, nil
	x.log = nil // a late Accepted stays in memory
	if err != nil {
		return fmt.Errorf("feedback index: %w", err)
	}
	return nil
}
