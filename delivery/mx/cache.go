package mx

import (
	"container/list"
	"sync"
	"time"
)

// cache holds answers by (name, type) until they expire, evicting the
// least recently used entry when full. Expiry is judged by the resolver's
// clock, so tests move time instead of sleeping.
type cache struct {
	mu    sync.Mutex
	max   int
	ll    *list.List // front = most recently used; values are *cacheEntry
	items map[cacheKey]*list.Element
}

type cacheKey struct {
	name  string // lower-case FQDN
	qtype uint16
}

type cacheEntry struct {
	key     cacheKey
	ans     *answer
	expires time.Time
}

func newCache(max int) *cache {
	return &cache{max: max, ll: list.New(), items: make(map[cacheKey]*list.Element)}
}

// get returns a live entry and its remaining lifetime.
func (c *cache) get(k cacheKey, now time.Time) (*answer, time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		return nil, 0, false
	}
	e := el.Value.(*cacheEntry)
	left := e.expires.Sub(now)
	if left <= 0 {
		c.ll.Remove(el)
		delete(c.items, k)
		return nil, 0, false
	}
	c.ll.MoveToFront(el)
	return e.ans, left, true
}

func (c *cache) put(k cacheKey, a *answer, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		e := el.Value.(*cacheEntry)
		e.ans, e.expires = a, expires
		c.ll.MoveToFront(el)
		return
	}
	c.items[k] = c.ll.PushFront(&cacheEntry{key: k, ans: a, expires: expires})
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.items, old.Value.(*cacheEntry).key)
	}
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
