package suppress

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cuemta/cuemta/internal/atomicfile"
	"github.com/cuemta/cuemta/internal/maildomain"
)

// Entry is one suppressed address.
type Entry struct {
	Tenant  string    `json:"tenant"`  // "" for every tenant
	Address string    `json:"address"` // normalised (Normalize)
	Reason  string    `json:"reason,omitempty"`
	Source  string    `json:"source"` // one of Sources
	Added   time.Time `json:"added"`  // second precision
	Expires time.Time `json:"expires,omitzero"`
}

// MaxText bounds a tenant and a reason, in bytes.
const MaxText = 512

// Normalize is the form an address is stored and looked up in: trimmed,
// lower-case, the domain in A-labels.
func Normalize(addr string) string {
	// The fast path, for addresses already normalised (every stored
	// recipient is): ASCII with no upper case and no space.
	plain := true
	for i := 0; i < len(addr); i++ {
		if c := addr[i]; c >= 0x80 || c <= ' ' || 'A' <= c && c <= 'Z' {
			plain = false
			break
		}
	}
	if plain {
		return addr
	}
	return strings.ToLower(maildomain.Address(strings.TrimSpace(addr)))
}

// Check validates an entry before it is added: the error says what to fix.
func Check(e *Entry) error {
	var problems []string
	at := strings.LastIndexByte(e.Address, '@')
	if at <= 0 || at == len(e.Address)-1 || len(e.Address) > 254 || strings.ContainsAny(e.Address, " \t\r\n<>\x00") {
		problems = append(problems, fmt.Sprintf("address %q is not a mail address (local@domain, at most 254 bytes)", e.Address))
	}
	if len(e.Tenant) > MaxText || strings.ContainsAny(e.Tenant, "\r\n\x00") {
		problems = append(problems, fmt.Sprintf("tenant is longer than %d bytes or holds a line break", MaxText))
	}
	if len(e.Reason) > MaxText || strings.ContainsAny(e.Reason, "\r\n\x00") {
		problems = append(problems, fmt.Sprintf("reason is longer than %d bytes or holds a line break", MaxText))
	}
	if sourceCode(e.Source) == 0 {
		problems = append(problems, fmt.Sprintf("source %q is not one of %s", e.Source, strings.Join(Sources, ", ")))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// Options tune a Store; the zero value is the default.
type Options struct {
	// Now is the clock for expiry; nil: time.Now.
	Now func() time.Time
	// CompactAfter is how many log records beyond the live entries start a
	// compaction; 0: 4096.
	CompactAfter int
}

// Store is a durable suppression list; its methods are safe for
// concurrent use.
type Store struct {
	dir  string
	opts Options
	// onChange is told of local changes (OnChange).
	onChange atomic.Pointer[func(Change)]

	// wmu serialises changes: the log write, its fsync and compaction.
	// mu guards the index only and is held for memory work, never across
	// an fsync, so lookups at RCPT do not wait on the disk.
	wmu     sync.Mutex
	mu      sync.RWMutex
	idx     *index
	log     *os.File
	records int // records in the log since the snapshot; wmu
	closed  bool
}

const (
	snapshotName = "snapshot"
	logName      = "log"
	snapshotHead = "cuemta-suppress 1\n"
)

// Open opens (creating it if needed) the list in dir: the snapshot is
// loaded, the log replayed over it and a torn tail cut off.
func Open(dir string, opts Options) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CompactAfter <= 0 {
		opts.CompactAfter = 4096
	}
	// Private like the rest of the spool: addresses and reasons are
	// personal data (directories 0700, files 0600).
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("suppression list: %w", err)
	}
	s := &Store{dir: dir, opts: opts, idx: newIndex()}
	snap, err := os.ReadFile(filepath.Join(dir, snapshotName))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("suppression list: %w", err)
	default:
		if !strings.HasPrefix(string(snap), snapshotHead) {
			return nil, fmt.Errorf("suppression list: %s: not a cuemta suppression snapshot", filepath.Join(dir, snapshotName))
		}
		// The snapshot was written whole (atomicfile): any damage in it
		// is an error, not a torn tail.
		if n, err := s.replay(snap[len(snapshotHead):]); err != nil || n != len(snap)-len(snapshotHead) {
			return nil, fmt.Errorf("suppression list: %s damaged at byte %d: %v", filepath.Join(dir, snapshotName), len(snapshotHead)+n, err)
		}
		s.records = 0 // records counts the log's only
	}
	logPath := filepath.Join(dir, logName)
	f, err := os.OpenFile(logPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("suppression list: %w", err)
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("suppression list: read %s: %w", logPath, err)
	}
	good, err := s.replay(data)
	if err != nil && !errors.Is(err, errTorn) {
		f.Close()
		return nil, fmt.Errorf("suppression list: %s damaged at byte %d: %w", logPath, good, err)
	}
	if good < len(data) {
		// Only a crash in mid-write leaves a bad record, and only at the
		// end: more than one record's worth after it is damage to report.
		if len(data)-good > recordHeader+maxRecord {
			f.Close()
			return nil, fmt.Errorf("suppression list: %s damaged at byte %d (%d bytes follow); move it aside to start without the changes it holds", logPath, good, len(data)-good)
		}
		if err := f.Truncate(int64(good)); err != nil {
			f.Close()
			return nil, fmt.Errorf("suppression list: cut torn tail of %s: %w", logPath, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("suppression list: %w", err)
		}
	}
	if _, err := f.Seek(int64(good), io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("suppression list: %w", err)
	}
	s.log = f
	// At start, expired entries are dropped too.
	if s.records > s.idx.live+s.opts.CompactAfter || s.idx.expiredCount(opts.Now()) > 0 {
		if err := s.compactLocked(); err != nil {
			f.Close()
			return nil, err
		}
	}
	return s, nil
}

