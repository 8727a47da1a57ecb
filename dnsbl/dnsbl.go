// Package dnsbl answers the DNS blocklist questions of stage rules
// (dnsbl() for the client IP, rhsbl() for a domain, client_name) for one
// SMTP session, bounded and cached.
//
// Invariants:
//   - A lookup never refuses mail by itself: a timeout, SERVFAIL, an
//     exhausted budget or an answer outside 127.0.0.0/8 is "not listed"
//     and counted in Stats.Errors (RFC 5782 §2.1: listings are A records
//     in 127.0.0.0/8; 127.255.255.0/24 is what some lists answer to a
//     refused query, an error and not a listing).
//   - Each lookup is bounded by Options.Timeout, and the lookups of a
//     session before its first MAIL, then of each transaction (MAIL to
//     its last RCPT), by Options.Budget; answers from the cache cost
//     nothing.
//   - The cache keeps each answer for its TTL (NXDOMAIN for the SOA's
//     negative TTL, RFC 2308 §5), at most maxTTL, and holds at most
//     Options.CacheSize answers, evicting the least recently used.
//
// A Checker is safe for concurrent use; a Session belongs to one SMTP
// connection's goroutine.
package dnsbl

import (
	"container/list"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cuemta/cuemta/delivery/mx"
)

// Resolver is the DNS client: *mx.Resolver.
type Resolver interface {
	LookupA(ctx context.Context, name string) ([]netip.Addr, time.Duration, error)
	LookupPTR(ctx context.Context, ip netip.Addr) ([]string, time.Duration, error)
}

// Options configure a Checker; zero fields take the schema's defaults.
type Options struct {
	Timeout   time.Duration // per lookup; default 2s
	Budget    int           // cache misses before MAIL, then per transaction; default 20
	CacheSize int           // answers kept; default 10000; negative: none
	Now       func() time.Time
	Logger    *slog.Logger
}

// maxTTL bounds how long an answer is kept whatever its TTL: a delisted
// address should not wait long.
const maxTTL = time.Hour

// Stats are a Checker's counters since it was made.
type Stats struct {
	Lookups, CacheHits, Listed, Errors, OverBudget uint64
}

// Checker holds the cache and counters shared by every session.
type Checker struct {
	res     Resolver
	timeout time.Duration
	budget  int
	now     func() time.Time
	log     *slog.Logger

	mu    sync.Mutex
	max   int
	ll    *list.List // front: most recently used; values *entry
	items map[string]*list.Element

	lookups, hits, listed, errs, over atomic.Uint64
}

type entry struct {
	name    string
	codes   []string
	expires time.Time
}

