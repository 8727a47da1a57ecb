package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/tidwall/wal"

	"github.com/cuemta/cuemta/internal/walseg"
)

// Knowledge of tidwall/wal v1.2.1's files, needed because the library
// neither checksums records nor fsyncs its directory: a segment is a file
// named by the 20-digit index of its first entry, holding entries framed as
// uvarint(length) + data. TruncateFront/Back leave NAME.START/NAME.END
// files (and NAME.*.TEMP while writing them) that wal.Open finishes.

type segFile struct {
	start uint64
	path  string
	size  int64
}

// listSegments returns the segment files in index order. pending reports
// leftovers of an interrupted truncation, which wal.Open must finish first.
func listSegments(dir string) (segs []segFile, pending bool, err error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, false, err
	}
	for _, de := range des {
		name := de.Name()
		if len(name) < 20 || de.IsDir() {
			continue
		}
		start, err := strconv.ParseUint(name[:20], 10, 64)
		if err != nil || start == 0 {
			continue
		}
		if len(name) != 20 {
			pending = pending || strings.HasSuffix(name, ".START") || strings.HasSuffix(name, ".END")
			continue
		}
		fi, err := de.Info()
		if errors.Is(err, os.ErrNotExist) {
			continue // removed by a concurrent truncation
		}
		if err != nil {
			return nil, false, err
		}
		segs = append(segs, segFile{start: start, path: filepath.Join(dir, name), size: fi.Size()})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].start < segs[j].start })
	return segs, pending, nil
}

// segmentSize is the size of the segment that starts at index start, or
// SegmentSize-scale large when it cannot be read, so that the caller looks
// at the directory again after the next batch.
func segmentSize(dir string, start uint64) int64 {
	st, err := os.Stat(walseg.Path(dir, start))
	if err != nil {
		return math.MaxInt64 / 2
	}
	return st.Size()
}

var errTorn = errors.New("torn or garbled entry")

// walkEntries calls fn for each entry of a segment's data with its byte
// offset. It stops at the first entry that does not frame or that fn
// rejects, returning that entry's offset.
func walkEntries(data []byte, fn func(off int, rec []byte) error) (int, error) {
	off := 0
	for off < len(data) {
		size, n := binary.Uvarint(data[off:])
		if n <= 0 || size > uint64(len(data)-off-n) {
			return off, errTorn
		}
		if err := fn(off, data[off+n:off+n+int(size)]); err != nil {
			return off, err
		}
		off += n + int(size)
	}
	return off, nil
}

// Looking past damage. A bad length prefix leaves no framing to follow, so
// the only way to learn whether anything readable comes after a bad entry
// is to try every later byte offset as an entry start. An offset counts
// only if the entry there frames, passes its CRC32C, decodes completely
// (for a put, the whole envelope) and carries a batch number no lower than
// the last good one before the damage: batch numbers never go down in a
// log, so stale records (say, old log pages exposed by a torn write) do not
// count. The cheap structural checks run before the CRC so that scanning
// megabytes of garbage stays fast.

// entryAt checks the entry starting at off and returns its end and record
// (env aliases data).
func entryAt(data []byte, off int, minBatch uint64) (int, record, bool) {
	size, n := binary.Uvarint(data[off:])
	if n <= 0 || size < 6 || size > uint64(len(data)-off-n) {
		return 0, record{}, false
	}
	b := data[off+n : off+n+int(size)]
	if !plausibleRecord(b, minBatch) {
		return 0, record{}, false
	}
	rec, err := decodeRecord(b)
	if err != nil || rec.batch < minBatch {
		return 0, record{}, false
	}
	switch rec.kind {
	case recPut:
		if _, err := decodeEnvelope(rec.env); err != nil {
			return 0, record{}, false
		}
	case recDone:
		if validID(rec.id) != nil {
			return 0, record{}, false
		}
	}
	return off + n + int(size), rec, true
}

// plausibleRecord rejects most non-records without computing a CRC: the
// kind, the batch number and the message ID must make sense.
func plausibleRecord(b []byte, minBatch uint64) bool {
	r := reader{b: b[4:]}
	kind := r.byte()
	if kind != recPut && kind != recDone {
		return false
	}
	if r.uvarint() < minBatch || r.err != nil {
		return false
	}
	if kind == recPut {
		r.uvarint() // body file
		r.uvarint() // offset
		r.uvarint() // length
		r.u32()     // body CRC
		if !knownVersion(r.byte()) {
			return false
		}
	} else {
		r.byte() // outcome
	}
	id := r.bytes()
	if r.err != nil || len(id) == 0 || len(id) > maxIDLen {
		return false
	}
	for _, c := range id { // validID's alphabet, without allocating a string
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// findEntry returns the offset of the first valid entry (see entryAt) that
// starts at or after from, or -1.
func findEntry(data []byte, from int, minBatch uint64) int {
	for off := max(from, 0); off < len(data); off++ {
		if _, _, ok := entryAt(data, off, minBatch); ok {
			return off
		}
	}
	return -1
}

// truncateFile cuts a file to size and fsyncs it.
func truncateFile(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// truncateLogAfter makes the log end at entry last (the wal must be
// closed): later segments are removed and the segment holding last+1 is cut
// just before it, then file and directory are fsynced. It returns the
// number of bytes dropped. Used to discard an unacknowledged batch.
func truncateLogAfter(dir string, last uint64) (int64, error) {
	segs, _, err := listSegments(dir)
	if err != nil {
		return 0, err
	}
	var dropped int64
	for i := len(segs) - 1; i >= 0; i-- {
		s := segs[i]
		if s.start > last+1 {
			if err := os.Remove(s.path); err != nil {
				return dropped, err
			}
			dropped += s.size
			continue
		}
		data, err := os.ReadFile(s.path)
		if err != nil {
			return dropped, err
		}
		keep := last + 1 - s.start
		cut := -1
		var count uint64
		end, werr := walkEntries(data, func(off int, _ []byte) error {
			if count == keep {
				cut = off
				return errStop
			}
			count++
			return nil
		})
		switch {
		case cut >= 0:
		case werr == nil && count == keep:
			cut = end
		case werr == errTorn && count == keep:
			cut = end // a torn remainder past the kept entries goes too
		default:
			return dropped, fmt.Errorf("segment %s holds %d entries, want at least %d: %w", s.path, count, keep, ErrCorrupt)
		}
		if int64(cut) < int64(len(data)) {
			if err := truncateFile(s.path, int64(cut)); err != nil {
				return dropped, err
			}
			dropped += int64(len(data) - cut)
		}
		break
	}
	return dropped, syncDir(dir)
}

var errStop = errors.New("stop")

// openLog opens the wal with the spool's settings. AllowEmpty because
// truncations may legitimately leave an empty tail segment.
func openLog(dir string, segSize int64) (*wal.Log, error) {
	return wal.Open(dir, &wal.Options{
		SegmentSize:      int(segSize),
		SegmentCacheSize: 1, // the spool never reads through wal
		NoCopy:           true,
		AllowEmpty:       true,
		DirPerms:         0o700,
		FilePerms:        0o600,
	})
}

// finishTruncation lets wal.Open complete an interrupted TruncateFront or
// TruncateBack (START/END files). Its ErrCorrupt for a torn tail is
// expected here: replay repairs that next.
func finishTruncation(dir string, segSize int64) error {
	l, err := openLog(dir, segSize)
	if err == nil {
		return l.Close()
	}
	if errors.Is(err, wal.ErrCorrupt) {
		return nil
	}
	return err
}
