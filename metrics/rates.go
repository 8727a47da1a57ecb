package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Counts are the totals the console's throughput is computed from:
// messages received, and recipients delivered, deferred (transient
// failures) and bounced, as the counters of this package count them.
type Counts struct {
	Received, Delivered, Deferred, Bounced float64
}

func (c Counts) sub(o Counts) Counts {
	return Counts{c.Received - o.Received, c.Delivered - o.Delivered, c.Deferred - o.Deferred, c.Bounced - o.Bounced}
}

// Totals reads the counters now: the sums over every label, and the
// delivery counts per site label (Received is per listener, so it is zero
// there).
func (m *Metrics) Totals() (Counts, map[string]Counts) {
	var all Counts
	sites := map[string]Counts{}
	if m == nil {
		return all, sites
	}
	add := func(vec *prometheus.CounterVec, total *float64, site func(*Counts) *float64) {
		ch := make(chan prometheus.Metric, 64)
		go func() { vec.Collect(ch); close(ch) }()
		for mt := range ch {
			var d dto.Metric
			if mt.Write(&d) != nil || d.Counter == nil {
				continue
			}
			v := d.Counter.GetValue()
			*total += v
			if site == nil {
				continue
			}
			for _, l := range d.Label {
				if l.GetName() == "site" {
					c := sites[l.GetValue()]
					*site(&c) += v
					sites[l.GetValue()] = c
				}
			}
		}
	}
	add(m.received, &all.Received, nil)
	add(m.delivered, &all.Delivered, func(c *Counts) *float64 { return &c.Delivered })
	add(m.transient, &all.Deferred, func(c *Counts) *float64 { return &c.Deferred })
	add(m.bounced, &all.Bounced, func(c *Counts) *float64 { return &c.Bounced })
	return all, sites
}

// SampleWindow is how far back a Sampler keeps per-second counts.
const SampleWindow = time.Hour

// siteWindow is how far back the per-site rates reach; siteEvery is how
// often the per-site totals are kept.
const (
	siteWindow = time.Minute
	siteEvery  = 10 * time.Second
)

// Sampler keeps the per-second differences of Totals for the last hour in
// a fixed ring (3600 entries, whatever the traffic), and the per-site
// totals of the last minute, so the console can show throughput without
// an external time-series store. Tick must be called about once a second;
// a missed second is filled with zeros and its counts go to the next one.
type Sampler struct {
	m *Metrics

	mu    sync.Mutex
	ring  [3600]Counts
	last  int64 // Unix second of the newest entry; 0 before the first Tick
	born  int64 // the first second with counts: the one after the first Tick
	prev  Counts
	sites []siteTotals // oldest first, one per siteEvery, spanning siteWindow
}

type siteTotals struct {
	at     time.Time
	totals map[string]Counts
}

// NewSampler returns a sampler of m's counters.
func NewSampler(m *Metrics) *Sampler { return &Sampler{m: m} }

// Run ticks once a second until ctx ends.
func (s *Sampler) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	s.Tick(time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.Tick(now)
		}
	}
}

// Tick records the counts since the previous tick as the second of now.
func (s *Sampler) Tick(now time.Time) {
	all, sites := s.m.Totals()
	sec := now.Unix()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == 0 {
		s.last, s.born, s.prev = sec, sec+1, all
		s.keepSites(now, sites)
		return
	}
	if sec <= s.last {
		// Two ticks in one second: add to it.
		s.ring[s.last%int64(len(s.ring))] = addCounts(s.ring[s.last%int64(len(s.ring))], all.sub(s.prev))
		s.prev = all
		return
	}
	for t := s.last + 1; t < sec && t <= s.last+int64(len(s.ring)); t++ {
		s.ring[t%int64(len(s.ring))] = Counts{}
	}
	s.ring[sec%int64(len(s.ring))] = all.sub(s.prev)
	s.last, s.prev = sec, all
	s.keepSites(now, sites)
}

func addCounts(a, b Counts) Counts {
	return Counts{a.Received + b.Received, a.Delivered + b.Delivered, a.Deferred + b.Deferred, a.Bounced + b.Bounced}
}

func (s *Sampler) keepSites(now time.Time, sites map[string]Counts) {
	if n := len(s.sites); n > 0 && now.Sub(s.sites[n-1].at) < siteEvery {
		return
	}
	s.sites = append(s.sites, siteTotals{at: now, totals: sites})
	for len(s.sites) > 1 && now.Sub(s.sites[1].at) >= siteWindow {
		s.sites = s.sites[1:]
	}
}

// Series returns the per-second counts of the last hour, oldest first,
// and the Unix second of the first; shorter while the process is younger.
func (s *Sampler) Series() (start int64, counts []Counts) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == 0 {
		return 0, nil
	}
	n := int64(len(s.ring))
	first := max(s.last-n+1, s.born)
	for t := first; t <= s.last; t++ {
		counts = append(counts, s.ring[t%n])
	}
	return first, counts
}

// SiteRates returns each site's delivery counts per second over the last
// minute (from the oldest kept totals to now's).
func (s *Sampler) SiteRates(now time.Time) map[string]Counts {
	_, cur := s.m.Totals()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]Counts{}
	if len(s.sites) == 0 {
		return out
	}
	old := s.sites[0]
	secs := now.Sub(old.at).Seconds()
	if secs < 1 {
		return out
	}
	for site, c := range cur {
		d := c.sub(old.totals[site])
		out[site] = Counts{Delivered: d.Delivered / secs, Deferred: d.Deferred / secs, Bounced: d.Bounced / secs}
	}
	return out
}
