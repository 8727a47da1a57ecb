package queue

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// SalvageReport says what Salvage copied and what it could not read.
type SalvageReport struct {
	Recovered int            // live messages copied into the fresh spool
	Entries   int            // log entries read
	Damaged   []DamagedRange // log bytes that could not be read, in log order
	Lost      []LostMessage  // live messages that could not be copied, by ID
}

// DamagedRange is a run of log bytes that Salvage could not read as
// entries. Messages whose only records were there are unknown to it; a
// message completed there may have been copied as live.
type DamagedRange struct {
	File   string // the segment file
	Offset int64  // first unreadable byte
	Length int64  // bytes up to the next readable entry or the end of the file
	// Tail: the range runs to the end of the newest segment, which is what
	// a crash during a write leaves (Open cuts such a tail by itself).
	Tail  bool
	Cause string // why the first entry there failed
}

// LostMessage is a live message that Salvage found in the log but could
// not copy: its body frame (or envelope) failed its checks.
type LostMessage struct {
	ID string
	// LastBatch: its latest record belongs to the log's last batch, whose
	// bodies may never have been written because that batch was never
	// acknowledged (Open drops such a batch by itself).
	LastBatch bool
	Err       error
}

// Salvage copies every readable live message of the spool in damagedDir
// into a new spool in freshDir, for a spool that Open refuses with
// ErrCorrupt. It only reads damagedDir: no repair, no
// truncation, not even its lock file's pid (it takes a shared flock, so it
// refuses a spool in use and keeps cuemta from opening it meanwhile).
//
// The log is read like replay does, except that damage does not stop it:
// past a bad entry, every later byte offset is tried as an entry start
// (see findEntry), and each unreadable run is reported. A message is live
// when its last readable put is not followed by a readable done. It is
// copied, with its envelope exactly as last stored (ID, recipients and
// their states, attempts, next attempt), when a body frame of one of its
// puts since its enqueue reads and passes its checks; otherwise it is
// reported as lost.
//
// freshDir must not exist or be empty; it is created with Open(freshDir,
// opts). The error is for I/O failures and unusable arguments; what could
// not be read is in the report.
func Salvage(damagedDir, freshDir string, opts Options) (SalvageReport, error) {
	var rep SalvageReport
	if err := checkSalvageDirs(damagedDir, freshDir); err != nil {
		return rep, err
	}
	lock, err := lockShared(damagedDir)
	if err != nil {
		return rep, err
	}
	if lock != nil {
		defer lock.Close()
	}
	live, lastBatch, err := salvageLog(filepath.Join(damagedDir, "wal"), &rep)
	if err != nil {
		return rep, err
	}
	opts.CompactInterval = -1 // nothing to reclaim in a spool being filled
	fresh, err := Open(freshDir, opts)
	if err != nil {
		return rep, fmt.Errorf("spool: salvage: create %s: %w", freshDir, err)
	}
	ids := make([]string, 0, len(live))
	for id := range live {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var (
		mu    sync.Mutex
		fatal error
		wg    sync.WaitGroup
		work  = make(chan string)
	)
	// Concurrent Enqueues share group commits: one at a time would pay
	// two fsyncs per message.
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				m := live[id]
				damage, err := copyMessage(fresh, filepath.Join(damagedDir, "body"), id, m)
				mu.Lock()
				switch {
				case err != nil:
					if fatal == nil {
						fatal = err
					}
				case damage != nil:
					rep.Lost = append(rep.Lost, LostMessage{ID: id, LastBatch: m.batch == lastBatch, Err: damage})
				default:
					rep.Recovered++
				}
				mu.Unlock()
			}
		}()
	}
	for _, id := range ids {
		mu.Lock()
		stop := fatal != nil
		mu.Unlock()
		if stop {
			break
		}
		work <- id
	}
	close(work)
	wg.Wait()
	sort.Slice(rep.Lost, func(i, j int) bool { return rep.Lost[i].ID < rep.Lost[j].ID })
	if err := fresh.Close(); err != nil && fatal == nil {
		fatal = fmt.Errorf("spool: salvage: close %s: %w", freshDir, err)
	}
	return rep, fatal
}

// salvagedMsg is a live message as the readable log describes it.
type salvagedMsg struct {
	env   []byte    // envelope of its latest put
	refs  []bodyRef // body frames of its puts since its enqueue, newest first
	batch uint64    // batch of its latest put
}

// copyMessage enqueues m into fresh. damage says why m cannot be copied;
// err is a failure of the fresh spool, which ends the salvage.
func copyMessage(fresh *Spool, bodyDir, id string, m *salvagedMsg) (damage, err error) {
	env, err := decodeEnvelope(m.env)
	if err != nil {
		return fmt.Errorf("spool: envelope of %s: %w: %w", id, ErrCorrupt, err), nil
	}
	var body []byte
	var bodyErr error
	for _, ref := range m.refs { // bodies never change: any copy will do
		b, err := readFrame(bodyDir, ref, id)
		if err == nil && int64(len(b)) != env.Size {
			err = fmt.Errorf("body of %s has %d bytes, its envelope says %d: %w", id, len(b), env.Size, ErrCorrupt)
		}
		if err == nil {
			body = b
			break
		}
		if bodyErr == nil {
			bodyErr = err // the newest frame's failure is the one to report
		}
	}
	if body == nil {
		return bodyErr, nil
	}
	// Mail that was already acknowledged once: it may use the reserve that
	// reception may not.
	if _, err := fresh.EnqueueReserved(context.Background(), &env, body); err != nil {
		if len(env.Recipients) == 0 { // stored that way by an Update; Enqueue refuses it
			return err, nil
		}
		return nil, fmt.Errorf("spool: salvage: copy %s: %w", id, err)
	}
	return nil, nil
}

