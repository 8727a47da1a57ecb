package cluster

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Entry is one shared suspension or throttle. The package does not read
// Key or Value: the scheduler names and encodes them.
type Entry struct {
	Key string
	// At is when the entry was set; of two entries under one key the
	// later wins (last writer wins, on the writers' clocks).
	At time.Time
	// Expire is when the entry stops mattering; it is dropped then.
	Expire time.Time
	// Value is the encoded entry; nil is a tombstone (a resume), which
	// wins over the older entry it replaces until that one would expire.
	Value []byte
}

// syncer holds the scheduler's side of the merge.
type syncer struct {
	mu    sync.Mutex
	local func() []Entry
	apply func([]Entry)
}

// SetEntries registers the merge: local lists this node's entries in
// force (tombstones included), apply receives every entry of the cluster
// after the merge. Both are called from Run's goroutine.
func (c *Client) SetEntries(local func() []Entry, apply func([]Entry)) {
	c.sync.mu.Lock()
	c.sync.local, c.sync.apply = local, apply
	c.sync.mu.Unlock()
}

// Changed asks for a merge now (a suspension was set or lifted here).
func (c *Client) Changed() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// syncNow merges this node's entries into the shared hash and hands the
// result to apply, in one round trip. While Redis is down it first probes
// with a heartbeat; the local entries stay in force meanwhile, and are
// pushed by the first merge that succeeds.
func (c *Client) syncNow(ctx context.Context) {
	c.sync.mu.Lock()
	local, apply := c.sync.local, c.sync.apply
	c.sync.mu.Unlock()
	if !c.up.Load() {
		c.heartbeat(ctx)
		if !c.up.Load() {
			return
		}
	}
	c.syncSuppressions(ctx)
	if local == nil {
		return
	}
	args := []any{}
	for _, e := range local() {
		// The script reads unsigned milliseconds: a zero time is 0.
		args = append(args, e.Key, max(0, e.At.UnixMilli()), max(0, e.Expire.UnixMilli()), string(e.Value))
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	res, err := mergeScript.Run(ctx, c.rdb, []string{c.prefix + "entries"}, args...).StringSlice()
	if c.call(err) != nil {
		return
	}
	out := make([]Entry, 0, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		if e, ok := decodeEntry(res[i], res[i+1]); ok {
			out = append(out, e)
		}
	}
	apply(out)
}

// decodeEntry parses "AT:EXPIRE:VALUE" (milliseconds; empty value: a
// tombstone).
func decodeEntry(key, s string) (Entry, bool) {
	at, rest, ok1 := strings.Cut(s, ":")
	exp, val, ok2 := strings.Cut(rest, ":")
	a, err1 := strconv.ParseInt(at, 10, 64)
	x, err2 := strconv.ParseInt(exp, 10, 64)
	if !ok1 || !ok2 || err1 != nil || err2 != nil {
		return Entry{}, false
	}
	e := Entry{Key: key, At: time.UnixMilli(a), Expire: time.UnixMilli(x)}
	if val != "" {
		e.Value = []byte(val)
	}
	return e, true
}
