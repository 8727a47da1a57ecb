package mtasts

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/cuemta/cuemta/internal/atomicfile"
)

// Resolver is the DNS the cache asks: the delivery resolver.
type Resolver interface {
	HostResolver
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// Defaults for zero Options fields.
const (
	DefaultMaxEntries = 10000
	// DefaultRetryAfter is how long a domain whose policy could not be
	// fetched is not asked again (its mail goes out meanwhile as without
	// a policy, or under the cached one).
	DefaultRetryAfter = 5 * time.Minute
)

// Options configure a Cache.
type Options struct {
	Resolver Resolver
	// Fetch returns a domain's policy body; wrap ErrFetch or ErrInvalid.
	// Usually (&Fetcher{...}).Fetch.
	Fetch func(ctx context.Context, domain string) (string, error)
	// Now is the clock of max_age; default time.Now.
	Now func() time.Time
	// File keeps the policies in force across restarts; "" keeps them in
	// memory only.
	File string
	// MaxEntries bounds the domains remembered (policies and recent
	// fetch failures); the least recently used goes first.
	MaxEntries int
	// RetryAfter: see DefaultRetryAfter.
	RetryAfter time.Duration
	Logger     *slog.Logger
}

// Cache is the policies in force by domain. Safe for concurrent use.
type Cache struct {
	opts   Options
	flight singleflight.Group

	mu      sync.Mutex
	entries map[string]*list.Element // values are *entry
	lru     *list.List               // front: most recently used

	saveMu sync.Mutex // one file write at a time, in order
}

// entry is what is known of one domain: a policy in force, and/or a
// fetch that failed (not retried before retryAt).
type entry struct {
	domain  string
	pol     *Policy
	retryAt time.Time
	failure error
}

// New returns a cache holding the policies persisted in opts.File that
// are still in force. An unreadable or damaged file is an error: starting
// without it would silently drop the protection it gives.
func New(opts Options) (*Cache, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = DefaultRetryAfter
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cache{opts: opts, entries: map[string]*list.Element{}, lru: list.New()}
	if opts.File == "" {
		return c, nil
	}
	data, err := os.ReadFile(opts.File)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mta-sts: %w", err)
	}
	var f file
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("mta-sts: %s: %w (remove it to start without the cached policies)", opts.File, err)
	}
	now := opts.Now()
	for _, p := range f.Policies {
		if p != nil && p.Domain != "" && now.Before(p.Expires()) {
			c.putLocked(&entry{domain: p.Domain, pol: p})
		}
	}
	return c, nil
}

// file is the persisted form: the policies in force.
type file struct {
	Version  int       `json:"version"`
	Policies []*Policy `json:"policies"`
}

// Lookup returns the policy in force for domain, fetching or refreshing
// it as RFC 8461 §5.1 says: a new TXT id, or a policy with less than a
// quarter of its max_age left, makes it fetch; a failed fetch keeps the
// cached policy until it expires. A nil policy means none applies (a
// policy of mode none is returned as is). err is non-nil when a
// published policy could not be had and none is in force: the reason,
// wrapping ErrFetch or ErrInvalid, for TLS-RPT.
func (c *Cache) Lookup(ctx context.Context, domain string) (*Policy, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	now := c.opts.Now()
	recs, err := c.opts.Resolver.LookupTXT(ctx, "_mta-sts."+domain)
	var id string
	if err == nil {
		id, err = SelectRecord(recs)
	}
	cur := c.get(domain, now)
	if cur != nil && cur.pol != nil {
		p := cur.pol
		// §5.1: without a TXT record (removed, or DNS failing) the cached
		// policy stays in force until it expires.
		stale := err == nil && id != p.ID
		due := p.Expires().Sub(now) < p.MaxAge/4
		if !(stale || due) || now.Before(cur.retryAt) {
			return p, nil
		}
		np, ferr := c.fetch(ctx, domain, id)
		if ferr != nil {
			c.opts.Logger.Warn("mta-sts: refresh failed; the cached policy stays in force", "domain", domain,
				"id", p.ID, "expires", p.Expires(), "err", ferr)
			return p, nil
		}
		return np, nil
	}
	if err != nil {
		return nil, nil // no policy published (or none visible): nothing applies
	}
	if cur != nil && now.Before(cur.retryAt) {
		return nil, cur.failure
	}
	return c.fetch(ctx, domain, id)
}