// replay applies the records of b and returns how many bytes it used.
func (s *Store) replay(b []byte) (int, error) {
	off := 0
	for off < len(b) {
		op, e, n, err := readRecord(b[off:])
		if err != nil {
			return off, err
		}
		switch op {
		case opAdd:
			if err := s.idx.put(&e); err != nil {
				return off, err
			}
		case opRemove:
			s.idx.remove(e.Tenant, e.Address)
		}
		s.records++
		off += n
	}
	return off, nil
}

// Lookup returns the entry that suppresses addr for tenant: the tenant's
// own, else the global one. addr must be in normalised form when speed
// matters (Normalize returns it unchanged then).
func (s *Store) Lookup(tenant, addr string) (Entry, bool) {
	addr = Normalize(addr)
	now := s.opts.Now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if tenant != "" {
		if sl, ok := s.idx.lookup(tenant, addr, now); ok {
			return s.idx.entry(sl), true
		}
	}
	if sl, ok := s.idx.lookup("", addr, now); ok {
		return s.idx.entry(sl), true
	}
	return Entry{}, false
}

// Suppressed reports whether addr is suppressed for tenant (or for all).
func (s *Store) Suppressed(tenant, addr string) bool {
	addr = Normalize(addr)
	now := s.opts.Now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if tenant != "" {
		if _, ok := s.idx.lookup(tenant, addr, now); ok {
			return true
		}
	}
	_, ok := s.idx.lookup("", addr, now)
	return ok
}

// Add adds or replaces entries, durably: it returns once they are on disk.
// A zero Added is now. Every entry is checked first; none is added when
// one is invalid.
func (s *Store) Add(entries ...Entry) error {
	if err := s.add(entries); err != nil {
		return err
	}
	if f := s.onChange.Load(); f != nil {
		(*f)(Change{Added: entries})
	}
	return nil
}

// Change is one change to the list, as OnChange reports it: entries
// added (or replaced), or one entry removed (Tenant and Address only).
type Change struct {
	Added   []Entry `json:"added,omitempty"`
	Removed *Entry  `json:"removed,omitempty"`
}

// OnChange sets a function told of every change made by Add and Remove,
// after it is on disk (a cluster passes them to its other nodes); the
// changes made by Apply are not reported.
func (s *Store) OnChange(f func(Change)) { s.onChange.Store(&f) }

