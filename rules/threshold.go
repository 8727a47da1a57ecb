package rules

import (
	"container/list"
	"sync"
	"time"
)

// DefaultTrackerKeys bounds how many (rule, site) pairs a Tracker remembers.
const DefaultTrackerKeys = 65536

// Tracker keeps the recent matches of threshold rules, per (rule, site),
// in a sliding window. Memory is bounded: at most maxKeys pairs are kept
// (least recently matched evicted first), each holding at most `count`
// timestamps. It is safe for concurrent use.
type Tracker struct {
	mu      sync.Mutex
	now     func() time.Time
	maxKeys int
	seed    int
	entries map[trackerKey]*list.Element
	lru     *list.List // of *trackerEntry, most recent at the front
	changes uint64     // Records so far, for savers (threshold_state.go)
	shared  SharedCounter
}

// SharedCounter counts a match in a window shared with other processes (a
// cluster of nodes) and reports the matches in it, this one included; ok
// false when it cannot (the local count then decides).
type SharedCounter func(rule, site string, count int, within time.Duration) (seen int, ok bool)

// WithShared makes Record count matches across a cluster: each match is
// counted locally too (the saved windows, and the fallback when the
// shared count is unavailable).
func WithShared(f SharedCounter) TrackerOption { return func(t *Tracker) { t.shared = f } }

type trackerKey struct{ rule, site string }

type trackerEntry struct {
	key   trackerKey
	limit int     // the rule's count: the most timestamps worth keeping
	times []int64 // ring of match times (Unix ns), grown up to limit
	next  int     // once full, the oldest slot (the next to overwrite)
}

// TrackerOption configures NewTracker.
type TrackerOption func(*Tracker)

// WithClock replaces time.Now (tests use a fake clock).
func WithClock(now func() time.Time) TrackerOption { return func(t *Tracker) { t.now = now } }

// WithMaxKeys overrides DefaultTrackerKeys.
func WithMaxKeys(n int) TrackerOption {
	return func(t *Tracker) {
		if n > 0 {
			t.maxKeys = n
		}
	}
}

// WithPrevious makes every (rule, site) pair start with n matches at the
// time it is first seen: a policy test's `previous`, or explain's.
func WithPrevious(n int) TrackerOption { return func(t *Tracker) { t.seed = n } }

// NewTracker returns an empty Tracker.
func NewTracker(opts ...TrackerOption) *Tracker {
	t := &Tracker{
		now:     time.Now,
		maxKeys: DefaultTrackerKeys,
		entries: map[trackerKey]*list.Element{},
		lru:     list.New(),
	}
	for _, o := range opts {
		o(t)
	}
	return t
}

// Record notes a match of rule from site now and reports how many matches
// (this one included, at most count) fall within the window, and whether
// that reaches count.
func (t *Tracker) Record(rule, site string, count int, within time.Duration) (seen int, reached bool) {
	if count <= 1 {
		return 1, true
	}
	now := t.now().UnixNano()
	t.mu.Lock()
	e := t.entry(trackerKey{rule, site}, count, now)
	e.add(now)
	t.changes++
	seen = e.within(now, within)
	t.mu.Unlock()
	if t.shared != nil {
		if n, ok := t.shared(rule, site, count, within); ok {
			seen = min(max(n, seen), count)
		}
	}
	return seen, seen >= count
}

// Len reports how many (rule, site) pairs are remembered.
func (t *Tracker) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}

func (t *Tracker) entry(k trackerKey, count int, now int64) *trackerEntry {
	if el, ok := t.entries[k]; ok {
		t.lru.MoveToFront(el)
		e := el.Value.(*trackerEntry)
		if e.limit != count {
			e.resize(count) // the rule's count changed across a reload
		}
		return e
	}
	if len(t.entries) >= t.maxKeys {
		oldest := t.lru.Back()
		delete(t.entries, oldest.Value.(*trackerEntry).key)
		t.lru.Remove(oldest)
	}
	e := &trackerEntry{key: k, limit: count, times: make([]int64, 0, min(count, 8))}
	for i := 0; i < t.seed && i < count; i++ {
		e.add(now)
	}
	t.entries[k] = t.lru.PushFront(e)
	return e
}

func (e *trackerEntry) add(now int64) {
	if len(e.times) < e.limit {
		e.times = append(e.times, now)
		return
	}
	e.times[e.next] = now
	e.next = (e.next + 1) % e.limit
}

// within counts the remembered matches no older than d.
func (e *trackerEntry) within(now int64, d time.Duration) int {
	n := 0
	for _, ts := range e.times {
		if time.Duration(now-ts) <= d {
			n++
		}
	}
	return n
}

// resize keeps the newest count timestamps.
func (e *trackerEntry) resize(count int) {
	var ordered []int64
	if len(e.times) < e.limit {
		ordered = e.times
	} else {
		ordered = append(append([]int64(nil), e.times[e.next:]...), e.times[:e.next]...)
	}
	if len(ordered) > count {
		ordered = ordered[len(ordered)-count:]
	}
	e.times = append([]int64(nil), ordered...)
	e.limit = count
	e.next = 0
}
