package feedback

import (
	"strings"
	"sync"
)

// Meta is what a report's events say about the message it matched.
type Meta struct {
	ID        string // queue id
	MessageID string // the Message-ID header, with < >
	From      string // envelope sender
	Tenant    string
	Campaign  string
}

// Index remembers the recent messages this server accepted, by queue id
// and by Message-ID, so that a report can be matched to its message after
// the message has left the spool. It is bounded (FIFO). An Index from
// NewIndex lives in memory only; one from OpenIndex also keeps its
// entries in a log and reads them back after a restart (indexlog.go). For a message older than the last size messages (or
// after a restart without the log), a VERP report still matches by queue
// id, without tenant and campaign, and a report matched only by
// Message-ID does not match.
type Index struct {
	mu    sync.Mutex
	byID  map[string]*Meta
	byMID map[string]string // Message-ID → queue id
	ring  []string
	pos   int
	log   *indexLog // nil: memory only (NewIndex)
}

// DefaultIndexSize is the number of messages an Index keeps: about 260
// bytes each (measured with 50-byte Message-IDs), 26 MB in all.
const DefaultIndexSize = 100000

// NewIndex returns an Index of at most size messages.
func NewIndex(size int) *Index {
	if size <= 0 {
		size = DefaultIndexSize
	}
	return &Index{byID: map[string]*Meta{}, byMID: map[string]string{}, ring: make([]string, size)}
}

// entry returns the entry of id, adding it (and evicting the oldest) when
// new. Called with mu held.
func (x *Index) entry(id string) *Meta {
	if m, ok := x.byID[id]; ok {
		return m
	}
	if old := x.ring[x.pos]; old != "" {
		if m := x.byID[old]; m != nil && x.byMID[m.MessageID] == old {
			delete(x.byMID, m.MessageID)
		}
		delete(x.byID, old)
	}
	x.ring[x.pos] = id
	x.pos = (x.pos + 1) % len(x.ring)
	m := &Meta{ID: id}
	x.byID[id] = m
	return m
}

// Stored notes a message stored under id and its Message-ID field's
// value, as the header holds it ("" when it has none).
func (x *Index) Stored(id, mid string) {
	if x == nil {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	m := x.entry(id)
	m.MessageID = mid
	if mid != "" {
		x.byMID[mid] = id
	}
}

// Accepted notes a message's envelope sender, tenant and campaign.
func (x *Index) Accepted(id, from, tenant, campaign string) {
	if x == nil {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	m := x.entry(id)
	m.From, m.Tenant, m.Campaign = from, tenant, campaign
	if x.log != nil {
		x.log.append(m)
	}
}

// ByID returns what is known of queue id.
func (x *Index) ByID(id string) (Meta, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if m, ok := x.byID[id]; ok {
		return *m, true
	}
	return Meta{}, false
}

// ByMessageID returns the message whose Message-ID header is mid.
func (x *Index) ByMessageID(mid string) (Meta, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if id, ok := x.byMID[strings.TrimSpace(mid)]; ok {
		if m, ok := x.byID[id]; ok {
			return *m, true
		}
	}
	return Meta{}, false
}
