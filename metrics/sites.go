package metrics

import "sync"

// DefaultMaxSites is the default cap on distinct site label values. A site
// is a set of MX hosts, so the number is bounded by the destinations a
// server reaches, but a sender to many small domains (each with its own MX)
// could otherwise create series without end.
const DefaultMaxSites = 1000

// OtherSite is the site label of the sites seen after the cap.
const OtherSite = "other"

// limiter admits the first max distinct site names as label values. Once
// admitted a name stays admitted, so ConnOpened and ConnClosed of a site
// always hit the same series.
type limiter struct {
	max  int
	mu   sync.RWMutex
	seen map[string]struct{}
}

func newLimiter(max int) *limiter { return &limiter{max: max, seen: make(map[string]struct{})} }

func (l *limiter) label(site string) string {
	if site == "" {
		return site
	}
	l.mu.RLock()
	_, ok := l.seen[site]
	full := len(l.seen) >= l.max
	l.mu.RUnlock()
	if ok {
		return site
	}
	if full {
		return OtherSite
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.seen[site]; ok {
		return site
	}
	if len(l.seen) >= l.max {
		return OtherSite
	}
	l.seen[site] = struct{}{}
	return site
}
