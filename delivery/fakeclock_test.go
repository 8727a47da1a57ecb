package delivery

import (
	"sort"
	"sync"
	"time"
)

// fakeClock is the scheduler's clock in tests (Options.Now and After): time
// stands still until the test advances it, and a channel from After
// receives when the clock reaches its deadline. Nothing in a test that
// uses it waits for the wall clock to decide behaviour.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeTimer
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

// clockStart is where fake clocks start: a fixed instant, so that times
// in failure messages read the same on every run.
var clockStart = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func newFakeClock() *fakeClock { return &fakeClock{now: clockStart} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After fires once the clock has advanced by d (at once for d <= 0).
func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeTimer{at: c.now.Add(d), ch: ch})
	return ch
}

// Advance moves the clock forward by d and fires every After due by then,
// earliest first.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advanceLocked(c.now.Add(d))
}

// AdvanceToNext moves the clock to the earliest pending After and fires
// it (with any due at the same instant). It reports false, leaving the
// clock alone, when nothing waits.
func (c *fakeClock) AdvanceToNext() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.waiters) == 0 {
		return false
	}
	next := c.waiters[0].at
	for _, w := range c.waiters[1:] {
		if w.at.Before(next) {
			next = w.at
		}
	}
	c.advanceLocked(next)
	return true
}

func (c *fakeClock) advanceLocked(to time.Time) {
	if to.After(c.now) {
		c.now = to
	}
	sort.SliceStable(c.waiters, func(i, j int) bool { return c.waiters[i].at.Before(c.waiters[j].at) })
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- w.at
	}
	c.waiters = kept
}

// Pending is how many After channels have not fired yet.
func (c *fakeClock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}
