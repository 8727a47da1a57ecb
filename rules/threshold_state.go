package rules

import "slices"

// Window is one (rule, site) pair of a Tracker as it is saved: the match
// times (Unix ns) it remembers, oldest first, and the rule's count.
type Window struct {
	Rule  string  `json:"rule"`
	Site  string  `json:"site"`
	Count int     `json:"count"`
	Times []int64 `json:"times"`
}

// Export returns the tracker's windows, least recently matched first, so
// that Import of the result rebuilds the same eviction order.
func (t *Tracker) Export() []Window {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Window, 0, len(t.entries))
	for el := t.lru.Back(); el != nil; el = el.Prev() {
		e := el.Value.(*trackerEntry)
		out = append(out, Window{Rule: e.key.rule, Site: e.key.site, Count: e.limit, Times: e.ordered()})
	}
	return out
}

// Import adds saved windows to the tracker, as if their matches had been
// recorded in order. Windows already present are replaced.
func (t *Tracker) Import(ws []Window) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, w := range ws {
		if w.Count < 1 {
			continue
		}
		k := trackerKey{w.Rule, w.Site}
		if el, ok := t.entries[k]; ok {
			t.lru.Remove(el)
			delete(t.entries, k)
		}
		e := t.entry(k, w.Count, 0)
		e.times = e.times[:0]
		e.next = 0
		for _, ts := range w.Times {
			e.add(ts)
		}
	}
}

// Changes counts the matches recorded so far: a saver compares it with
// the count at its last save to know whether there is anything new.
func (t *Tracker) Changes() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.changes
}

// ordered is the entry's times, oldest first.
func (e *trackerEntry) ordered() []int64 {
	if len(e.times) < e.limit {
		return slices.Clone(e.times)
	}
	return append(slices.Clone(e.times[e.next:]), e.times[:e.next]...)
}
