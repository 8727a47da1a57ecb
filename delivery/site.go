package delivery

import (
	"strconv"
	"sync"
	"time"
)

// site is one receiving site: the lanes to it (one per egress source and
// profile) and the site's recent reply counts. Its suspensions are kept
// with the others in Scheduler.suspended.
type site struct {
	sched *Scheduler
	key   string

	mu          sync.Mutex
	lanes       map[string]*lane
	recentStart time.Time
	recent      map[string]int64
}

// recentWindow is how far back the `recent` counts of the rules reach.
const recentWindow = 10 * time.Minute

func (s *site) count(now time.Time, code int) map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recent == nil || now.Sub(s.recentStart) > recentWindow {
		s.recent, s.recentStart = map[string]int64{}, now
	}
	if code > 0 {
		s.recent[strconv.Itoa(code/100)+"xx"]++
		s.recent[strconv.Itoa(code)]++
	}
	out := make(map[string]int64, len(s.recent))
	for k, v := range s.recent {
		out[k] = v
	}
	return out
}

// lanesNow is a snapshot of the site's lanes.
func (s *site) lanesNow() []*lane {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*lane, 0, len(s.lanes))
	for _, l := range s.lanes {
		out = append(out, l)
	}
	return out
}
