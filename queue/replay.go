package queue

import (
	"fmt"
	"log/slog"
	"os"
)

// replayResult is what Open learns from the log.
type replayResult struct {
	lastIdx   uint64 // index of the last valid entry (0: empty log)
	lastBatch uint64 // highest batch number seen
	// The last batch that replay applied: its first log index (0: none)
	// and the body files its live messages reference. Open fsyncs them
	// (see Spool.syncLastBatch).
	lastBatchFirst uint64
	lastBatchFiles []uint32
}

// pending is one record of the batch being replayed, held back until the
// next batch starts (see replayLog).
type pending struct {
	walIdx uint64
	rec    record
}

// replayLog rebuilds idx from the log in dir, repairing it on the way:
//
//   - A record in the tail segment that fails its CRC or framing, with no
//     valid record anywhere after it in that segment (see findEntry), is a
//     torn write of a batch that was never acknowledged (acknowledgement
//     follows the fsync of the whole batch): the segment is cut there.
//   - A bad record that valid records follow, in the tail segment or in
//     any older one, means acknowledged data was damaged: a crash only
//     tears the end of what was being written. Open fails with ErrCorrupt,
//     naming the file and byte offset, rather than drop what follows;
//     Salvage copies what is readable into a fresh spool.
//   - Bodies and log records of one batch are fsynced concurrently, so the
//     last batch in the log may reference body frames that never reached
//     the disk. Every earlier batch finished both fsyncs before the next
//     began. The bodies of messages still live after the last batch are
//     therefore checked; if any fails, the whole batch was unacknowledged
//     and is cut from the log.
func replayLog(dir, bodyDir string, idx *index, log *slog.Logger) (replayResult, error) {
	var res replayResult
	segs, _, err := listSegments(dir)
	if err != nil {
		return res, fmt.Errorf("spool: list log: %w", err)
	}
	var batch []pending
	apply := func() {
		for i := range batch {
			applyRecord(idx, &batch[i].rec, batch[i].walIdx)
		}
		batch = batch[:0]
	}
	next := uint64(0) // expected first index of the next segment
	for i, seg := range segs {
		if next != 0 && seg.start != next {
			return res, fmt.Errorf("spool: log segment %s starts at %d, want %d: %w", seg.path, seg.start, next, ErrCorrupt)
		}
		data, err := os.ReadFile(seg.path)
		if err != nil {
			return res, fmt.Errorf("spool: read log: %w", err)
		}
		walIdx := seg.start
		end, werr := walkEntries(data, func(_ int, b []byte) error {
			rec, err := decodeRecord(b)
			if err != nil {
				return err
			}
			if rec.batch != res.lastBatch && len(batch) > 0 {
				apply()
			}
			if rec.batch > res.lastBatch {
				res.lastBatch = rec.batch
			}
			if rec.kind == recPut {
				rec.env = append([]byte(nil), rec.env...) // detach from the segment buffer
			}
			batch = append(batch, pending{walIdx: walIdx, rec: rec})
			walIdx++
			return nil
		})
		if werr != nil {
			if i != len(segs)-1 {
				return res, fmt.Errorf("spool: log segment %s: entry %d at byte %d is damaged (%v) and is not the end of the log: %w%s",
					seg.path, walIdx, end, werr, ErrCorrupt, salvageHint)
			}
			// A torn write only ever damages the end of the log, so any
			// valid record after the bad one was written (and possibly
			// acknowledged) after it: cutting here would drop it silently.
			if at := findEntry(data, end+1, res.lastBatch); at >= 0 {
				return res, fmt.Errorf("spool: log segment %s: entry %d at byte %d is damaged (%v) but valid entries follow it (the next at byte %d), so it is not a torn tail: %w%s",
					seg.path, walIdx, end, werr, at, ErrCorrupt, salvageHint)
			}
			log.Warn("spool: dropping torn log tail (unacknowledged writes)",
				"segment", seg.path, "offset", end, "bytes", len(data)-end, "cause", werr.Error())
			if err := truncateFile(seg.path, int64(end)); err != nil {
				return res, fmt.Errorf("spool: cut torn log tail: %w", err)
			}
		}
		next = walIdx
		res.lastIdx = walIdx - 1
	}
	if len(batch) == 0 {
		return res, nil
	}
	// Which of the last batch's bodies must exist: the latest put of each
	// message that is live once the batch is applied.
	final := make(map[string]*pending)
	for i := range batch {
		p := &batch[i]
		switch p.rec.kind {
		case recPut:
			h, _ := peekEnvelope(p.rec.env)
			final[string(h.id)] = p
		case recDone:
			final[p.rec.id] = nil
		}
	}
	for id, p := range final {
		if p == nil {
			continue
		}
		if _, err := readFrame(bodyDir, p.rec.ref, id); err != nil {
			first := batch[0].walIdx
			log.Warn("spool: dropping last log batch: a body it references was not fully written (batch unacknowledged)",
				"batch", batch[0].rec.batch, "entries", len(batch), "message", id, "cause", err.Error())
			if _, err := truncateLogAfter(dir, first-1); err != nil {
				return res, fmt.Errorf("spool: cut unacknowledged batch: %w", err)
			}
			res.lastIdx = first - 1
			return res, nil
		}
	}
	res.lastBatchFirst = batch[0].walIdx
	files := make(map[uint32]bool)
	for _, p := range final {
		if p != nil && !files[p.rec.ref.file] {
			files[p.rec.ref.file] = true
			res.lastBatchFiles = append(res.lastBatchFiles, p.rec.ref.file)
		}
	}
	apply()
	return res, nil
}

// salvageHint ends the errors of damage that Open will not repair itself.
const salvageHint = "; `cuemta spool salvage` copies every readable message into a fresh spool"

func applyRecord(idx *index, rec *record, walIdx uint64) {
	switch rec.kind {
	case recPut:
		h, _ := peekEnvelope(rec.env) // checked by decodeRecord
		idx.put(string(h.id), rec.env, h.next, walIdx, rec.ref)
	case recDone:
		idx.remove(rec.id)
	}
}