// fetch gets, parses and stores domain's policy, one fetch per domain
// at a time: concurrent callers share the first one's result.
//
// A caller whose context ends stops waiting; the fetch goes on (bounded
// by the fetcher's timeout) for the others and the cache.
func (c *Cache) fetch(ctx context.Context, domain, id string) (*Policy, error) {
	ch := c.flight.DoChan(domain, func() (any, error) {
		// The fetch serves every waiter: it must not end with the
		// first caller's context.
		body, err := c.opts.Fetch(context.WithoutCancel(ctx), domain)
		var p *Policy
		if err == nil {
			p, err = ParsePolicy(body)
		}
		now := c.opts.Now()
		if err != nil {
			err = fmt.Errorf("mta-sts %s: %w", domain, err)
			c.failed(domain, now, err)
			return nil, err
		}
		p.Domain, p.ID, p.Fetched = domain, id, now
		c.mu.Lock()
		c.putLocked(&entry{domain: domain, pol: p})
		c.mu.Unlock()
		c.save()
		return p, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*Policy), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("mta-sts %s: %w", domain, ctx.Err())
	}
}

// get returns domain's live entry, dropping an expired policy.
func (c *Cache) get(domain string, now time.Time) *entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[domain]
	if !ok {
		return nil
	}
	e := el.Value.(*entry)
	if e.pol != nil && !now.Before(e.pol.Expires()) {
		e.pol = nil // §5.1: an expired policy no longer applies
	}
	if e.pol == nil && !now.Before(e.retryAt) {
		c.lru.Remove(el)
		delete(c.entries, domain)
		return nil
	}
	c.lru.MoveToFront(el)
	cp := *e
	return &cp
}

// failed remembers a failed fetch; a policy in force is kept.
func (c *Cache) failed(domain string, now time.Time, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := &entry{domain: domain}
	if el, ok := c.entries[domain]; ok {
		old := el.Value.(*entry)
		e.pol = old.pol
	}
	e.retryAt, e.failure = now.Add(c.opts.RetryAfter), err
	c.putLocked(e)
}

func (c *Cache) putLocked(e *entry) {
	if el, ok := c.entries[e.domain]; ok {
		el.Value = e
		c.lru.MoveToFront(el)
		return
	}
	c.entries[e.domain] = c.lru.PushFront(e)
	for c.lru.Len() > c.opts.MaxEntries {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.entries, old.Value.(*entry).domain)
	}
}

// Len is the number of domains remembered.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// save writes the policies in force to the file. A failure is logged:
// the policies stay in force in memory, only a restart would forget them.
func (c *Cache) save() {
	if c.opts.File == "" {
		return
	}
	c.saveMu.Lock()
	defer c.saveMu.Unlock()
	now := c.opts.Now()
	f := file{Version: 1, Policies: []*Policy{}}
	c.mu.Lock()
	for el := c.lru.Front(); el != nil; el = el.Next() {
		if p := el.Value.(*entry).pol; p != nil && now.Before(p.Expires()) {
			f.Policies = append(f.Policies, p)
		}
	}
	c.mu.Unlock()
	data, err := json.MarshalIndent(f, "", "  ")
	if err == nil {
		err = atomicfile.Write(c.opts.File, append(data, '\n'), 0o600)
	}
	if err != nil {
		c.opts.Logger.Error("mta-sts: saving the policy cache", "file", c.opts.File, "err", err)
	}
}
