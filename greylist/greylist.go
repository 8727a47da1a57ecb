// Package greylist is receiver greylisting (RFC 6647): the first message
// of a (client network, sender, recipient) triplet is refused with a
// temporary reply, and a retry after a delay is accepted, since spam
// engines seldom retry and MTAs always do.
//
// Invariants:
//   - The store is a log file (greylist.log in its directory) of JSON
//     lines, each the whole state of one triplet or network, written and
//     fsynced before Check answers on the change it records, so a triplet's
//     first sight and its passing survive a crash or restart. The last
//     line of a key wins on replay; a torn last line is skipped.
//   - The log is compacted (rewritten with one line per live entry,
//     fsynced, renamed over, the directory fsynced) when it holds more
//     than twice the live entries plus compactSlack lines.
//   - At most MaxEntries entries are held, in memory and in the log;
//     beyond it the least recently seen goes. Expired entries go at
//     compaction and when met.
//   - A Store is safe for concurrent use.
package greylist

import (
	"bufio"
	"container/list"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Policy is the greylisting of one config (config.Greylisting); it is
// given to each Check so a reload changes it without reopening the store.
type Policy struct {
	Delay         time.Duration // a new triplet is refused this long
	RetryWindow   time.Duration // a first retry later than this starts over
	Expiry        time.Duration // a passed triplet or network is kept this long after its last use
	AutoWhitelist int           // passed triplets after which a network skips greylisting; 0 never
	IPv4Prefix    int
	IPv6Prefix    int
}

// FileName is the log's name in the store's directory.
const FileName = "greylist.log"

// compactSlack is how many superseded lines the log may hold beyond
// twice the live entries before it is rewritten.
const compactSlack = 1024

// Stats are a Store's counters since it was opened.
type Stats struct {
	Entries                                  int
	Greylisted, Passed, Whitelisted, Evicted uint64
}

// Store holds the triplets and networks. See the package invariants.
type Store struct {
	mu    sync.Mutex
	dir   string
	f     *os.File
	w     *bufio.Writer
	lines int
	max   int
	now   func() time.Time
	ll    *list.List // front: most recently seen; values *entry
	items map[string]*list.Element

	greylisted, passed, whitelisted, evicted uint64
}

// entry is one line of the log: a triplet ("t") or a network ("n").
type entry struct {
	Kind   string `json:"t"`
	Key    string `json:"k"`
	First  int64  `json:"f,omitempty"` // Unix milliseconds: first sight (triplet)
	Last   int64  `json:"l"`           // Unix milliseconds: last use
	Passed bool   `json:"p,omitempty"` // the triplet retried after the delay
	Count  int    `json:"c,omitempty"` // passed triplets (network)
	saved  int64  // Last as the log has it
}

// Open opens (or creates) the store in dir, holding at most maxEntries
// entries; now is its clock (nil: time.Now).
func Open(dir string, maxEntries int, now func() time.Time) (*Store, error) {
	if now == nil {
		now = time.Now
	}
	if maxEntries <= 0 {
		maxEntries = 100000
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("greylist: %w", err)
	}
	s := &Store{dir: dir, max: maxEntries, now: now, ll: list.New(), items: map[string]*list.Element{}}
	if err := s.replay(); err != nil {
		return nil, err
	}
	if err := s.compact(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) path() string { return filepath.Join(s.dir, FileName) }

func (s *Store) replay() error {
	f, err := os.Open(s.path())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("greylist: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		var e entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Key == "" || (e.Kind != "t" && e.Kind != "n") {
			continue // a torn last line (crash mid-write): that change is lost, nothing else
		}
		e.saved = e.Last
		s.set(&e)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("greylist: read %s: %w", s.path(), err)
	}
	return nil
}

// set puts e in memory as the most recently seen, evicting past max.
func (s *Store) set(e *entry) {
	k := e.Kind + ":" + e.Key
	if el, ok := s.items[k]; ok {
		el.Value = e
		s.ll.MoveToFront(el)
		return
	}
	s.items[k] = s.ll.PushFront(e)
	for s.ll.Len() > s.max {
		old := s.ll.Back()
		s.ll.Remove(old)
		o := old.Value.(*entry)
		delete(s.items, o.Kind+":"+o.Key)
		s.evicted++
	}
}

func (s *Store) get(kind, key string) *entry {
	if el, ok := s.items[kind+":"+key]; ok {
		s.ll.MoveToFront(el)
		return el.Value.(*entry)
	}
	return nil
}

func (s *Store) drop(e *entry) {
	k := e.Kind + ":" + e.Key
	if el, ok := s.items[k]; ok {
		s.ll.Remove(el)
		delete(s.items, k)
	}
}

// write appends e's state to the log and fsyncs it.
func (s *Store) write(e *entry) error {
	if s.f == nil {
		return errors.New("greylist: store closed")
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if _, err := s.w.Write(b); err != nil {
		return fmt.Errorf("greylist: write: %w", err)
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("greylist: write: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("greylist: fsync: %w", err)
	}
	e.saved = e.Last
	s.lines++
	if s.lines > 2*s.ll.Len()+compactSlack {
		return s.compact()
	}
	return nil
}

// compact rewrites the log with one line per entry, oldest first, so
// replay restores the recency order too.
func (s *Store) compact() error {
	tmp := s.path() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("greylist: compact: %w", err)
	}
	w := bufio.NewWriter(f)
	n := 0
	for el := s.ll.Back(); el != nil; el = el.Prev() {
		e := el.Value.(*entry)
		b, err := json.Marshal(e)
		if err != nil {
			f.Close()
			return err
		}
		w.Write(append(b, '\n'))
		e.saved = e.Last
		n++
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("greylist: compact: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("greylist: compact: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("greylist: compact: %w", err)
	}
	if err := os.Rename(tmp, s.path()); err != nil {
		return fmt.Errorf("greylist: compact: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("greylist: compact: %w", err)
	}
	if s.f != nil {
		s.f.Close()
	}
	s.f, err = os.OpenFile(s.path(), os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("greylist: reopen: %w", err)
	}
	s.w = bufio.NewWriter(s.f)
	s.lines = n
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Network is the client network of a triplet: client masked to the
// policy's prefix.
func (p Policy) Network(client netip.Addr) string {
	client = client.Unmap()
	bits := p.IPv4Prefix
	if client.Is6() {
		bits = p.IPv6Prefix
	}
	if bits <= 0 || bits > client.BitLen() {
		bits = client.BitLen()
	}
	pre, err := client.Prefix(bits)
	if err != nil {
		return client.String()
	}
	return pre.String()
}

// Check decides a greylisted recipient: true when the triplet passed
// (retried after p.Delay, within p.RetryWindow) or the client's network
// is whitelisted. A store that cannot write answers true: a disk fault
// must not hold mail back. The error reports it.
func (s *Store) Check(p Policy, client netip.Addr, sender, recipient string) (bool, error) {
	if !client.IsValid() {
		return true, nil // not an IP transport: nothing to key on
	}
	now := s.now()
	t := now.UnixMilli()
	network := p.Network(client)
	s.mu.Lock()
	defer s.mu.Unlock()

	if p.AutoWhitelist > 0 {
		if n := s.get("n", network); n != nil {
			switch {
			case now.Sub(time.UnixMilli(n.Last)) > p.Expiry:
				s.drop(n)
			case n.Count >= p.AutoWhitelist:
				s.whitelisted++
				n.Last = t
				return true, s.refresh(n, p)
			}
		}
	}
	key := network + " " + sender + " " + recipient
	e := s.get("t", key)
	if e != nil {
		age := now.Sub(time.UnixMilli(e.First))
		if (e.Passed && now.Sub(time.UnixMilli(e.Last)) > p.Expiry) || (!e.Passed && age > p.RetryWindow) {
			s.drop(e)
			e = nil
		}
	}
	switch {
	case e == nil:
		s.greylisted++
		e = &entry{Kind: "t", Key: key, First: t, Last: t}
		s.set(e)
		if err := s.write(e); err != nil {
			return true, err
		}
		return false, nil
	case e.Passed:
		s.passed++
		e.Last = t
		return true, s.refresh(e, p)
	case now.Sub(time.UnixMilli(e.First)) < p.Delay:
		s.greylisted++
		return false, nil // too early: nothing new to record
	}
	// RFC 6647 §2.2: a retry after the delay is accepted, and the triplet
	// is remembered.
	s.passed++
	e.Passed, e.Last = true, t
	err := s.write(e)
	if p.AutoWhitelist > 0 {
		// Networks are counted only when they can be whitelisted.
		n := s.get("n", network)
		if n == nil {
			n = &entry{Kind: "n", Key: network}
			s.set(n)
		}
		n.Count++
		n.Last = t
		if err2 := s.write(n); err == nil {
			err = err2
		}
	}
	return true, err
}

// refresh writes an entry's new last use only now and then (each 1/100th
// of the expiry), not at every message: losing it costs at most that
// much of the entry's lifetime.
func (s *Store) refresh(e *entry, p Policy) error {
	if time.Duration(e.Last-e.saved)*time.Millisecond < p.Expiry/100 {
		return nil
	}
	return s.write(e)
}

// Stats returns the counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Entries: s.ll.Len(), Greylisted: s.greylisted, Passed: s.passed, Whitelisted: s.whitelisted, Evicted: s.evicted}
}

// Close closes the log.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.w.Flush()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	return err
}