func checkSalvageDirs(damagedDir, freshDir string) error {
	if st, err := os.Stat(filepath.Join(damagedDir, "wal")); err != nil || !st.IsDir() {
		return fmt.Errorf("spool: salvage: %s is not a spool (no wal directory): %w", damagedDir, errOr(err, ErrCorrupt))
	}
	a, err1 := filepath.Abs(damagedDir)
	b, err2 := filepath.Abs(freshDir)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("spool: salvage: %w", err)
	}
	if a == b || strings.HasPrefix(b, a+string(filepath.Separator)) {
		return fmt.Errorf("spool: salvage: the fresh spool %s must be outside the damaged one %s", freshDir, damagedDir)
	}
	des, err := os.ReadDir(freshDir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("spool: salvage: %w", err)
	case len(des) > 0:
		return fmt.Errorf("spool: salvage: %s exists and is not empty", freshDir)
	}
	return nil
}

func errOr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

// salvageLog reads every readable entry of the log in dir, in order, and
// returns the live messages and the last batch number.
func salvageLog(dir string, rep *SalvageReport) (map[string]*salvagedMsg, uint64, error) {
	segs, err := salvageSegments(dir)
	if err != nil {
		return nil, 0, fmt.Errorf("spool: salvage: list log: %w", err)
	}
	live := make(map[string]*salvagedMsg)
	var maxBatch uint64
	next := uint64(0) // expected first index of the next segment; 0 once damage hides the count
	for i, seg := range segs {
		if next != 0 && seg.start > next {
			rep.Damaged = append(rep.Damaged, DamagedRange{File: seg.path,
				Cause: fmt.Sprintf("log entries %d to %d are missing: no segment file holds them", next, seg.start-1)})
		}
		data, err := os.ReadFile(seg.path)
		if err != nil {
			return nil, 0, fmt.Errorf("spool: salvage: read log: %w", err)
		}
		count, off, intact := uint64(0), 0, true
		for off < len(data) {
			end, rec, ok := entryAt(data, off, 0)
			if !ok {
				at := findEntry(data, off+1, maxBatch)
				stop := at
				if at < 0 {
					stop = len(data)
				}
				rep.Damaged = append(rep.Damaged, DamagedRange{File: seg.path, Offset: int64(off), Length: int64(stop - off),
					Tail: at < 0 && i == len(segs)-1, Cause: entryProblem(data, off)})
				intact = false
				if at < 0 {
					break
				}
				off = at
				continue
			}
			off = end
			count++
			rep.Entries++
			maxBatch = max(maxBatch, rec.batch)
			switch rec.kind {
			case recPut:
				h, _ := peekEnvelope(rec.env) // checked by entryAt
				id := string(h.id)
				m := live[id]
				if m == nil {
					m = &salvagedMsg{}
					live[id] = m
				}
				m.env = append([]byte(nil), rec.env...) // detach from the segment buffer
				m.batch = rec.batch
				if len(m.refs) == 0 || m.refs[0] != rec.ref {
					m.refs = append([]bodyRef{rec.ref}, m.refs...)
				}
			case recDone:
				delete(live, rec.id)
			}
		}
		next = 0
		if intact {
			next = seg.start + count
		}
	}
	return live, maxBatch, nil
}

// entryProblem says why the entry at off is unreadable.
func entryProblem(data []byte, off int) string {
	size, n := binary.Uvarint(data[off:])
	if n <= 0 || size > uint64(len(data)-off-n) {
		return "entry does not frame (bad length, or cut short)"
	}
	rec, err := decodeRecord(data[off+n : off+n+int(size)])
	if err != nil {
		return err.Error()
	}
	if rec.kind == recPut {
		if _, err := decodeEnvelope(rec.env); err != nil {
			return "envelope: " + err.Error()
		}
	}
	return "invalid record"
}

// salvageSegments lists the log's segments as wal.Open would use them,
// without finishing an interrupted TruncateFront: its NAME.START file holds
// the log from NAME's index on and replaces every segment up to that
// index, which wal would delete.
func salvageSegments(dir string) ([]segFile, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []segFile
	var start *segFile
	for _, de := range des {
		name := de.Name()
		if de.IsDir() || len(name) < 20 {
			continue
		}
		idx, err := strconv.ParseUint(name[:20], 10, 64)
		if err != nil || idx == 0 || (len(name) != 20 && name[20:] != ".START") {
			continue
		}
		sf := segFile{start: idx, path: filepath.Join(dir, name)}
		if len(name) == 20 {
			segs = append(segs, sf)
		} else if start == nil || idx > start.start {
			start = &sf
		}
	}
	if start != nil {
		kept := []segFile{*start}
		for _, sg := range segs {
			if sg.start > start.start {
				kept = append(kept, sg)
			}
		}
		segs = kept
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].start < segs[j].start })
	return segs, nil
}