// Apply makes a change another node made, durably, without reporting it.
func (s *Store) Apply(c Change) error {
	if len(c.Added) > 0 {
		if err := s.add(c.Added); err != nil {
			return err
		}
	}
	if c.Removed != nil {
		if _, err := s.remove(c.Removed.Tenant, c.Removed.Address); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) add(entries []Entry) error {
	now := s.opts.Now()
	var buf []byte
	var err error
	for i := range entries {
		e := &entries[i]
		e.Address = Normalize(e.Address)
		if e.Added.IsZero() {
			e.Added = now
		}
		e.Added = e.Added.UTC().Truncate(time.Second)
		if !e.Expires.IsZero() {
			e.Expires = e.Expires.UTC().Truncate(time.Second)
		}
		if err := Check(e); err != nil {
			return fmt.Errorf("entry %d: %w", i+1, err)
		}
		buf = appendRecord(buf, opAdd, e)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.write(buf); err != nil {
		return err
	}
	s.mu.Lock()
	for i := range entries {
		if err = s.idx.put(&entries[i]); err != nil {
			break
		}
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	s.records += len(entries)
	return s.maybeCompact()
}

// Remove removes tenant's entry for addr, durably; it reports false when
// there was none.
func (s *Store) Remove(tenant, addr string) (bool, error) {
	ok, err := s.remove(tenant, addr)
	if ok && err == nil {
		if f := s.onChange.Load(); f != nil {
			(*f)(Change{Removed: &Entry{Tenant: tenant, Address: Normalize(addr)}})
		}
	}
	return ok, err
}

func (s *Store) remove(tenant, addr string) (bool, error) {
	e := Entry{Tenant: tenant, Address: Normalize(addr)}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	_, ok := s.idx.lookup(tenant, e.Address, s.opts.Now())
	s.mu.RUnlock()
	if !ok {
		return false, nil
	}
	if err := s.write(appendRecord(nil, opRemove, &e)); err != nil {
		return false, err
	}
	s.mu.Lock()
	s.idx.remove(tenant, e.Address)
	s.mu.Unlock()
	s.records++
	return true, s.maybeCompact()
}

// Each calls fn for every live entry in tenant, address order, until fn
// returns false. fn must not call the Store.
func (s *Store) Each(fn func(Entry) bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.idx.each(s.opts.Now(), fn)
}

// Len is the number of entries, expired ones not yet compacted included.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.idx.live
}

// write appends records to the log and fsyncs it. s.wmu is held.
func (s *Store) write(b []byte) error {
	if s.closed {
		return errors.New("suppression list closed")
	}
	if _, err := s.log.Write(b); err != nil {
		return fmt.Errorf("suppression list: write: %w", err)
	}
	if err := s.log.Sync(); err != nil {
		return fmt.Errorf("suppression list: fsync: %w", err)
	}
	return nil
}

// maybeCompact compacts once the log holds more records than the live
// entries plus CompactAfter. s.wmu is held.
func (s *Store) maybeCompact() error {
	s.mu.RLock()
	live := s.idx.live
	s.mu.RUnlock()
	if s.records > live+s.opts.CompactAfter {
		return s.compactLocked()
	}
	return nil
}

// Compact writes a snapshot of the live, unexpired entries and empties the
// log.
func (s *Store) Compact() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.compactLocked()
}

// compactLocked runs with s.wmu held: no change can happen meanwhile, and
// lookups go on against the old index until the new one replaces it.
func (s *Store) compactLocked() error {
	if s.closed {
		return errors.New("suppression list closed")
	}
	s.mu.RLock()
	fresh := newIndexSized(s.idx.live, len(s.idx.arena))
	buf := []byte(snapshotHead)
	var err error
	s.idx.each(s.opts.Now(), func(e Entry) bool {
		buf = appendRecord(buf, opAdd, &e)
		err = fresh.put(&e)
		return err == nil
	})
	s.mu.RUnlock()
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(s.dir, snapshotName), buf, 0o600); err != nil {
		return fmt.Errorf("suppression list: snapshot: %w", err)
	}
	// A crash before the truncation replays the log over the new
	// snapshot: the same state, since replay is idempotent.
	if err := s.log.Truncate(0); err != nil {
		return fmt.Errorf("suppression list: truncate log: %w", err)
	}
	if _, err := s.log.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("suppression list: %w", err)
	}
	if err := s.log.Sync(); err != nil {
		return fmt.Errorf("suppression list: fsync log: %w", err)
	}
	s.mu.Lock()
	s.idx = fresh
	s.mu.Unlock()
	s.records = 0
	return nil
}

// Close closes the log; the list stays on disk.
func (s *Store) Close() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.log.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("suppression list: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("suppression list: fsync %s: %w", dir, err)
	}
	return nil
}

func fromUnix(u uint64) time.Time {
	if u == 0 {
		return time.Time{}
	}
	return time.Unix(int64(u), 0).UTC()
}
