package delivery

import (
	"context"
	"fmt"

	"golang.org/x/time/rate"
)

// The scheduler's clock is Options.Now with Options.After. Every time that
// decides shaping is read from it: suspensions, throttles, back-off and
// greylist delays, due times, and the token buckets of lanes and
// providers, whose waits go through waitToken (rate.Limiter.Wait would
// read the wall clock). A test that injects both therefore decides when a
// token is due, and sees N messages per simulated second at a rate of N/s.
//
// What stays on the wall clock bounds real resources, not shaping: the
// scheduler's cadence (PollInterval, minPass, stateFlushInterval; what is
// due is decided by Now), the idle time of an open connection
// (IdleTimeout: the socket and the peer's own timeout run in real time),
// the back-off of spool writes the disk refused (retryStateWrite), and the
// network timeouts of smtpclient.

// waitToken takes one token from lim (nil: no limit) on the scheduler's
// clock. It returns early only when ctx ends, giving the token back so
// that the connections still running are not held up by one that never
// sent.
func (e *Scheduler) waitToken(ctx context.Context, lim *rate.Limiter) error {
	if lim == nil {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	now := e.opts.Now()
	r := lim.ReserveN(now, 1)
	if !r.OK() {
		// setLimiter keeps every burst at 1 or more, so one token always fits.
		return fmt.Errorf("rate limiter: one token exceeds its burst %d", lim.Burst())
	}
	d := r.DelayFrom(now)
	if d <= 0 {
		return nil
	}
	select {
	case <-e.opts.After(d):
		return nil
	case <-ctx.Done():
		r.CancelAt(e.opts.Now())
		return ctx.Err()
	}
}