// New returns a Checker asking res.
func New(res Resolver, o Options) *Checker {
	c := &Checker{res: res, timeout: o.Timeout, budget: o.Budget, now: o.Now, log: o.Logger,
		max: o.CacheSize, ll: list.New(), items: map[string]*list.Element{}}
	if c.timeout <= 0 {
		c.timeout = 2 * time.Second
	}
	if c.budget <= 0 {
		c.budget = 20
	}
	if c.max == 0 {
		c.max = 10000
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Stats returns the counters.
func (c *Checker) Stats() Stats {
	return Stats{Lookups: c.lookups.Load(), CacheHits: c.hits.Load(), Listed: c.listed.Load(),
		Errors: c.errs.Load(), OverBudget: c.over.Load()}
}

// Session is the lookups of one SMTP connection from client.
type Session struct {
	c      *Checker
	ctx    context.Context
	client netip.Addr
	spent  int // cache misses in this transaction
	ptr    *string
}

// Session starts the lookups of a connection from client; ctx ends them
// (the connection closing).
func (c *Checker) Session(ctx context.Context, client netip.Addr) *Session {
	return &Session{c: c, ctx: ctx, client: client.Unmap()}
}

// NewTransaction gives the session a fresh budget (at MAIL FROM).
func (s *Session) NewTransaction() { s.spent = 0 }

// DNSBL implements rules.Lookups: the codes zone lists the client with.
func (s *Session) DNSBL(zone string) []string {
	name := ReverseName(s.client)
	if name == "" {
		return nil
	}
	return s.lookup(name + "." + normalize(zone))
}

// RHSBL implements rules.Lookups: the codes zone lists domain with.
func (s *Session) RHSBL(domain, zone string) []string {
	d := normalize(domain)
	if d == "" || strings.HasPrefix(d, "[") {
		return nil // an address literal has no domain to look up
	}
	return s.lookup(d + "." + normalize(zone))
}

// ClientName implements rules.Lookups: the client's first PTR name, ""
// when it has none or the lookup fails (counted as an error). Looked up
// once per session, from the cache or within the budget.
func (s *Session) ClientName() string {
	if s.ptr != nil {
		return *s.ptr
	}
	name := ""
	s.ptr = &name
	if !s.client.IsValid() {
		return ""
	}
	key := "ptr " + s.client.String() // not a domain name: no clash with lists
	if names, ok := s.c.get(key); ok {
		s.c.hits.Add(1)
		if len(names) > 0 {
			name = names[0]
		}
		return name
	}
	if !s.spend() {
		return ""
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.c.timeout)
	defer cancel()
	s.c.lookups.Add(1)
	names, ttl, err := s.c.res.LookupPTR(ctx, s.client)
	if err != nil && !errors.Is(err, mx.ErrNoSuchDomain) {
		s.c.errs.Add(1)
		s.c.log.Warn("reverse lookup failed; client_name is empty", "client_ip", s.client, "err", err)
		return ""
	}
	s.c.put(key, names, ttl)
	if len(names) > 0 {
		name = names[0]
	}
	return name
}

func (s *Session) spend() bool {
	if s.spent >= s.c.budget {
		s.c.over.Add(1)
		s.c.errs.Add(1)
		s.c.log.Warn("DNS lookup budget of the transaction spent; counted as not listed", "client_ip", s.client, "budget", s.c.budget)
		return false
	}
	s.spent++
	return true
}

func (s *Session) lookup(name string) []string {
	c := s.c
	if codes, ok := c.get(name); ok {
		c.hits.Add(1)
		if len(codes) > 0 {
			c.listed.Add(1)
		}
		return codes
	}
	if !s.spend() {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, c.timeout)
	defer cancel()
	c.lookups.Add(1)
	addrs, ttl, err := c.res.LookupA(ctx, name)
	if err != nil && !errors.Is(err, mx.ErrNoSuchDomain) {
		// RFC 5782 §2.1: no answer is not a listing.
		c.errs.Add(1)
		c.log.Warn("DNS list lookup failed; counted as not listed", "name", name, "err", err)
		return nil
	}
	var codes []string
	for _, a := range addrs {
		if !isListing(a) {
			c.errs.Add(1)
			c.log.Warn("DNS list answered outside 127.0.0.0/8 or with an error code; counted as not listed", "name", name, "answer", a)
			codes = nil
			ttl = 0 // do not keep an answer that says the query was refused
			break
		}
		codes = append(codes, a.String())
	}
	if len(codes) > 0 {
		c.listed.Add(1)
	}
	c.put(name, codes, ttl)
	return codes
}

var (
	loopback8  = netip.MustParsePrefix("127.0.0.0/8")
	errorCodes = netip.MustParsePrefix("127.255.255.0/24")
)

func isListing(a netip.Addr) bool { return loopback8.Contains(a) && !errorCodes.Contains(a) }

func (c *Checker) get(name string) ([]string, bool) {
	if c.max < 0 {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[name]
	if !ok {
		return nil, false
	}
	e := el.Value.(*entry)
	if !c.now().Before(e.expires) {
		c.ll.Remove(el)
		delete(c.items, name)
		return nil, false
	}
	c.ll.MoveToFront(el)
	return e.codes, true
}

func (c *Checker) put(name string, codes []string, ttl time.Duration) {
	if c.max < 0 || ttl <= 0 {
		return
	}
	ttl = min(ttl, maxTTL)
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[name]; ok {
		e := el.Value.(*entry)
		e.codes, e.expires = codes, c.now().Add(ttl)
		c.ll.MoveToFront(el)
		return
	}
	c.items[name] = c.ll.PushFront(&entry{name: name, codes: codes, expires: c.now().Add(ttl)})
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.items, old.Value.(*entry).name)
	}
}

// ReverseName is the DNSBL form of ip (RFC 5782 §2.1 for IPv4: octets
// reversed, "192.0.2.1" is "1.2.0.192"; §2.4 for IPv6: nibbles reversed),
// without a zone; "" for an invalid address.
func ReverseName(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case ip.Is4():
		b := ip.As4()
		return strconv.Itoa(int(b[3])) + "." + strconv.Itoa(int(b[2])) + "." + strconv.Itoa(int(b[1])) + "." + strconv.Itoa(int(b[0]))
	case ip.Is6():
		b := ip.As16()
		const hex = "0123456789abcdef"
		out := make([]byte, 0, 63)
		for i := len(b) - 1; i >= 0; i-- {
			if len(out) > 0 {
				out = append(out, '.')
			}
			out = append(out, hex[b[i]&0xf], '.', hex[b[i]>>4])
		}
		return string(out)
	}
	return ""
}

func normalize(s string) string { return strings.ToLower(strings.Trim(s, ".")) }
