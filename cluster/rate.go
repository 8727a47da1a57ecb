package cluster

import (
	"context"
	"math"
	"strconv"
	"time"

	"golang.org/x/time/rate"
)

// Rate is one token bucket a decision draws from: PerSecond tokens a
// second with a burst of Burst (at least 1), shared by every node.
type Rate struct {
	Key       string
	PerSecond float64
	Burst     int
}

// Reserve takes n tokens from every bucket in one round trip and returns
// how long the caller must wait before using them (the longest of the
// buckets' waits). The tokens are spent whether or not the caller then
// waits: a node that dies mid-wait makes the others slower, never faster.
// With Redis down each bucket is this node's local one at PerSecond
// divided by the nodes last seen.
func (c *Client) Reserve(ctx context.Context, rates []Rate, n int) time.Duration {
	var keys []string
	var args []any
	for _, r := range rates {
		if r.PerSecond <= 0 || math.IsInf(r.PerSecond, 1) {
			continue
		}
		keys = append(keys, c.prefix+"rate:"+r.Key)
		// The interval between tokens in microseconds, and the burst.
		args = append(args, int64(math.Max(1, 1e6/r.PerSecond)), max(1, r.Burst))
	}
	if len(keys) == 0 {
		return 0
	}
	if c.up.Load() {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		wait, err := gcraScript.Run(ctx, c.rdb, keys, append([]any{n}, args...)...).Int64()
		cancel()
		if c.call(err) == nil {
			return time.Duration(wait) * time.Microsecond
		}
	}
	c.fallbacks.Add(1)
	now := time.Now()
	var wait time.Duration
	c.mu.Lock()
	defer c.mu.Unlock()
	div := float64(max(1, len(c.nodes)))
	for _, r := range rates {
		if r.PerSecond <= 0 || math.IsInf(r.PerSecond, 1) {
			continue
		}
		lim := c.limits[r.Key]
		// The burst is divided too, so the nodes' bursts add up to at
		// most the shared one.
		limit, burst := rate.Limit(r.PerSecond/div), max(1, r.Burst/int(div))
		if lim == nil || lim.Limit() != limit {
			lim = &localRate{rate.NewLimiter(limit, burst)}
			// It starts empty: the tokens reserved in Redis just before
			// the outage are still being used.
			lim.AllowN(now, burst)
			c.limits[r.Key] = lim
		}
		if d := lim.ReserveN(now, min(n, burst)).DelayFrom(now); d > wait {
			wait = d
		}
	}
	return wait
}

// localRate is a bucket applied by this node alone while Redis is down.
type localRate struct{ *rate.Limiter }

// Count counts one event under key in a sliding window shared by the
// cluster (the matches of a threshold rule) and returns how many fall in
// it, at most limit; ok is false when Redis does not answer.
func (c *Client) Count(key string, within time.Duration, limit int) (int, bool) {
	if !c.up.Load() {
		return 0, false
	}
	c.mu.Lock()
	c.seq++
	member := c.opts.Node + "/" + strconv.FormatUint(c.seq, 36)
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	n, err := windowScript.Run(ctx, c.rdb, []string{c.prefix + "window:" + key}, member, within.Milliseconds(), limit).Int()
	if c.call(err) != nil {
		return 0, false
	}
	return n, true
}
